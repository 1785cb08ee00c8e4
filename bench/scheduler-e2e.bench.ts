// `npm run bench -- scheduler-e2e [--nodes N] [--replicas N] [--quick] [--managers N] [--heartbeat-ms MS] [--tick-ms MS] [--cpu-prof DIR]`
//
// The scheduler end to end (issue #5, part b): a cluster of 3 managers, each in its own process
// (so its peak RSS and CPU time are its own), and 5,000 simulated nodes in one more process, each
// node with its own certificate, TLS connection, dispatcher session, heartbeats and status
// reporter (agent/simulated). One service of 100,000 replicas is written into the leader's store;
// the clock runs from that write until the leader's store holds every task RUNNING, as the nodes
// reported it. Also measured: when every task was created (orchestrator) and assigned (allocator
// + scheduler), each process's CPU time over the run, Raft entries, leader changes.
//
// Setup, not measured: node certificates are signed straight from the root CA in this process and
// the Node objects written in batches of 500 (what IssueNodeCertificate would write one by one);
// the fleet connects 128 nodes at a time. The nodes share the machine's 2 cores with the managers:
// their CPU time is reported separately.
//
// With --cpu-prof DIR every child runs under `node --cpu-prof` and a record per process says where
// its CPU went during the measured window (by area of the code, top functions). A run that fails
// (nodes that never all come READY, a timeout) still ends with its records, the reason and the
// profiles. SHOAL_BENCH_LOG=info|debug shows the managers' logs.
//
// The defaults are the shipped ones (Raft tick 100 ms: elections after 1–2 s; heartbeats every
// 2 s up to 500 nodes, stretched beyond). --tick-ms changes the managers' Raft tick.
import { mkdtempSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Benchmark } from './main.js';
import { parseFlags } from '../util/flags.js';
import { RootCA } from '../manager/ca/ca.js';
import { issueNodeIdentities } from '../test/integration/simulated/cluster.js';
import { Child } from './e2e/ipc.js';
import type { ManagerReport } from './e2e/manager-process.js';
import type { FleetReport } from './e2e/fleet-process.js';
import { summarizeProfile } from './e2e/profile.js';

export const TARGET_TASKS_PER_S = 5000;
const MANAGER_SCRIPT = fileURLToPath(new URL('./e2e/manager-process.js', import.meta.url));
const FLEET_SCRIPT = fileURLToPath(new URL('./e2e/fleet-process.js', import.meta.url));

export interface EndToEndOptions {
  nodes: number;
  replicas: number;
  managers: number;
  /** Agents' heartbeat period; default: the dispatcher's. */
  heartbeatMs?: number;
  /** Nodes connecting at once. */
  concurrency: number;
  /** Managers' Raft tick (elections after 10–20 ticks); default: the Raft node's (100 ms). */
  tickMs?: number;
  /** Give up waiting for RUNNING after this long (the record then says how far it got). */
  timeoutS: number;
  /** Write CPU profiles of every child here and summarize them. */
  cpuProfDir?: string;
}

const mb = (bytes: number) => Math.round(bytes / 2 ** 20);
const cpuSeconds = (a: NodeJS.CpuUsage, b: NodeJS.CpuUsage) => Number(((b.user - a.user + b.system - a.system) / 1e6).toFixed(2));

async function until<T>(what: string | (() => string), check: () => Promise<T | undefined | false>, timeoutMs: number, intervalMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Runs the end-to-end measurement; emits records as it goes and returns the headline numbers. */
export async function runSchedulerEndToEnd(o: EndToEndOptions, emit: (record: Record<string, unknown>) => void): Promise<Record<string, unknown>> {
  const root = mkdtempSync(join(tmpdir(), 'bench-e2e-'));
  const children: Child[] = [];
  const profDir = (name: string) => {
    if (!o.cpuProfDir) return [];
    const dir = join(o.cpuProfDir, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
  };
  const spawn = (name: string, script: string) => {
    const c = new Child(name, script, profDir(name));
    children.push(c);
    return c;
  };
  const tuning = { ...(o.heartbeatMs ? { heartbeatPeriodMs: o.heartbeatMs } : {}), ...(o.tickMs ? { tickMs: o.tickMs } : {}) };
  let result: Record<string, unknown> = { nodes: o.nodes, replicas: o.replicas, managers: o.managers, heartbeat_ms: o.heartbeatMs ?? 'default', completed: false };
  let stage = 'cluster';
  let window: { fromMicros: number; toMicros: number } | undefined;
  let leader: Child | undefined;
  try {
    // ---- the cluster ----
    let t = Date.now();
    const ca = RootCA.create();
    const managers = Array.from({ length: o.managers }, (_, i) => spawn(`manager-${i + 1}`, MANAGER_SCRIPT));
    const founder = managers[0]!;
    const { addr: leaderAddr, managerToken } = await founder.call<{ addr: string; managerToken: string }>('found', { caCertPem: ca.certPem, caKeyPem: ca.keyPem, dataDir: join(root, 'm1'), ...tuning });
    const addrs = [leaderAddr];
    for (let i = 1; i < managers.length; i++) {
      const { addr } = await managers[i]!.call<{ addr: string }>('join', { leaderAddr, token: managerToken, dataDir: join(root, `m${i + 1}`), ...tuning });
      addrs.push(addr);
      await until(`manager ${i + 1} to join`, async () => (await founder.call<number>('clusterSize')) === i + 1 && (await managers[i]!.call<boolean>('hasCluster')), 30_000);
    }
    emit({ phase: 'cluster', managers: o.managers, ms: Date.now() - t, load_average_1m: Number(loadavg()[0]!.toFixed(2)) });
    const leaderNow = async (): Promise<{ child: Child; report: ManagerReport } | undefined> => {
      for (const m of managers) {
        const report = await m.call<ManagerReport>('report');
        if (report.isLeader) return { child: m, report };
      }
      return undefined;
    };

    // ---- the nodes ----
    stage = 'nodes';
    t = Date.now();
    const identities = issueNodeIdentities(ca, o.nodes);
    const issueMs = Date.now() - t;
    t = Date.now();
    await founder.call('register', { nodes: identities.map(({ nodeId, hostname, fingerprint256 }) => ({ nodeId, hostname, fingerprint256 })) });
    emit({ phase: 'nodes-registered', nodes: o.nodes, issue_certificates_ms: issueMs, register_ms: Date.now() - t });

    stage = 'fleet';
    t = Date.now();
    const fleet = spawn('fleet', FLEET_SCRIPT);
    await fleet.call('init', { managers: addrs, concurrency: o.concurrency, readyTimeoutMs: o.timeoutS * 1000 });
    await fleet.call('add', { nodes: identities.map(({ nodeId, hostname, certs }) => ({ nodeId, hostname, certs })) });
    let ready = 0;
    leader = await until(
      () => `every node READY on the leader (${ready} of ${o.nodes} now)`,
      async () => {
        const l = await leaderNow();
        ready = l?.report.readyNodes ?? 0;
        return l && ready >= o.nodes ? l.child : undefined;
      },
      o.timeoutS * 1000,
      1000,
    );
    const fleetUp = await fleet.call<FleetReport>('report');
    emit({
      phase: 'fleet-connected',
      nodes: fleetUp.nodes,
      ms: Date.now() - t,
      sessions: fleetUp.sessions,
      session_errors: fleetUp.sessionErrors,
      session_error_reasons: fleetUp.sessionErrorReasons,
      fleet_rss_mb: mb(fleetUp.rssBytes),
      fleet_rss_per_node_kb: Math.round(fleetUp.rssBytes / 1024 / o.nodes),
    });

    // ---- the measured run ----
    stage = 'run';
    const before = await Promise.all(managers.map((m) => m.call<ManagerReport>('report')));
    const fleetBefore = await fleet.call<FleetReport>('report');
    let done: ManagerReport | undefined;
    const measured = leader;
    measured.on('allRunning', (r) => (done = r as ManagerReport));
    await measured.call('createService', { serviceId: 'bench', replicas: o.replicas });
    const deadline = Date.now() + o.timeoutS * 1000;
    let lastProgress = Date.now();
    while (!done && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      if (Date.now() - lastProgress >= 10_000) {
        lastProgress = Date.now();
        const r = await measured.call<ManagerReport>('report');
        const p = r.progress!;
        const f = await fleet.call<FleetReport>('report');
        emit({
          phase: 'progress',
          seconds: Math.round((Date.now() - p.startedAt) / 1000),
          created: p.created,
          assigned: p.assigned,
          running: p.running,
          still_leader: r.isLeader,
          ready_nodes: r.readyNodes,
          session_errors: f.sessionErrors - fleetBefore.sessionErrors,
          session_error_reasons: f.sessionErrorReasons,
          leader_rss_mb: mb(r.rssBytes),
          leader_event_loop_delay_max_ms: r.eventLoopDelayMaxMs,
          leader_raft_queued_max_kb: Math.round(r.raftQueuedBytesMax / 1024),
        });
      }
    }
    const after = await Promise.all(managers.map((m) => m.call<ManagerReport>('report')));
    const fleetAfter = await fleet.call<FleetReport>('report');
    const leaderIndex = managers.indexOf(measured);
    const lr = done ?? after[leaderIndex]!;
    const p = lr.progress!;
    window = { fromMicros: p.startedMicros, toMicros: p.runningAllMicros ?? Number.MAX_SAFE_INTEGER };
    const end = p.runningAllAt ?? Date.now();
    const seconds = (end - p.startedAt) / 1000;
    const phase = (at?: number) => (at ? Number(((at - p.startedAt) / 1000).toFixed(2)) : null);
    const others = (rs: ManagerReport[]) => rs.filter((_, i) => i !== leaderIndex);
    result = {
      ...result,
      completed: p.running >= o.replicas,
      running: p.running,
      seconds: Number(seconds.toFixed(2)),
      tasks_per_s: Math.round(p.running / seconds),
      all_created_s: phase(p.createdAllAt),
      all_assigned_s: phase(p.assignedAllAt),
      all_running_s: phase(p.runningAllAt),
      leader_peak_rss_mb: mb(after[leaderIndex]!.maxRssBytes),
      manager_peak_rss_mb: after.map((r) => mb(r.maxRssBytes)),
      fleet_peak_rss_mb: mb(fleetAfter.maxRssBytes),
      cpu_s_leader: cpuSeconds(before[leaderIndex]!.cpu, lr.cpu),
      cpu_s_followers: others(after).map((r, i) => cpuSeconds(others(before)[i]!.cpu, r.cpu)),
      cpu_s_fleet: cpuSeconds(fleetBefore.cpu, fleetAfter.cpu),
      raft_entries: after[leaderIndex]!.appliedIndex - before[leaderIndex]!.appliedIndex,
      leader_changes: after.reduce((n, r, i) => n + r.leaderChanges - before[i]!.leaderChanges, 0),
      session_errors: fleetAfter.sessionErrors - fleetBefore.sessionErrors,
      max_copies_per_slot: fleetAfter.maxCopiesPerSlot,
      leader_event_loop_delay_max_ms: after[leaderIndex]!.eventLoopDelayMaxMs,
      // Other work on the machine skews every number above: the 1-minute load average at the end.
      load_average_1m: Number(loadavg()[0]!.toFixed(2)),
    };
    emit({ phase: 'result', ...result });
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    result = { ...result, failed_at: stage, error, load_average_1m: Number(loadavg()[0]!.toFixed(2)) };
    emit({ phase: 'error', stage, error });
  }

  // ---- shutdown, then the profiles (written when each process exits) ----
  try {
    for (const c of [...children].reverse()) await c.stop();
    if (o.cpuProfDir) {
      for (const c of children) {
        const dir = join(o.cpuProfDir, c.name);
        const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
        if (!file) continue;
        emit({ phase: 'profile', process: c.name, leader: c === leader, file: join(dir, file), ...summarizeProfile(join(dir, file), window) });
      }
    }
  } finally {
    for (const c of children) await c.stop(5000).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
  return result;
}

const bench: Benchmark = {
  description: 'scheduler end to end: 3 managers and 5,000 simulated nodes, one service of 100,000 replicas until all RUNNING',
  async run(args, emit) {
    const { flags } = parseFlags(args, [
      { name: 'nodes', kind: 'int', default: 5000, description: 'simulated nodes' },
      { name: 'replicas', kind: 'int', default: 100_000, description: 'replicas of the one service' },
      { name: 'quick', kind: 'bool', default: false, description: 'a small run: 500 nodes, 10,000 replicas' },
      { name: 'managers', kind: 'int', default: 3, description: 'managers, each its own process' },
      { name: 'heartbeat-ms', kind: 'int', default: 0, description: "agents' heartbeat period (0: the dispatcher's default)" },
      { name: 'concurrency', kind: 'int', default: 128, description: 'nodes connecting at once' },
      { name: 'tick-ms', kind: 'int', default: 0, description: "managers' Raft tick (0: the default, 100 ms)" },
      { name: 'timeout-s', kind: 'int', default: 900, description: 'give up waiting for RUNNING after this long' },
      { name: 'cpu-prof', kind: 'string', default: '', description: 'profile every process into this directory and summarize' },
    ]);
    const quick = flags.quick as boolean;
    const o: EndToEndOptions = {
      nodes: quick ? 500 : (flags.nodes as number),
      replicas: quick ? 10_000 : (flags.replicas as number),
      managers: flags.managers as number,
      heartbeatMs: (flags['heartbeat-ms'] as number) || undefined,
      tickMs: (flags['tick-ms'] as number) || undefined,
      concurrency: flags.concurrency as number,
      timeoutS: flags['timeout-s'] as number,
      cpuProfDir: (flags['cpu-prof'] as string) || undefined,
    };
    const r = await runSchedulerEndToEnd(o, emit);
    emit({
      summary: true,
      nodes: o.nodes,
      replicas: o.replicas,
      managers: o.managers,
      completed: r.completed,
      seconds_until_all_running: r.seconds,
      tasks_per_s: r.tasks_per_s,
      leader_peak_rss_mb: r.leader_peak_rss_mb,
      manager_peak_rss_mb: r.manager_peak_rss_mb,
      fleet_peak_rss_mb: r.fleet_peak_rss_mb,
      ...(r.failed_at ? { failed_at: r.failed_at, error: r.error } : {}),
      target_tasks_per_s: TARGET_TASKS_PER_S,
      meets_target: r.completed === true && (r.tasks_per_s as number) >= TARGET_TASKS_PER_S,
    });
  },
};

export default bench;
