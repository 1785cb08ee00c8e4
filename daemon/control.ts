// The Control API on the local socket. Swarm membership (init, join) is this daemon's own
// business; cluster objects are manager/controlapi's, called here with the local manager's store.
// Reads are local on every manager. Every write goes through `leaderWrite`, the one place that
// decides where a write runs: on the leader it runs here; a follower refuses, naming the leader
// (forwarding the request to the leader belongs there too).
import * as grpc from '@grpc/grpc-js';
import { ControlClient, ControlService, type ControlHandlers } from '../proto/gen/control.js';
import { MANAGER_CHANNEL_OPTIONS } from '../manager/ca/tlsconfig.js';
import { formatJoinToken, newSecret } from '../manager/ca/token.js';
import { copy } from '../manager/store/blank.js';
import { Cluster } from '../proto/gen/objects.js';
import { NotLeaderError, StoppedError } from '../manager/raft/node.js';
import { NONE } from '../manager/raft/types.js';
import type { Manager } from '../manager/manager.js';
import {
  ControlError,
  asControlError,
  createConfig,
  createNetwork,
  createService,
  serviceWarnings,
  getConfig,
  getNetwork,
  getNode,
  getService,
  listConfigs,
  listNetworks,
  listNodes,
  listServices,
  listTasks,
  removeConfig,
  removeNetwork,
  removeNode,
  removeService,
  updateNode,
  updateService,
  type ControlContext,
} from '../manager/controlapi/index.js';
import { version } from '../util/version.js';
import type { Swarm } from './swarm.js';
import { SwarmError, type ClusterSettings } from './swarm.js';

/** Docker's words when a manager knows no leader (the cluster may have lost its quorum). */
export const NO_LEADER = "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";

type Callback<T> = (err: grpc.ServiceError | Partial<grpc.StatusObject> | null, value?: T) => void;

/** The status a failed call answers with: user errors carry theirs; losing leadership is UNAVAILABLE. */
function statusOf(e: unknown): grpc.status {
  const err = asControlError(e);
  if (err instanceof ControlError || err instanceof SwarmError) return err.code;
  if (err instanceof NotLeaderError || err instanceof StoppedError) return grpc.status.UNAVAILABLE;
  return grpc.status.UNKNOWN;
}

function reply<T>(cb: Callback<T>, work: () => Promise<T> | T): void {
  Promise.resolve()
    .then(work)
    .then(
      (v) => cb(null, v),
      (e: unknown) => cb({ code: statusOf(e), details: (asControlError(e) as Error).message }),
    );
}

/** The Control API's writes: every one of them goes through leaderWrite. */
type WriteMethod = 'getJoinToken' | 'updateNode' | 'removeNode' | 'createService' | 'updateService' | 'removeService' | 'createNetwork' | 'removeNetwork' | 'createConfig' | 'removeConfig';
type RequestOf<K extends WriteMethod> = ControlHandlers[K] extends grpc.handleUnaryCall<infer Q, infer _R> ? Q : never;
type ResponseOf<K extends WriteMethod> = ControlHandlers[K] extends grpc.handleUnaryCall<infer _Q, infer R> ? R : never;

/** The control API's view of a manager: its store, and its Raft membership for node calls. */
export function controlContext(m: Manager): ControlContext {
  return {
    store: m.store,
    raft: {
      memberIds: () => m.raft.memberList().map((x) => x.id),
      reachability: () => m.raft.activePeers(),
      leader: () => m.raft.leader,
    },
  };
}

/**
 * Where the handlers serve: the local socket (the CLI; a follower forwards writes to the leader),
 * or the cluster port (a follower's forwarded write; served only by the leader, never forwarded
 * again, so a change of leader mid-call cannot make a loop).
 */
export type ControlEndpoint = 'local' | 'cluster';

export function controlHandlers(swarm: Swarm, dataRoot: string, endpoint: ControlEndpoint = 'local'): ControlHandlers {
  const manager = () => {
    if (!swarm.state) throw new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is not a swarm manager. Use "shoal swarm init" or "shoal swarm join" to connect this node to swarm and try again.');
    if (!swarm.manager) throw new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is not a swarm manager. Worker nodes can\'t be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.');
    return swarm.manager;
  };
  /** Reads are local, but a manager that knows no leader may be cut off from the cluster: as Docker, refuse. */
  const read = () => {
    const m = manager();
    if (!m.hasLeader) throw new SwarmError(grpc.status.UNAVAILABLE, NO_LEADER);
    return controlContext(m);
  };

  /**
   * Every write of the Control API runs through here, named by its method and carrying its
   * request, so a follower can hand the very same call to the leader. Today a follower refuses.
   */
  const leaderWrite = async <K extends WriteMethod>(method: K, request: RequestOf<K>, local: (ctx: ControlContext, m: Manager) => Promise<ResponseOf<K>>): Promise<ResponseOf<K>> => {
    const m = manager();
    if (!m.isLeader) {
      const leader = m.raft.memberList().find((x) => x.id === m.raft.leader)?.addr;
      if (!leader) throw new SwarmError(grpc.status.UNAVAILABLE, NO_LEADER);
      if (endpoint === 'cluster') throw new SwarmError(grpc.status.UNAVAILABLE, `this manager is no longer the leader (the leader is ${leader}): try again`);
      return forwardToLeader(leader, swarm.managerCredentials(), method, request);
    }
    return local(controlContext(m), m).catch((e: unknown) => {
      // Quorum lost while the write was in flight: say so as Docker does.
      throw e instanceof NotLeaderError && e.leader === NONE ? new SwarmError(grpc.status.UNAVAILABLE, NO_LEADER) : e;
    });
  };

  const handlers: ControlHandlers = {
    init: (call, cb) =>
      reply(cb, () => {
        const r = call.request;
        const opts = { listenAddr: r.listenAddr || '0.0.0.0:2377', advertiseAddr: r.advertiseAddr };
        if (r.forceNewCluster) return swarm.forceNewCluster(opts);
        return swarm.init({ ...opts, settings: clusterSettings(r) });
      }),
    join: (call, cb) =>
      reply(cb, () => {
        const remote = call.request.remoteAddrs[0];
        if (!remote) throw new SwarmError(grpc.status.INVALID_ARGUMENT, 'a manager address (HOST:PORT) is required');
        return swarm.join({ token: call.request.joinToken, remote, listenAddr: call.request.listenAddr || '0.0.0.0:2377', advertiseAddr: call.request.advertiseAddr });
      }),
    leave: (call, cb) => reply(cb, () => swarm.leave(call.request.force).then(() => ({}))),
    getJoinToken: (call, cb) =>
      reply(cb, async () => {
        const m = manager();
        const role = call.request.role === 'MANAGER' ? 'manager' : 'worker';
        const current = () => {
          const cluster = m.store.all('clusters')[0];
          if (!cluster?.joinTokens) throw new SwarmError(grpc.status.UNAVAILABLE, 'the cluster state has not reached this manager yet');
          return { token: formatJoinToken(m.rootCA().digest(), cluster.joinTokens[role]), managerAddr: swarm.state!.advertiseAddr };
        };
        if (!call.request.rotate) return current();
        return leaderWrite('getJoinToken', call.request, async (ctx) => {
          await ctx.store.update((tx) => {
            const c = copy(Cluster, tx.all('clusters')[0]!);
            c.joinTokens![role] = newSecret();
            tx.update('clusters', c);
          });
          return current();
        });
      }),
    info: (_call, cb) =>
      reply(cb, () => {
        const s = swarm.state;
        const m = swarm.manager;
        const nodes = m?.store.all('nodes') ?? [];
        return {
          nodeId: s?.nodeId ?? '',
          nodeAddr: s?.advertiseAddr ?? '',
          localNodeState: s ? 'active' : 'inactive',
          controlAvailable: Boolean(m),
          clusterId: m?.store.all('clusters')[0]?.id ?? '',
          managers: m?.raft.memberList().map((x) => x.addr) ?? [],
          nodes: nodes.length,
          managerCount: nodes.filter((n) => n.role === 'MANAGER').length,
          version,
          raftTerm: m?.raft.currentTerm ?? 0,
          raftCommit: m ? m.raft.commitIndex : 0,
          leaderAddr: m?.raft.memberList().find((x) => x.id === m.raft.leader)?.addr ?? '',
          error: '',
          services: m?.store.all('services').length ?? 0,
          tasksRunning: m?.store.all('tasks').filter((t) => t.status?.state === 'RUNNING').length ?? 0,
          dataRoot,
        };
      }),

    listNodes: (call, cb) => reply(cb, () => ({ nodes: listNodes(read(), call.request) })),
    getNode: (call, cb) => reply(cb, () => ({ node: getNode(read(), call.request.node) })),
    updateNode: (call, cb) => reply(cb, () => leaderWrite('updateNode', call.request, async (ctx) => ({ node: await updateNode(ctx, call.request) }))),
    removeNode: (call, cb) =>
      reply(cb, () =>
        leaderWrite('removeNode', call.request, async (ctx) => {
          await removeNode(ctx, call.request);
          return {};
        }),
      ),

    createService: (call, cb) => reply(cb, () => leaderWrite('createService', call.request, async (ctx) => ({ service: await createService(ctx, call.request), warnings: serviceWarnings(call.request.spec) }))),
    getService: (call, cb) => reply(cb, () => ({ service: getService(read(), call.request.service) })),
    updateService: (call, cb) => reply(cb, () => leaderWrite('updateService', call.request, async (ctx) => ({ service: await updateService(ctx, call.request), warnings: serviceWarnings(call.request.spec) }))),
    removeService: (call, cb) =>
      reply(cb, () =>
        leaderWrite('removeService', call.request, async (ctx) => {
          await removeService(ctx, call.request.service);
          return {};
        }),
      ),
    listServices: (call, cb) => reply(cb, () => listServices(read(), call.request)),
    listTasks: (call, cb) => reply(cb, () => listTasks(read(), call.request)),

    createNetwork: (call, cb) => reply(cb, () => leaderWrite('createNetwork', call.request, async (ctx) => ({ network: await createNetwork(ctx, call.request) }))),
    getNetwork: (call, cb) => reply(cb, () => ({ network: getNetwork(read(), call.request.network) })),
    listNetworks: (call, cb) => reply(cb, () => ({ networks: listNetworks(read(), call.request) })),
    removeNetwork: (call, cb) =>
      reply(cb, () =>
        leaderWrite('removeNetwork', call.request, async (ctx) => {
          await removeNetwork(ctx, call.request.network);
          return {};
        }),
      ),

    createConfig: (call, cb) => reply(cb, () => leaderWrite('createConfig', call.request, async (ctx) => ({ config: await createConfig(ctx, call.request) }))),
    getConfig: (call, cb) => reply(cb, () => ({ config: getConfig(read(), call.request.config) })),
    listConfigs: (call, cb) => reply(cb, () => ({ configs: listConfigs(read(), call.request) })),
    removeConfig: (call, cb) =>
      reply(cb, () =>
        leaderWrite('removeConfig', call.request, async (ctx) => {
          await removeConfig(ctx, call.request.config);
          return {};
        }),
      ),

    watch: (call) => {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'watch is not implemented yet' });
    },
  };
  if (endpoint === 'cluster') {
    // This node's own membership is decided on this node only, never by another manager.
    const localOnly = (_call: unknown, cb: Callback<never>) => cb({ code: grpc.status.PERMISSION_DENIED, details: 'swarm init, join and leave are served on the local socket only' });
    Object.assign(handlers, { init: localOnly, join: localOnly, leave: localOnly });
  }
  return handlers;
}

export function registerControl(server: grpc.Server, swarm: Swarm, dataRoot: string, instrument: <H extends object>(service: string, h: H) => H = (_s, h) => h): void {
  server.addService(ControlService, instrument('Control', controlHandlers(swarm, dataRoot)));
  // Every manager also serves the Control API to the other managers, for forwarded writes.
  swarm.onManagerStarted = (m) => m.addService(ControlService, instrument('Control(cluster)', controlHandlers(swarm, dataRoot, 'cluster')) as unknown as grpc.UntypedServiceImplementation);
  if (swarm.manager) swarm.onManagerStarted(swarm.manager);
}

/** `swarm init`'s cluster settings, checked: every bad value is named. */
export function clusterSettings(r: { defaultAddrPool: string[]; defaultAddrPoolMaskLen: number; taskHistoryLimit: number | bigint; heartbeatPeriodMs: number | bigint }): ClusterSettings {
  const bad = (msg: string) => new SwarmError(grpc.status.INVALID_ARGUMENT, msg);
  for (const pool of r.defaultAddrPool) {
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(pool);
    if (!m || Number(m[2]) < 8 || Number(m[2]) > 30) throw bad(`invalid default address pool "${pool}": expected an IPv4 CIDR like 10.20.0.0/16`);
  }
  const mask = r.defaultAddrPoolMaskLen;
  if (mask !== 0 && (mask < 16 || mask > 30)) throw bad(`invalid --default-addr-pool-mask-length ${mask}: expected 16 to 30`);
  const history = Number(r.taskHistoryLimit);
  if (history < 0) throw bad(`invalid --task-history-limit ${history}: expected 0 or more`);
  const heartbeat = Number(r.heartbeatPeriodMs);
  if (heartbeat < 0 || (heartbeat > 0 && heartbeat < 100)) throw bad(`invalid --dispatcher-heartbeat ${heartbeat}ms: expected at least 100ms`);
  return {
    ...(r.defaultAddrPool.length > 0 ? { defaultAddrPool: r.defaultAddrPool } : {}),
    ...(mask ? { subnetSize: mask } : {}),
    ...(history > 0 ? { taskHistoryLimit: history } : {}),
    ...(heartbeat > 0 ? { heartbeatPeriodMs: heartbeat } : {}),
  };
}

/** The same call, made on the leader with this manager's certificate; its answer or error is ours. */
function forwardToLeader<K extends WriteMethod>(leader: string, credentials: grpc.ChannelCredentials, method: K, request: RequestOf<K>): Promise<ResponseOf<K>> {
  const client = new ControlClient(leader, credentials, MANAGER_CHANNEL_OPTIONS);
  const fn = client[method] as unknown as (req: RequestOf<K>, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: ResponseOf<K>) => void) => void;
  return new Promise<ResponseOf<K>>((resolve, reject) =>
    fn.call(client, request, new grpc.Metadata(), { deadline: Date.now() + 60_000 }, (e, r) => {
      if (e) {
        // A leader we cannot reach is this cluster's trouble, not a bad request: say which.
        const unreachable = e.code === grpc.status.UNAVAILABLE && /connect|No connection/i.test(e.details);
        reject(new SwarmError(e.code, unreachable ? `the leader manager (${leader}) cannot be reached: ${e.details}` : e.details || e.message));
      } else resolve(r as ResponseOf<K>);
    }),
  ).finally(() => client.close());
}
