// `npm run bench -- update [--replicas N] [--parallelism P] [--hosts H]`
//
// A rolling update end to end in the lab: H hosts (one manager, the rest workers) with the lab
// registry, a service of N replicas of the test image (`sleep` as PID 1, which ignores SIGTERM, so
// every replaced task costs Docker's default 10 s stop grace period, as it does under Docker), then
// `service update --env-add` with parallelism P, delay 0 and Docker's monitor and grace defaults.
// Reports the time from the update request until the service's update status says completed,
// and the time the N replicas took to start in the first place.
// Reference (issue #8): Docker Swarm on this machine updates 50 replicas at parallelism 10 in
// ~69 s with its defaults; the summary carries it so the ratio per replica can be read off.
import { performance } from 'node:perf_hooks';
import type { Benchmark } from './main.js';
import { parseFlags } from '../util/flags.js';
import { Lab } from '../deploy/labkit/lab.js';
import { cli, formCluster } from '../deploy/labkit/cluster.js';
import { testImageReference } from '../deploy/labkit/registry.js';
import { waitFor } from '../test/support/wait.js';

const DOCKER = { replicas: 50, parallelism: 10, seconds: 69 };

function must(r: { status: number | null; stdout: string; stderr: string }, what: string): string {
  if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

const bench: Benchmark = {
  description: 'rolling update of N replicas in the lab (parallelism P, delay 0, Docker defaults)',
  async run(args, emit) {
    const { flags } = parseFlags(args, [
      { name: 'replicas', kind: 'int', default: 100, description: 'replicas' },
      { name: 'parallelism', kind: 'int', default: 10, description: 'update parallelism' },
      { name: 'hosts', kind: 'int', default: 3, description: 'lab hosts' },
    ]);
    const replicas = Number(flags.replicas);
    const parallelism = Number(flags.parallelism);
    const lab = new Lab(`bench${process.pid}`);
    try {
      await lab.up({ hosts: Number(flags.hosts), registry: true });
      await formCluster(lab, 1, () => {});
      const image = testImageReference(lab.layout());
      const ready = () => must(cli(lab, 'h1', ['node', 'ls', '--format', '{{.Status}}']), 'node ls').split('\n').filter((l) => l.trim() === 'Ready').length === Number(flags.hosts);
      await waitFor('every node Ready', ready, { timeoutMs: 60_000 });

      const created = performance.now();
      must(cli(lab, 'h1', ['service', 'create', '-d', '--name', 'bench', '--replicas', String(replicas), image, 'sleep', '100000']), 'service create');
      const running = () => must(cli(lab, 'h1', ['service', 'ls', '--format', '{{.Replicas}}']), 'service ls').trim() === `${replicas}/${replicas}`;
      await waitFor(`${replicas} replicas running`, running, { timeoutMs: 600_000, intervalMs: 250 });
      const startSeconds = (performance.now() - created) / 1000;
      emit({ phase: 'create', replicas, seconds: Math.round(startSeconds * 10) / 10 });

      const started = performance.now();
      must(cli(lab, 'h1', ['service', 'update', '-d', '--env-add', 'BENCH=1', '--update-parallelism', String(parallelism), '--update-delay', '0s', 'bench']), 'service update');
      const state = () => (JSON.parse(must(cli(lab, 'h1', ['service', 'inspect', 'bench']), 'service inspect')) as { UpdateStatus?: { State?: string } }[])[0]?.UpdateStatus?.State;
      await waitFor('the update to complete', () => state() === 'completed', { timeoutMs: 1_800_000, intervalMs: 250 });
      const seconds = (performance.now() - started) / 1000;
      emit({ phase: 'update', replicas, parallelism, seconds: Math.round(seconds * 10) / 10 });
      const perReplica = seconds / replicas;
      const dockerPerReplica = DOCKER.seconds / DOCKER.replicas;
      emit({
        summary: true,
        replicas,
        parallelism,
        createSeconds: Math.round(startSeconds * 10) / 10,
        updateSeconds: Math.round(seconds * 10) / 10,
        secondsPerReplica: Math.round(perReplica * 100) / 100,
        reference: { docker: DOCKER, secondsPerReplica: Math.round(dockerPerReplica * 100) / 100 },
        ratioToDockerPerReplica: Math.round((perReplica / dockerPerReplica) * 100) / 100,
      });
    } finally {
      await lab.down();
    }
  },
};
export default bench;
