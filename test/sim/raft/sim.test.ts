// The seeded simulation as part of CI: a handful of seeds of 3- and 5-node clusters under
// partitions, loss, duplication, reordering, pauses, crashes, membership changes and leader
// transfers, each checked for Raft's safety properties and a linearizable client history.
// More seeds: npm run sim:raft -- --seeds 500.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation } from './cluster.js';
import { simOptionsFor } from './options.js';

function runSeeds(seeds: number[]): void {
  for (const seed of seeds) {
    const res = runSimulation(simOptionsFor(seed));
    assert.ok(res.ok, `seed ${seed} failed:\n${res.violations.join('\n')}\nreplay: npm run sim:raft -- --seed ${seed} --verbose`);
    assert.ok(res.stats.opsCompleted > 50, `seed ${seed}: only ${res.stats.opsCompleted} ops completed`);
  }
}

test('3-node clusters keep every safety property and a linearizable history (16 seeds)', () => {
  runSeeds(Array.from({ length: 16 }, (_, i) => 2 * i + 2));
});

test('5-node clusters keep every safety property and a linearizable history (16 seeds)', () => {
  runSeeds(Array.from({ length: 16 }, (_, i) => 2 * i + 1));
});

test('the same seed replays the same run exactly', () => {
  const a = runSimulation(simOptionsFor(7, { duration: 5_000 }));
  const b = runSimulation(simOptionsFor(7, { duration: 5_000 }));
  assert.deepEqual(a.stats, b.stats);
  assert.deepEqual(a.history, b.history);
  assert.ok(a.stats.opsCompleted > 0);
});

test('the simulation exercises what it claims to', () => {
  const total = { crashes: 0, snapshots: 0, confChanges: 0, joint: 0, transfers: 0, unknown: 0, dups: 0 };
  for (const seed of [101, 102, 103, 104]) {
    const s = runSimulation(simOptionsFor(seed)).stats;
    total.crashes += s.crashes;
    total.snapshots += s.snapshotsInstalled;
    total.confChanges += s.confChangesApplied;
    total.joint += s.jointConfigsEntered;
    total.transfers += s.transfers;
    total.unknown += s.opsUnknown;
    total.dups += s.messagesDuplicated;
  }
  for (const [k, v] of Object.entries(total)) assert.ok(v > 0, `${k} never happened`);
});
