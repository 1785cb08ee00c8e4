// The bound on tasks preparing or starting at once: never more than the limit, starts before
// prepares, and arrival order otherwise.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Limiter } from '../../../agent/worker/limiter.js';

test('at most `limit` run at once; a waiting start goes before waiting prepares; order kept otherwise', async () => {
  const limiter = new Limiter(2);
  const order: string[] = [];
  let running = 0;
  let most = 0;
  const gates = new Map<string, () => void>();
  const job = (name: string) => () =>
    new Promise<void>((resolve) => {
      running++;
      most = Math.max(most, running);
      order.push(name);
      gates.set(name, () => {
        running--;
        resolve();
      });
    });
  const all = [
    limiter.run(job('p1')),
    limiter.run(job('p2')),
    limiter.run(job('p3')),
    limiter.run(job('p4')),
    limiter.run(job('s1'), 'high'),
  ];
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, ['p1', 'p2']);
  assert.equal(limiter.waiting, 3);
  for (const name of ['p1', 'p2', 's1', 'p3', 'p4']) {
    await new Promise((r) => setImmediate(r));
    gates.get(name)!();
  }
  await Promise.all(all);
  assert.deepEqual(order, ['p1', 'p2', 's1', 'p3', 'p4']);
  assert.equal(most, 2);
  assert.throws(() => new Limiter(0), /invalid concurrency limit 0/);
});
