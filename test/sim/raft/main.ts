// CLI for the seeded Raft simulation.
//   npm run sim:raft -- --seeds 200            seeds 1..200
//   npm run sim:raft -- --seed 17 --verbose    replay one seed with a trace
// Options: --start S (first seed, default 1), --nodes 3|5 (default: alternate by seed),
// --duration MS (faulty phase, default 20000), --calm MS (default 3000), --clients N (default 4).
// Exits 1 on the first seed with a violation and prints how to replay it.
import { parseArgs } from 'node:util';
import { runSimulation, type SimOptions } from './cluster.js';
import { simOptionsFor } from './options.js';

function main(): void {
  const { values } = parseArgs({
    options: {
      seeds: { type: 'string' },
      seed: { type: 'string' },
      start: { type: 'string' },
      nodes: { type: 'string' },
      duration: { type: 'string' },
      calm: { type: 'string' },
      clients: { type: 'string' },
      verbose: { type: 'boolean', default: false },
    },
    allowPositionals: false,
  });
  const num = (name: string, v: string | undefined): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) {
      console.error(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
      process.exit(2);
    }
    return n;
  };
  const over: Partial<SimOptions> = {};
  const nodes = num('nodes', values.nodes);
  if (nodes !== undefined) {
    if (nodes !== 3 && nodes !== 5) {
      console.error(`--nodes must be 3 or 5, got ${nodes}`);
      process.exit(2);
    }
    over.nodes = nodes;
  }
  const duration = num('duration', values.duration);
  if (duration !== undefined) over.duration = duration;
  const calm = num('calm', values.calm);
  if (calm !== undefined) over.calm = calm;
  const clients = num('clients', values.clients);
  if (clients !== undefined) over.clients = clients;
  over.verbose = values.verbose;

  const one = num('seed', values.seed);
  const start = num('start', values.start) ?? 1;
  const count = num('seeds', values.seeds) ?? 20;
  const seeds = one !== undefined ? [one] : Array.from({ length: count }, (_, i) => start + i);

  const extra = [
    over.nodes !== undefined ? `--nodes ${over.nodes}` : '',
    duration !== undefined ? `--duration ${duration}` : '',
    calm !== undefined ? `--calm ${calm}` : '',
    clients !== undefined ? `--clients ${clients}` : '',
  ].filter(Boolean).join(' ');
  const totals = { ops: 0, completed: 0, leaders: 0, crashes: 0, snapshots: 0, confChanges: 0, joint: 0, transfers: 0 };
  for (const seed of seeds) {
    const res = runSimulation(simOptionsFor(seed, over));
    const s = res.stats;
    totals.ops += s.opsInvoked;
    totals.completed += s.opsCompleted;
    totals.leaders += s.leadersElected;
    totals.crashes += s.crashes;
    totals.snapshots += s.snapshotsInstalled;
    totals.confChanges += s.confChangesApplied;
    totals.joint += s.jointConfigsEntered;
    totals.transfers += s.transfers;
    if (!res.ok) {
      console.error(`seed ${seed}: FAILED`);
      for (const v of res.violations) console.error(`  ${v}`);
      console.error(`replay: npm run sim:raft -- --seed ${seed}${extra ? ' ' + extra : ''} --verbose`);
      process.exit(1);
    }
    if (values.verbose || seeds.length === 1) {
      console.log(`seed ${seed}: ok ${JSON.stringify(s)}`);
    }
  }
  console.log(`${seeds.length} seed(s) ok: ${JSON.stringify(totals)}`);
}

main();
