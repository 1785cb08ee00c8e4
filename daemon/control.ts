// The Control API on the local socket. Swarm membership (init, join) is this daemon's own
// business; cluster reads come from the local manager's store (reads are local on every
// manager). Writes need the leader: a follower refuses with the leader's address for now —
// forwarding to the leader comes with the rest of the control API.
import * as grpc from '@grpc/grpc-js';
import { ControlService, type ControlHandlers } from '../proto/gen/control.js';
import { formatJoinToken, newSecret } from '../manager/ca/token.js';
import { copy } from '../manager/store/blank.js';
import { Cluster, type Node } from '../proto/gen/objects.js';
import { version } from '../util/version.js';
import type { Swarm } from './swarm.js';
import { SwarmError } from './swarm.js';

type Callback<T> = (err: grpc.ServiceError | Partial<grpc.StatusObject> | null, value?: T) => void;

function reply<T>(cb: Callback<T>, work: () => Promise<T> | T): void {
  Promise.resolve()
    .then(work)
    .then(
      (v) => cb(null, v),
      (e: unknown) => cb({ code: e instanceof SwarmError ? e.code : grpc.status.UNKNOWN, details: (e as Error).message }),
    );
}

/** An id, a unique id prefix, or a hostname: Docker's ways to name a node. */
export function resolveNode(nodes: Node[], ref: string): Node {
  const exact = nodes.find((n) => n.id === ref) ?? nodes.find((n) => n.description?.hostname === ref);
  if (exact) return exact;
  const byPrefix = nodes.filter((n) => n.id.startsWith(ref));
  if (byPrefix.length === 1) return byPrefix[0]!;
  if (byPrefix.length > 1) throw new SwarmError(grpc.status.INVALID_ARGUMENT, `node ${ref} is ambiguous (${byPrefix.length} matches)`);
  throw new SwarmError(grpc.status.NOT_FOUND, `node ${ref} not found`);
}

export function controlHandlers(swarm: Swarm, dataRoot: string): ControlHandlers {
  const manager = () => {
    if (!swarm.state) throw new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is not a swarm manager. Use "shoal swarm init" or "shoal swarm join" to connect this node to swarm and try again.');
    if (!swarm.manager) throw new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is not a swarm manager. Worker nodes can\'t be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.');
    return swarm.manager;
  };
  const unimplemented = (name: string) => (_call: unknown, cb: Callback<never>) => cb({ code: grpc.status.UNIMPLEMENTED, details: `${name} is not implemented yet` });
  return {
    init: (call, cb) => reply(cb, () => swarm.init({ listenAddr: call.request.listenAddr || '0.0.0.0:2377', advertiseAddr: call.request.advertiseAddr })),
    join: (call, cb) =>
      reply(cb, () => {
        const remote = call.request.remoteAddrs[0];
        if (!remote) throw new SwarmError(grpc.status.INVALID_ARGUMENT, 'a manager address (HOST:PORT) is required');
        return swarm.join({ token: call.request.joinToken, remote, listenAddr: call.request.listenAddr || '0.0.0.0:2377', advertiseAddr: call.request.advertiseAddr });
      }),
    leave: unimplemented('swarm leave'),
    getJoinToken: (call, cb) =>
      reply(cb, async () => {
        const m = manager();
        const role = call.request.role === 'MANAGER' ? 'manager' : 'worker';
        if (call.request.rotate) {
          if (!m.isLeader) throw new SwarmError(grpc.status.UNAVAILABLE, 'rotating a join token needs the leader: run it on the leader manager');
          await m.store.update((tx) => {
            const c = copy(Cluster, tx.all('clusters')[0]!);
            c.joinTokens![role] = newSecret();
            tx.update('clusters', c);
          });
        }
        const cluster = m.store.all('clusters')[0];
        if (!cluster?.joinTokens) throw new SwarmError(grpc.status.UNAVAILABLE, 'the cluster state has not reached this manager yet');
        return { token: formatJoinToken(m.rootCA().digest(), cluster.joinTokens[role]), managerAddr: swarm.state!.advertiseAddr };
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
    listNodes: (_call, cb) =>
      reply(cb, () => {
        const m = manager();
        // Leadership is Raft's, not the store's: fill it in at read time.
        const nodes = m.store.all('nodes').map((n) => (n.managerStatus ? { ...n, managerStatus: { ...n.managerStatus, leader: n.managerStatus.raftId === m.raft.leader } } : n));
        return { nodes };
      }),
    getNode: (call, cb) => reply(cb, () => ({ node: resolveNode(manager().store.all('nodes'), call.request.node) })),
    updateNode: unimplemented('node update'),
    removeNode: unimplemented('node rm'),
    createService: unimplemented('service create'),
    getService: unimplemented('service inspect'),
    updateService: unimplemented('service update'),
    removeService: unimplemented('service rm'),
    listServices: unimplemented('service ls'),
    listTasks: unimplemented('service ps'),
    createNetwork: unimplemented('network create'),
    getNetwork: unimplemented('network inspect'),
    listNetworks: unimplemented('network ls'),
    removeNetwork: unimplemented('network rm'),
    watch: (call) => {
      call.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'watch is not implemented yet' });
    },
  };
}

export function registerControl(server: grpc.Server, swarm: Swarm, dataRoot: string): void {
  server.addService(ControlService, controlHandlers(swarm, dataRoot));
}
