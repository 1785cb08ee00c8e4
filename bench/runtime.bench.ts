// `npm run bench -- runtime [--containers N] [--replicas R] [--concurrency C]`
//
// (a) The runtime alone, on this host: N containers of the test image (`sleep`), each created
//     (overlay rootfs, OCI bundle, conmon + runc create) and started, C at a time; create → running
//     latency p50/p99, the total, and memory per container: the conmon monitor's RSS plus the
//     kernel memory the container's cgroup is charged beyond its process (runtime overhead).
// (b) End to end, as the reference measures Docker Swarm: a one-host cluster in the lab
//     (the image already on the host, as it would be in a steady cluster), `service create` of R
//     replicas of `sleep`, time until the CLI's `service ls` shows R/R.
// Reference (issue #6): Docker Swarm on this machine converges a 50-replica sleep service on one
// node in ~16.6 s; target 3× faster end to end. The summary carries the ratio.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Benchmark } from './main.js';
import { parseFlags } from '../util/flags.js';
import { RuncRuntime } from '../agent/runtime/runc/runtime.js';
import { ImageStore } from '../agent/runtime/image/store.js';
import { Lab } from '../deploy/labkit/lab.js';
import { cli, daemonPid, formCluster } from '../deploy/labkit/cluster.js';
import { testImageLayout, testImageReference } from '../deploy/labkit/registry.js';
import { waitFor } from '../test/support/wait.js';
import { makeTask } from '../test/unit/worker/tasks.js';
import { Worker } from '../agent/worker/worker.js';
import { MemoryStatusReporter } from '../agent/worker/reporter.js';
import { ImageStoreProvider } from '../agent/worker/images.js';
import { cleanupRoot } from '../test/integration/runtime/harness.js';

const DOCKER = { replicas: 50, seconds: 16.6, targetSpeedup: 3 };

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const r1 = (x: number) => Math.round(x * 10) / 10;

/** User + system CPU seconds a process has used (its own threads, not its children). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

async function runtimeAlone(count: number, concurrency: number, emit: (r: Record<string, unknown>) => void): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-runtime-'));
  const root = join(dir, 'runtime');
  const cgroupParent = `/shoal-bench-${process.pid}`;
  const runtime = new RuncRuntime({ root, cgroupParent });
  const images = new ImageStore(join(dir, 'images'));
  try {
    await images.load(testImageLayout(), { reference: 'bench/busybox:latest' });
    const image = await images.find('bench/busybox:latest');
    if (!image) throw new Error('the test image did not load');
    const latencies: number[] = [];
    const started = performance.now();
    let next = 0;
    const one = async (i: number) => {
      const id = `bench${String(i).padStart(4, '0')}${'0'.repeat(52)}`;
      const t0 = performance.now();
      const rootfs = await images.prepareRootfs('bench/busybox:latest', id, join(dir, 'rootfs', id));
      await runtime.create({ id, name: `bench.${i}`, rootfs: rootfs.path, image: { Env: image.config.Env ?? null, Cmd: null, Entrypoint: null }, command: ['sleep'], args: ['100000'], env: [], mounts: [], labels: {}, stopGraceMs: 1000 });
      await runtime.start(id);
      latencies.push(performance.now() - t0);
    };
    await Promise.all(
      Array.from({ length: Math.min(concurrency, count) }, async () => {
        while (next < count) await one(next++);
      }),
    );
    const totalMs = performance.now() - started;
    const infos = await runtime.list();
    // The monitor: conmon per container (its pid file sits in the container's directory).
    const conmonKb = infos.map((c) => Number(readFileSync(join(root, 'containers', c.id, 'conmon.pid'), 'utf8').trim())).map((pid) => rssKb(pid));
    const appKb = infos.map((c) => (c.pid ? rssKb(c.pid) : 0));
    const sorted = [...latencies].sort((a, b) => a - b);
    const result = {
      containers: count,
      concurrency,
      totalSeconds: r1(totalMs / 1000),
      createToRunningMs: { p50: r1(pct(sorted, 50)), p99: r1(pct(sorted, 99)) },
      monitorRssKbPerContainer: Math.round(conmonKb.reduce((a, b) => a + b, 0) / Math.max(1, conmonKb.length)),
      processRssKbPerContainer: Math.round(appKb.reduce((a, b) => a + b, 0) / Math.max(1, appKb.length)),
    };
    emit({ part: 'runtime', ...result });
    return result;
  } finally {
    await runtime.close().catch(() => undefined);
    await cleanupRoot(root, cgroupParent).catch(() => undefined);
    // The root filesystems are mounted beside the runtime's root: unmount those too.
    await cleanupRoot(dir, cgroupParent).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * (c) The agent alone: a real Worker (runc, conmon, the image store) given one COMPLETE set of R
 * tasks, as the dispatcher would send it, with the worker's trace for the breakdown. No manager:
 * this is the agent's share of the end-to-end time.
 */
async function workerAlone(replicas: number, emit: (r: Record<string, unknown>) => void): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-bench-worker-'));
  const root = join(dir, 'runtime');
  const cgroupParent = `/shoal-bench-w${process.pid}`;
  const runtime = new RuncRuntime({ root, cgroupParent });
  const store = new ImageStore(join(dir, 'images'));
  const reporter = new MemoryStatusReporter();
  const worker = new Worker({ dataDir: join(dir, 'worker'), runtime, images: new ImageStoreProvider(store, { pull: 'never' }), reporter });
  const traceFile = join(dir, 'trace.jsonl');
  process.env.SHOAL_TASK_TRACE = traceFile;
  try {
    await store.load(testImageLayout(), { reference: 'bench/busybox:latest' });
    await worker.init();
    const tasks = Array.from({ length: replicas }, (_, i) => ({ ...makeTask(`benchtask${i}`, { image: 'bench/busybox:latest', command: ['sleep', '100000'] }), slot: i + 1 }));
    const cpu0 = process.cpuUsage();
    const t0 = performance.timeOrigin + performance.now();
    await worker.applyAssignments({ type: 'COMPLETE', appliesTo: '', resultsIn: 'bench', changes: tasks.map((task) => ({ action: 'UPDATE', task })) });
    await Promise.all(tasks.map((t) => reporter.waitForState(t.id, 'RUNNING', 300_000)));
    const seconds = (performance.timeOrigin + performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    // The agent's own CPU (this process: the worker's JavaScript), not runc's or conmon's.
    const agentCpuMsPerTask = r1((cpu.user + cpu.system) / 1000 / replicas);
    await new Promise((r) => setTimeout(r, 100)); // the trace stream's last writes
    const events = readFileSync(traceFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TraceEvent);
    const result = { replicas, seconds: r1(seconds), agentCpuMsPerTask, agent: agentBreakdown(events, t0) };
    emit({ part: 'worker', ...result });
    return result;
  } finally {
    await worker.assign([]).catch(() => undefined);
    await worker.settled().catch(() => undefined);
    await worker.close().catch(() => undefined);
    await runtime.close().catch(() => undefined);
    await cleanupRoot(root, cgroupParent).catch(() => undefined);
    await cleanupRoot(dir, cgroupParent).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

interface TraceEvent {
  t: number;
  ev: string;
  task?: string;
  state?: string;
  step?: string;
  ms?: number;
  updates?: number;
  running?: number;
}

/**
 * Where the end-to-end time went on the agent, from the worker's trace (agent/worker/trace.ts):
 * when assignments arrived, when the tasks reached each state (first, median and last task, in
 * ms after `service create` was sent), how long each step of preparing and starting took per
 * task, and when the manager acknowledged the last RUNNING status.
 */
export function agentBreakdown(events: TraceEvent[], t0: number): Record<string, unknown> {
  const rel = (t: number) => r1(t - t0);
  const spread = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { first: r1(s[0] ?? NaN), p50: r1(pct(s, 50)), last: r1(s[s.length - 1] ?? NaN) };
  };
  const assignments = events.filter((e) => e.ev === 'assignments');
  const states: Record<string, unknown> = {};
  for (const state of ['ASSIGNED', 'ACCEPTED', 'PREPARING', 'READY', 'STARTING', 'RUNNING']) {
    const firstPerTask = new Map<string, number>();
    for (const e of events) if (e.ev === 'state' && e.state === state && e.task && !firstPerTask.has(e.task)) firstPerTask.set(e.task, e.t - t0);
    if (firstPerTask.size) states[state] = { tasks: firstPerTask.size, ...spread([...firstPerTask.values()]) };
  }
  const steps: Record<string, unknown> = {};
  for (const step of new Set(events.filter((e) => e.ev === 'step').map((e) => e.step ?? ''))) {
    const ms = events.filter((e) => e.ev === 'step' && e.step === step).map((e) => e.ms ?? 0);
    const sorted = [...ms].sort((a, b) => a - b);
    steps[step] = { count: ms.length, p50Ms: r1(pct(sorted, 50)), maxMs: r1(sorted[sorted.length - 1] ?? NaN), sumMs: r1(ms.reduce((a, b) => a + b, 0)) };
  }
  const acks = events.filter((e) => e.ev === 'report-ack');
  const lastRunningAck = acks.filter((e) => (e.running ?? 0) > 0).at(-1);
  return {
    assignmentMessages: assignments.length,
    firstAssignmentMs: assignments[0] ? rel(assignments[0].t) : null,
    lastAssignmentMs: assignments.at(-1) ? rel(assignments.at(-1)!.t) : null,
    statesMsAfterCreate: states,
    stepsPerTask: steps,
    statusBatches: acks.length,
    lastRunningAckedMs: lastRunningAck ? rel(lastRunningAck.t) : null,
  };
}

async function endToEnd(replicas: number, emit: (r: Record<string, unknown>) => void): Promise<number> {
  const lab = new Lab(`benchrt${process.pid}`);
  const traceDir = mkdtempSync(join(tmpdir(), 'shoal-bench-trace-'));
  const traceFile = join(traceDir, 'trace.jsonl');
  // The lab's shoald inherits this environment: its worker writes its timeline there.
  process.env.SHOAL_TASK_TRACE = traceFile;
  try {
    await lab.up({ hosts: 1, registry: true });
    await formCluster(lab, 1, () => {});
    const image = testImageReference(lab.layout());
    const must = (args: string[]) => {
      const r = cli(lab, 'h1', args);
      if (r.status !== 0) throw new Error(`shoal ${args.join(' ')}: ${r.stderr.trim()}`);
      return r.stdout;
    };
    must(['image', 'pull', image]);
    const pid = daemonPid(lab, 'h1');
    const cpu0 = pid ? cpuSeconds(pid) : 0;
    const t0 = performance.now();
    const t0Epoch = performance.timeOrigin + t0;
    must(['service', 'create', '-d', '--name', 'bench', '--replicas', String(replicas), image, 'sleep', '100000']);
    const createdMs = performance.now() - t0;
    await waitFor(`${replicas}/${replicas} running`, () => must(['service', 'ls', '--format', '{{.Replicas}}']).trim() === `${replicas}/${replicas}`, { timeoutMs: 300_000, intervalMs: 100 });
    const seconds = (performance.now() - t0) / 1000;
    // The daemon's own CPU time while the service converged (manager and agent: one process),
    // less sensitive than wall time to whatever else the machine runs.
    const shoaldCpuSeconds = pid ? r1(cpuSeconds(pid) - cpu0) : null;
    let agent: Record<string, unknown> | null = null;
    try {
      const events = readFileSync(traceFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as TraceEvent).filter((e) => e.t >= t0Epoch);
      agent = agentBreakdown(events, t0Epoch);
    } catch {
      // no trace: a shoald from before the worker could trace
    }
    emit({ part: 'end-to-end', replicas, seconds: r1(seconds), serviceCreateReturnedMs: r1(createdMs), shoaldCpuSeconds, loadAverage: loadavg()[0], agent });
    return seconds;
  } finally {
    delete process.env.SHOAL_TASK_TRACE;
    await lab.down();
    rmSync(traceDir, { recursive: true, force: true });
  }
}

const bench: Benchmark = {
  description: 'containers created to running: the runtime alone, and a service converging end to end (vs Docker Swarm)',
  async run(args, emit) {
    const { flags } = parseFlags(args, [
      { name: 'containers', kind: 'int', default: 100, description: 'containers for the runtime part (0: skip it)' },
      { name: 'concurrency', kind: 'int', default: 8, description: 'containers started at once' },
      { name: 'replicas', kind: 'int', default: 50, description: 'replicas for the worker and end-to-end parts' },
      { name: 'skip-end-to-end', kind: 'bool', default: false, description: 'only the runtime and worker parts (no lab)' },
    ]);
    const alone = Number(flags.containers) > 0 ? await runtimeAlone(Number(flags.containers), Number(flags.concurrency), emit) : null;
    const replicas = Number(flags.replicas);
    const agent = await workerAlone(replicas, emit);
    const seconds = flags['skip-end-to-end'] ? NaN : await endToEnd(replicas, emit);
    const dockerSeconds = (DOCKER.seconds * replicas) / DOCKER.replicas;
    emit({
      summary: true,
      runtime: alone,
      worker: { replicas, seconds: agent.seconds },
      endToEnd: { replicas, seconds: r1(seconds) },
      reference: { docker: DOCKER, scaledToReplicas: r1(dockerSeconds) },
      speedupOverDocker: r1(dockerSeconds / seconds),
      targetMet: dockerSeconds / seconds >= DOCKER.targetSpeedup,
    });
  },
};
export default bench;
