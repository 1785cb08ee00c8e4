// One manager of the end-to-end bench, in a process of its own so that its memory and CPU are its
// own. The bench drives it over IPC: found or join a cluster, register simulated nodes, create the
// service, and follow the service's tasks on this manager's store (created, assigned, running),
// noting when each count reaches the service's replica count.
import { RootCA } from '../../manager/ca/ca.js';
import type { Manager } from '../../manager/manager.js';
import type { StoreEvent } from '../../manager/store/memory.js';
import { TaskStateNumber, type Task } from '../../proto/gen/objects.js';
import { joinManager, joinToken, nodeRecord, registerNodes, replicatedService, startFounder, type ManagerTuning } from '../../test/integration/simulated/cluster.js';
import { emitEvent, serve } from './ipc.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createLogger, type Level } from '../../util/log.js';

let manager: Manager | undefined;
// How long the event loop was blocked at worst: a manager blocked past the election timeout loses its leadership.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let leaderChanges = 0;
const micros = () => Number(process.hrtime.bigint() / 1000n);

// SHOAL_BENCH_LOG=debug|info|warn: the manager's structured log on stderr (silent by default).
const logLevel = process.env.SHOAL_BENCH_LOG as Level | undefined;
const log = logLevel ? createLogger(`bench-manager-${process.pid}`, { level: logLevel }) : undefined;

function tuning(args: { heartbeatPeriodMs?: number; tickMs?: number }): ManagerTuning {
  return { heartbeatPeriodMs: args.heartbeatPeriodMs, tickMs: args.tickMs, ...(log ? { log } : {}) };
}

function follow(m: Manager): Manager {
  m.raft.on('leader', (lead: unknown) => {
    leaderChanges++;
    // With SHOAL_BENCH_LOG set: each change, with how long this process's event loop was blocked at worst so far.
    log?.info('raft leader changed', { lead: String(lead), isLeader: m.isLeader, eventLoopDelayMaxMs: Math.round(loopDelay.max / 1e6) });
  });
  return m;
}

function current(): Manager {
  if (!manager) throw new Error('this manager has not started');
  return manager;
}

interface Progress {
  serviceId: string;
  target: number;
  created: number;
  assigned: number;
  running: number;
  /** When the service was written (ms since the epoch, and µs of the monotonic clock the CPU profiler uses). */
  startedAt: number;
  startedMicros: number;
  createdAllAt?: number;
  assignedAllAt?: number;
  runningAllAt?: number;
  runningAllMicros?: number;
  cpuAtStart: NodeJS.CpuUsage;
  cpuAtEnd?: NodeJS.CpuUsage;
}
let progress: Progress | undefined;

const ASSIGNED = TaskStateNumber.ASSIGNED;
const stateOf = (t: Task | undefined) => (t ? TaskStateNumber[t.status?.state ?? 'NEW'] : -1);

/** Counts transitions only (no per-task memory, which would inflate the RSS being measured). */
function onChange(ev: StoreEvent): void {
  const p = progress;
  if (!p || ev.table !== 'tasks') return;
  const t = ev.object as Task;
  if (t.serviceId !== p.serviceId || ev.kind === 'remove') return;
  const old = ev.old as Task | undefined;
  const now = Date.now();
  if (ev.kind === 'create' && ++p.created === p.target) p.createdAllAt = now;
  if (stateOf(old) < ASSIGNED && stateOf(t) >= ASSIGNED && ++p.assigned === p.target) p.assignedAllAt = now;
  const running = (x: Task | undefined) => x?.status?.state === 'RUNNING' && x.desiredState === 'RUNNING';
  if (!running(old) && running(t) && ++p.running === p.target) {
    p.runningAllAt = now;
    p.runningAllMicros = micros();
    p.cpuAtEnd = process.cpuUsage();
    emitEvent('allRunning', report());
  }
}

// The most bytes the leader's Raft transport held queued for one peer, sampled every 200 ms:
// messages waiting behind a backlog include the heartbeats that keep followers from campaigning.
let raftQueuedBytesMax = 0;
setInterval(() => {
  if (manager?.isLeader) raftQueuedBytesMax = Math.max(raftQueuedBytesMax, manager.raftQueuedBytes()[0] ?? 0);
}, 200).unref();

function report() {
  const m = manager;
  return {
    pid: process.pid,
    addr: m?.addrForTests(),
    isLeader: m?.isLeader ?? false,
    leaderChanges,
    appliedIndex: m?.store.appliedIndex ?? 0,
    rssBytes: process.memoryUsage().rss,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    heapUsedBytes: process.memoryUsage().heapUsed,
    cpu: process.cpuUsage(),
    eventLoopDelayMaxMs: Math.round(loopDelay.max / 1e6),
    raftQueuedBytesMax,
    readyNodes: m ? m.store.all('nodes').filter((n) => n.status?.state === 'READY').length : 0,
    progress,
  };
}
export type ManagerReport = ReturnType<typeof report>;

serve({
  found: async (args: { caCertPem: string; caKeyPem: string; dataDir: string; heartbeatPeriodMs?: number; tickMs?: number }) => {
    manager = follow(await startFounder(new RootCA({ certPem: args.caCertPem, keyPem: args.caKeyPem }), args.dataDir, tuning(args)));
    return { addr: manager.addrForTests(), managerToken: joinToken(manager.store, 'manager') };
  },
  join: async (args: { leaderAddr: string; token: string; dataDir: string; heartbeatPeriodMs?: number; tickMs?: number }) => {
    manager = follow(await joinManager(args.leaderAddr, args.token, args.dataDir, tuning(args)));
    return { addr: manager.addrForTests() };
  },
  clusterSize: () => current().raft.voters().length,
  hasCluster: () => current().store.all('clusters').length > 0,
  register: async (args: { nodes: Array<{ nodeId: string; hostname: string; fingerprint256: string }> }) => {
    await registerNodes(current().store, args.nodes.map(nodeRecord));
  },
  createService: async (args: { serviceId: string; replicas: number }) => {
    const m = current();
    progress = { serviceId: args.serviceId, target: args.replicas, created: 0, assigned: 0, running: 0, startedAt: Date.now(), startedMicros: micros(), cpuAtStart: process.cpuUsage() };
    m.store.on('change', onChange);
    await m.store.update((tx) => tx.create('services', replicatedService(args.serviceId, { replicas: args.replicas, restartDelayMs: 5000 })));
  },
  report: () => report(),
  stop: async () => {
    await manager?.stop();
    // Leave the event loop to finish writing (the CPU profile is written at exit).
    setImmediate(() => process.exit(0));
  },
});
