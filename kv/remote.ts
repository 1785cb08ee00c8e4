// `Kv` over the managers' KV service (proto/kv.proto), for agents: the node's own mutual-TLS
// credentials, any manager of the cluster, failover between them.
//
// Calls go to one manager at a time: the last one that answered. A follower refuses writes with
// UNAVAILABLE naming the leader (LEADER_ADDR_METADATA), and the client moves there, so after its
// first write a client sits on the leader and reads its own writes; reads before that are served
// by whichever manager it reached (eventually consistent, Consul's default). A manager that does
// not answer (UNAVAILABLE, a deadline, a call the server cancelled while stopping) is left for the
// next one in the list, round after round with a growing pause, until `failoverTimeoutMs` passed
// since the first failure; then the call fails with a 'backend' KvError naming the managers.
// PERMISSION_DENIED (the node is unknown or removed) fails the call once every manager said it: a
// manager that lags behind the log may not know a node that just joined.
//
// Retrying a write whose answer was lost may apply it twice, as with Consul's HTTP API: a plain
// put or delete is idempotent, a cas write then reports false, a session create leaves an unused
// session that expires with its TTL. A watch that fails over resumes at the same index, with what
// is left of its timeout: indexes are Raft log indexes, the same on every manager.
//
// Errors keep their kind across the wire (kv/wire.ts): the shared KV suite runs unchanged here.
import * as grpc from '@grpc/grpc-js';
import {
  KvError,
  type DeleteOptions,
  type KeysOptions,
  type Kv,
  type KvEntry,
  type ListOptions,
  type PutOptions,
  type SessionInfo,
  type SessionOptions,
  type WatchOptions,
  type WatchResult,
} from './kv.js';
import { normalizePrefix, validateIndex, validateKey, validateSessionId, validateTimeout, validateTtl, validateValue } from './keys.js';
import { entryFromWire, kvErrorOfStatus, sessionFromWire } from './wire.js';
import {
  KVClient,
  type BackendResponse,
  type DeleteResponse,
  type GetResponse,
  type KeysResponse,
  type ListResponse,
  type PutResponse,
  type SessionCreateResponse,
  type SessionDestroyResponse,
  type SessionInfoResponse,
  type SessionRenewResponse,
  type WatchResponse,
} from '../proto/gen/kv.js';
import { LEADER_ADDR_METADATA } from '../proto/metadata.js';

export interface RemoteKvOptions {
  /**
   * The managers' cluster addresses (host:port). A function is asked again at every failover, so
   * a list that grows (the agent session learns managers that joined later) is followed.
   */
  managers: readonly string[] | (() => readonly string[]);
  /** The node's mutual-TLS credentials (its certificate, the cluster CA). */
  credentials: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  /** Deadline of one call to one manager; a watch gets its own timeout on top. Default 10 s. */
  callTimeoutMs?: number;
  /** How long a call keeps trying other managers after a failure. Default 30 s. */
  failoverTimeoutMs?: number;
  /** First pause before retrying; doubles up to 2 s. Default 50 ms. */
  backoffMs?: number;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

export interface KvBackendInfo {
  /** 'embedded': this service is the KV; 'redis': agents connect to `url` themselves. */
  kind: 'embedded' | 'redis';
  url: string;
}

type Invoke<Res> = (client: KVClient, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Res>) => grpc.ClientUnaryCall;

// Statuses that say "this manager cannot serve it now", not "the request is wrong". CANCELLED is
// what a manager that shuts down does to calls in flight (ours are told apart: closed / aborted).
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.CANCELLED]);
const MAX_BACKOFF_MS = 2000;
// Responses of list and watch on a large peer table can pass grpc-js's 4 MiB default.
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

const closedError = () => new KvError('kv is closed', 'closed');

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException('watch aborted', 'AbortError');
}

export class RemoteKv implements Kv {
  private readonly clients = new Map<string, KVClient>();
  private readonly calls = new Set<grpc.ClientUnaryCall>();
  private readonly closing = new AbortController();
  /** Leaders named by followers that the managers list did not have (yet). */
  private readonly learned: string[] = [];
  /** Where calls go: the last manager that answered, or the leader a follower named. */
  private current: string | undefined;
  private closed = false;
  private readonly callTimeoutMs: number;
  private readonly failoverTimeoutMs: number;
  private readonly backoffMs: number;

  constructor(private readonly options: RemoteKvOptions) {
    if (this.managers().length === 0) throw new KvError('a remote kv needs at least one manager address', 'invalid');
    this.callTimeoutMs = options.callTimeoutMs ?? 10_000;
    this.failoverTimeoutMs = options.failoverTimeoutMs ?? 30_000;
    this.backoffMs = options.backoffMs ?? 50;
  }

  /** The manager calls currently go to (for logs and tests). */
  get manager(): string {
    return this.current ?? this.managers()[0] ?? '';
  }

  private managers(): string[] {
    const given = typeof this.options.managers === 'function' ? this.options.managers() : this.options.managers;
    return [...new Set([...given, ...this.learned])];
  }

  private client(addr: string): KVClient {
    let client = this.clients.get(addr);
    if (!client) {
      client = new KVClient(addr, this.options.credentials, { 'grpc.max_receive_message_length': MAX_RESPONSE_BYTES, ...this.options.channelOptions });
      this.clients.set(addr, client);
    }
    return client;
  }

  /** The manager after `addr` in the list (the first one if `addr` left it). */
  private after(addr: string): string {
    const list = this.managers();
    if (list.length === 0) return addr; // a live list that emptied: keep trying the last one
    return list[(list.indexOf(addr) + 1) % list.length]!;
  }

  private ensureOpen(): void {
    if (this.closed) throw closedError();
  }

  /** One attempt at one manager. */
  private attempt<Res>(addr: string, invoke: Invoke<Res>, deadline: number, signal: AbortSignal | undefined): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      const onAbort = () => call.cancel();
      const call = invoke(this.client(addr), new grpc.Metadata(), { deadline }, (err, res) => {
        this.calls.delete(call);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(res!);
      });
      this.calls.add(call);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A pause that close() and the caller's signal cut short. */
  private pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.closing.signal.removeEventListener('abort', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.closing.signal.addEventListener('abort', done, { once: true });
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * Runs a call with failover. `invoke` is called again for every attempt (a watch recomputes what
   * is left of its timeout); `extraMs` is added to the per-attempt deadline (a watch's own wait).
   */
  private async call<Res>(what: string, invoke: Invoke<Res>, opts: { extraMs?: () => number; signal?: AbortSignal } = {}): Promise<Res> {
    const { signal } = opts;
    let delay = this.backoffMs;
    let giveUpAt: number | undefined;
    let redirected = false;
    const denied = new Set<string>();
    for (;;) {
      this.ensureOpen();
      if (signal?.aborted) throw abortReason(signal);
      const addr = this.manager;
      try {
        const res = await this.attempt(addr, invoke, Date.now() + this.callTimeoutMs + (opts.extraMs?.() ?? 0), signal);
        this.current = addr;
        return res;
      } catch (err) {
        if (this.closed) throw closedError();
        if (signal?.aborted) throw abortReason(signal);
        const e = err as grpc.ServiceError;
        // A manager that has not yet applied this node's record (it just joined, restarted, or
        // became leader ahead of its apply) refuses it as unknown: only a refusal from every
        // manager is the cluster's answer.
        if (e.code === grpc.status.PERMISSION_DENIED) {
          denied.add(addr);
          if (this.managers().every((m) => denied.has(m))) throw kvErrorOfStatus(e.code, e.details);
        } else if (!RETRYABLE.has(e.code)) {
          throw kvErrorOfStatus(e.code, e.details);
        }
        const leader = e.metadata?.get(LEADER_ADDR_METADATA)[0];
        const toLeader = typeof leader === 'string' && leader !== '' && leader !== addr;
        if (toLeader && !this.managers().includes(leader)) this.learned.push(leader);
        this.current = toLeader ? leader : this.after(addr);
        this.options.log?.('kv call failed over', { call: what, manager: addr, next: this.current, error: e.details });
        giveUpAt ??= Date.now() + this.failoverTimeoutMs;
        if (Date.now() >= giveUpAt) {
          throw new KvError(`no manager could serve ${what} for ${this.failoverTimeoutMs} ms (managers ${this.managers().join(', ')}); last error from ${addr}: ${e.details}`, 'backend');
        }
        // The first redirect to a named leader goes at once; anything else waits, so two managers
        // with stale views of each other, or one not yet ready to lead, are not hammered.
        if (toLeader && !redirected) {
          redirected = true;
          continue;
        }
        await this.pause(delay, signal);
        delay = Math.min(delay * 2, MAX_BACKOFF_MS);
      }
    }
  }

  async get(key: string): Promise<KvEntry | undefined> {
    this.ensureOpen();
    validateKey(key);
    const res = await this.call<GetResponse>('get', (c, m, o, cb) => c.get({ key }, m, o, cb));
    return res.entry ? entryFromWire(res.entry) : undefined;
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<KvEntry[]> {
    this.ensureOpen();
    normalizePrefix(prefix);
    const res = await this.call<ListResponse>('list', (c, m, o, cb) => c.list({ prefix, recurse: opts.recurse ?? false }, m, o, cb));
    return res.entries.map(entryFromWire);
  }

  async keys(prefix: string, opts: KeysOptions = {}): Promise<string[]> {
    this.ensureOpen();
    normalizePrefix(prefix);
    const res = await this.call<KeysResponse>('keys', (c, m, o, cb) => c.keys({ prefix, separator: opts.separator ?? '' }, m, o, cb));
    return res.keys;
  }

  async put(key: string, value: Uint8Array, opts: PutOptions = {}): Promise<boolean> {
    this.ensureOpen();
    validateKey(key);
    validateValue(key, value);
    if (opts.cas !== undefined) validateIndex('cas', opts.cas);
    if (opts.session !== undefined) validateSessionId(opts.session);
    const req = { key, value, session: opts.session ?? '', ...(opts.cas !== undefined ? { cas: opts.cas } : {}) };
    return (await this.call<PutResponse>('put', (c, m, o, cb) => c.put(req, m, o, cb))).ok;
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<boolean> {
    this.ensureOpen();
    if (opts.recurse) {
      normalizePrefix(key);
      if (opts.cas !== undefined) throw new KvError(`cas cannot be combined with a recursive delete of ${JSON.stringify(key)}`, 'invalid');
    } else {
      validateKey(key);
    }
    if (opts.cas !== undefined) validateIndex('cas', opts.cas);
    const req = { key, recurse: opts.recurse ?? false, ...(opts.cas !== undefined ? { cas: opts.cas } : {}) };
    return (await this.call<DeleteResponse>('delete', (c, m, o, cb) => c.delete(req, m, o, cb))).ok;
  }

  async watch(keyOrPrefix: string, opts: WatchOptions): Promise<WatchResult> {
    this.ensureOpen();
    const recurse = opts.recurse ?? false;
    if (recurse) normalizePrefix(keyOrPrefix);
    else validateKey(keyOrPrefix);
    const index = validateIndex('watch index', opts.index);
    const endAt = Date.now() + validateTimeout(opts.timeoutMs);
    const left = () => Math.max(0, Math.ceil(endAt - Date.now()));
    const res = await this.call<WatchResponse>('watch', (c, m, o, cb) => c.watch({ key: keyOrPrefix, recurse, index, timeoutMs: left() }, m, o, cb), {
      extraMs: left,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { index: res.index, entries: res.entries.map(entryFromWire), timedOut: res.timedOut };
  }

  async sessionCreate(opts: SessionOptions): Promise<string> {
    this.ensureOpen();
    const ttlMs = validateTtl(opts.ttlMs);
    const req = { ttlMs, ...(opts.node !== undefined ? { node: opts.node } : {}) };
    return (await this.call<SessionCreateResponse>('session create', (c, m, o, cb) => c.sessionCreate(req, m, o, cb))).id;
  }

  async sessionRenew(id: string): Promise<void> {
    this.ensureOpen();
    validateSessionId(id);
    await this.call<SessionRenewResponse>('session renew', (c, m, o, cb) => c.sessionRenew({ id }, m, o, cb));
  }

  async sessionDestroy(id: string): Promise<void> {
    this.ensureOpen();
    validateSessionId(id);
    await this.call<SessionDestroyResponse>('session destroy', (c, m, o, cb) => c.sessionDestroy({ id }, m, o, cb));
  }

  async sessionInfo(id: string): Promise<SessionInfo | undefined> {
    this.ensureOpen();
    validateSessionId(id);
    const res = await this.call<SessionInfoResponse>('session info', (c, m, o, cb) => c.sessionInfo({ id }, m, o, cb));
    return res.session ? sessionFromWire(res.session) : undefined;
  }

  /** Which KV the cluster uses (ClusterSpec.kv_url, chosen at `swarm init`). */
  async backend(): Promise<KvBackendInfo> {
    this.ensureOpen();
    const res = await this.call<BackendResponse>('backend', (c, m, o, cb) => c.backend({}, m, o, cb));
    return { kind: res.kind === 'REDIS' ? 'redis' : 'embedded', url: res.url };
  }

  /** Ends every call in flight (they reject with a 'closed' KvError) and the connections. */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.closing.abort();
      for (const call of [...this.calls]) call.cancel();
      for (const client of this.clients.values()) client.close();
      this.clients.clear();
    }
    return Promise.resolve();
  }
}
