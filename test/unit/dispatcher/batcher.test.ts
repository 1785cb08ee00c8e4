// The dispatcher's write batcher: requests made while a write is in flight go together in the
// next one, bounded in size, each caller learning its own result or the write's error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WriteBatcher } from '../../../manager/dispatcher/batcher.js';

/** A write the test completes by hand, recording the batches it was given. */
function manualWrite() {
  const batches: number[][] = [];
  const finish: Array<(err?: Error) => void> = [];
  const write = (requests: number[]) => {
    batches.push(requests);
    return new Promise<number[]>((resolve, reject) => finish.push((err) => (err ? reject(err) : resolve(requests.map((r) => r * 10)))));
  };
  return { batches, finish, write };
}

const turn = () => new Promise((r) => setImmediate(r));

test('requests of one turn go in one write; those made while it is in flight go in the next', async () => {
  const w = manualWrite();
  const b = new WriteBatcher(w.write, 100);
  const first = [b.add(1), b.add(2)];
  await turn();
  assert.deepEqual(w.batches, [[1, 2]]);
  const second = [b.add(3), b.add(4), b.add(5)];
  await turn();
  assert.deepEqual(w.batches, [[1, 2]], 'nothing more is written while the first write is in flight');
  w.finish[0]!();
  assert.deepEqual(await Promise.all(first), [10, 20]);
  for (let i = 0; i < 10 && w.batches.length < 2; i++) await turn();
  assert.deepEqual(w.batches, [[1, 2], [3, 4, 5]]);
  w.finish[1]!();
  assert.deepEqual(await Promise.all(second), [30, 40, 50]);
});

test('a backlog is cut by weight into writes made side by side; a failed write fails only its own requests', async () => {
  const w = manualWrite();
  const b = new WriteBatcher(w.write, 5, (r) => r);
  const results = [3, 2, 4, 1].map((r) => b.add(r).then((v) => ({ v }), (e: Error) => ({ e: e.message })));
  for (let i = 0; i < 10 && w.batches.length < 2; i++) await turn();
  // 3+2 fit in 5; 4+1 fit in the next.
  assert.deepEqual(w.batches, [[3, 2], [4, 1]]);
  w.finish[1]!(new Error('lost leadership'));
  w.finish[0]!();
  assert.deepEqual(await Promise.all(results), [{ v: 30 }, { v: 20 }, { e: 'lost leadership' }, { e: 'lost leadership' }]);
});

test('a request heavier than the limit is written alone, and failAll fails what is still queued', async () => {
  const w = manualWrite();
  const b = new WriteBatcher(w.write, 5, (r) => r);
  const big = b.add(9);
  await turn();
  assert.deepEqual(w.batches, [[9]]);
  const queued = b.add(1).catch((e: Error) => e.message);
  b.failAll(new Error('stopped'));
  assert.equal(await queued, 'stopped');
  w.finish[0]!();
  assert.equal(await big, 90);
});
