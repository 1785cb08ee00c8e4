// The KV gRPC service (proto/kv.proto) on a manager's cluster port, over that manager's EmbeddedKv.
// The authz interceptor lets any node of the cluster in (workers and managers, by certificate);
// this layer only decides where a call can be served:
// - reads and watches: on any manager, from its own replica (eventually consistent, like Consul's
//   default mode; indexes are Raft indexes, the same everywhere, so a watch may move between them);
// - writes: on the leader only. A follower refuses with UNAVAILABLE and the leader's address in the
//   LEADER_ADDR_METADATA key, exactly as the dispatcher does, and the client (kv/remote.ts) retries
//   there. We redirect rather than forward: no manager-to-manager hop, and a client that wrote
//   stays on the leader, so it reads its own writes.
import * as grpc from '@grpc/grpc-js';
import { KvError, type Kv } from '../../kv/kv.js';
import { entryToWire, sessionToWire, statusOfKvError } from '../../kv/wire.js';
import type { KVHandlers } from '../../proto/gen/kv.js';
import { LEADER_ADDR_METADATA } from '../../proto/metadata.js';
import { NotLeaderError, StoppedError } from '../raft/node.js';

export interface KvServiceOptions {
  /** This manager's replica of the embedded KV. */
  kv: Kv;
  /** Whether this manager can write now: it leads and has applied everything before its term. */
  canWrite: () => boolean;
  /** The leader's cluster address, when known. */
  leaderAddr: () => string | undefined;
  /** The cluster's KV url (ClusterSpec.kv_url): '' for the embedded KV, else a Redis url. */
  backendUrl: () => string;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

function serviceError(code: grpc.status, details: string, metadata = new grpc.Metadata()): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata });
}

/** Serve it with `server.addService(KVService, kvServiceHandlers(options))`. */
export function kvServiceHandlers(opts: KvServiceOptions): KVHandlers {
  const notLeader = (why: string): grpc.ServiceError => {
    const metadata = new grpc.Metadata();
    const leader = opts.leaderAddr();
    if (leader) metadata.set(LEADER_ADDR_METADATA, leader);
    return serviceError(grpc.status.UNAVAILABLE, leader ? `${why}: writes go to the leader at ${leader}` : `${why}: no leader is known yet`, metadata);
  };

  const toStatus = (err: unknown, writing: boolean): grpc.ServiceError => {
    if (err instanceof KvError) {
      if (err.code === 'closed') return serviceError(grpc.status.UNAVAILABLE, 'this manager is stopping');
      return serviceError(statusOfKvError(err), err.message);
    }
    // A write that lost the leader underneath it (stepped down, stopping): its outcome is
    // decided by the log, the caller retries with the new leader.
    if (writing && (!opts.canWrite() || err instanceof NotLeaderError || err instanceof StoppedError)) {
      return notLeader((err as Error).message || 'this manager lost the leadership');
    }
    const message = err instanceof Error ? err.message : String(err);
    opts.log?.('kv call failed', { error: message });
    return serviceError(grpc.status.INTERNAL, message);
  };

  // Every KV call but Backend: refused when the cluster keeps its KV in Redis, so two agents can
  // never end up writing the peer table into two different stores.
  const elsewhere = (): grpc.ServiceError | null => {
    if (!opts.backendUrl()) return null;
    return serviceError(grpc.status.FAILED_PRECONDITION, 'this cluster keeps its KV in Redis, not in the managers: ask Backend for the url and connect there');
  };

  type Handler<Req, Res> = grpc.handleUnaryCall<Req, Res>;
  const read =
    <Req, Res>(fn: (req: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>): Handler<Req, Res> =>
    (call, cb) => {
      const refusal = elsewhere();
      if (refusal) return cb(refusal);
      fn(call.request, call).then(
        (res) => cb(null, res),
        (err: unknown) => cb(toStatus(err, false)),
      );
    };
  const write =
    <Req, Res>(fn: (req: Req) => Promise<Res>): Handler<Req, Res> =>
    (call, cb) => {
      const refusal = elsewhere() ?? (opts.canWrite() ? null : notLeader('this manager is not the leader'));
      if (refusal) return cb(refusal);
      fn(call.request).then(
        (res) => cb(null, res),
        (err: unknown) => cb(toStatus(err, true)),
      );
    };

  const { kv } = opts;
  return {
    get: read(async (req) => {
      const entry = await kv.get(req.key);
      return { entry: entry ? entryToWire(entry) : null };
    }),
    list: read(async (req) => ({ entries: (await kv.list(req.prefix, { recurse: req.recurse })).map(entryToWire) })),
    keys: read(async (req) => ({ keys: await kv.keys(req.prefix, req.separator ? { separator: req.separator } : {}) })),
    put: write(async (req) => ({
      ok: await kv.put(req.key, req.value, { ...(req.cas !== undefined ? { cas: req.cas } : {}), ...(req.session ? { session: req.session } : {}) }),
    })),
    delete: write(async (req) => ({
      ok: await kv.delete(req.key, { ...(req.recurse ? { recurse: true } : {}), ...(req.cas !== undefined ? { cas: req.cas } : {}) }),
    })),
    watch: read(async (req, call) => {
      // A client that gives up (deadline, abort, close) cancels the call: stop waiting for it.
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort(new Error('the client cancelled the watch')));
      const result = await kv.watch(req.key, { index: req.index, recurse: req.recurse, timeoutMs: req.timeoutMs, signal: abort.signal });
      return { index: result.index, entries: result.entries.map(entryToWire), timedOut: result.timedOut };
    }),
    sessionCreate: write(async (req) => ({ id: await kv.sessionCreate({ ttlMs: req.ttlMs, ...(req.node !== undefined ? { node: req.node } : {}) }) })),
    sessionRenew: write(async (req) => {
      await kv.sessionRenew(req.id);
      return {};
    }),
    sessionDestroy: write(async (req) => {
      await kv.sessionDestroy(req.id);
      return {};
    }),
    sessionInfo: read(async (req) => {
      const info = await kv.sessionInfo(req.id);
      return { session: info ? sessionToWire(info) : null };
    }),
    backend: (_call, cb) => {
      const url = opts.backendUrl();
      cb(null, { kind: url ? 'REDIS' : 'EMBEDDED', url });
    },
  };
}
