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
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Benchmark } from './main.js';
import { parseFlags } from '../util/flags.js';
import { RuncRuntime } from '../agent/runtime/runc/runtime.js';
import { ImageStore } from '../agent/runtime/image/store.js';
import { Lab } from '../deploy/labkit/lab.js';
import { cli, formCluster } from '../deploy/labkit/cluster.js';
import { testImageLayout, testImageReference } from '../deploy/labkit/registry.js';
import { waitFor } from '../test/support/wait.js';
import { cleanupRoot } from '../test/integration/runtime/harness.js';

const DOCKER = { replicas: 50, seconds: 16.6, targetSpeedup: 3 };

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const r1 = (x: number) => Math.round(x * 10) / 10;

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

async function endToEnd(replicas: number, emit: (r: Record<string, unknown>) => void): Promise<number> {
  const lab = new Lab(`benchrt${process.pid}`);
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
    const t0 = performance.now();
    must(['service', 'create', '-d', '--name', 'bench', '--replicas', String(replicas), image, 'sleep', '100000']);
    await waitFor(`${replicas}/${replicas} running`, () => must(['service', 'ls', '--format', '{{.Replicas}}']).trim() === `${replicas}/${replicas}`, { timeoutMs: 300_000, intervalMs: 100 });
    const seconds = (performance.now() - t0) / 1000;
    emit({ part: 'end-to-end', replicas, seconds: r1(seconds) });
    return seconds;
  } finally {
    await lab.down();
  }
}

const bench: Benchmark = {
  description: 'containers created to running: the runtime alone, and a service converging end to end (vs Docker Swarm)',
  async run(args, emit) {
    const { flags } = parseFlags(args, [
      { name: 'containers', kind: 'int', default: 100, description: 'containers for the runtime part' },
      { name: 'concurrency', kind: 'int', default: 8, description: 'containers started at once' },
      { name: 'replicas', kind: 'int', default: 50, description: 'replicas for the end-to-end part' },
    ]);
    const alone = await runtimeAlone(Number(flags.containers), Number(flags.concurrency), emit);
    const replicas = Number(flags.replicas);
    const seconds = await endToEnd(replicas, emit);
    const dockerSeconds = (DOCKER.seconds * replicas) / DOCKER.replicas;
    emit({
      summary: true,
      runtime: alone,
      endToEnd: { replicas, seconds: r1(seconds) },
      reference: { docker: DOCKER, scaledToReplicas: r1(dockerSeconds) },
      speedupOverDocker: r1(dockerSeconds / seconds),
      targetMet: dockerSeconds / seconds >= DOCKER.targetSpeedup,
    });
  },
};
export default bench;
