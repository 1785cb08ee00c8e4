import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailoverLoop } from '../../../agent/session/failover.js';
import { mulberry32 } from '../../support/prng.js';

/** Runs the loop until `waits` waits were asked for; returns them with the managers tried. */
async function run(o: { established: boolean[]; spreadMs: number; waits: number; seed?: number }) {
  const waits: number[] = [];
  const tried: string[] = [];
  let attempt = 0;
  let enough!: () => void;
  const done = new Promise<void>((resolve) => (enough = resolve));
  const loop = new FailoverLoop({
    managers: ['m1', 'm2'],
    backoffMs: 1,
    maxBackoffMs: 4,
    spreadMs: () => o.spreadMs,
    random: mulberry32(o.seed ?? 11),
    onWait: (ms) => {
      waits.push(ms);
      if (waits.length === o.waits) enough();
    },
  });
  loop.start((manager, onEstablished) => {
    tried.push(manager);
    if (o.established[attempt++]) onEstablished();
    return Promise.reject(new Error('stream ended'));
  });
  await done;
  await loop.stop();
  return { waits, tried };
}

test('failover: connects that never came up back off with jitter (half to all of a doubling delay) and move on', async () => {
  const { waits, tried } = await run({ established: [false, false, false, false], spreadMs: 10_000, waits: 4 });
  // No spread: nothing was up. Delays 1, 2, 4, 4 ms, each jittered into [d/2, d).
  [1, 2, 4, 4].forEach((d, i) => assert.ok(waits[i]! >= d / 2 && waits[i]! < d, `wait ${i}: ${waits[i]} for delay ${d}`));
  assert.deepEqual(tried.slice(0, 3), ['m1', 'm2', 'm1']);
});

test('failover: a session that was up and ended waits a random part of the spread first, so a whole cluster does not reconnect at once', async () => {
  const spreadMs = 100;
  const samples: number[] = [];
  for (let seed = 1; seed <= 3; seed++) {
    const { waits, tried } = await run({ established: [true, true, true], spreadMs, waits: 3, seed });
    assert.deepEqual(tried.slice(0, 2), ['m1', 'm1'], 'a manager that was up is retried first');
    for (const w of waits) assert.ok(w >= 0.5 && w < spreadMs + 1, `wait ${w}`);
    samples.push(...waits);
  }
  // Spread out, not bunched at one end: the waits cover more than half the spread.
  assert.ok(Math.max(...samples) - Math.min(...samples) > spreadMs / 2, `waits ${samples.map(Math.round).join(', ')}`);
});
