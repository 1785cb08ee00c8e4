// The linearizability checker must accept linearizable histories and reject the rest; these
// hand-made histories pin down both directions (a checker that cannot fail proves nothing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHistory, checkKey, type HistoryOp } from './linearizability.js';
import type { Op, Output } from './kv.js';

let n = 0;
function h(op: Op, invoke: number, complete: number | null, output: Output | null, client = 1): HistoryOp {
  return { id: `op${++n}`, client, op, invoke, complete, output };
}
const put = (value: string): Op => ({ kind: 'put', key: 'k', value });
const get = (): Op => ({ kind: 'get', key: 'k' });
const cas = (expected: string | null, value: string): Op => ({ kind: 'cas', key: 'k', expected, value });
const ok: Output = { kind: 'put' };
const read = (value: string | null): Output => ({ kind: 'get', value });

test('a sequential history that reads its writes is linearizable', () => {
  const r = checkKey([h(put('1'), 0, 10, ok), h(get(), 20, 30, read('1')), h(put('2'), 40, 50, ok), h(get(), 60, 70, read('2'))]);
  assert.equal(r.ok, true);
});

test('a read concurrent with a write may see either value', () => {
  const before = checkKey([h(put('1'), 0, 10, ok), h(put('2'), 20, 30, ok), h(get(), 25, 35, read('1'))]);
  const after = checkKey([h(put('1'), 0, 10, ok), h(put('2'), 20, 30, ok), h(get(), 25, 35, read('2'))]);
  assert.equal(before.ok, true);
  assert.equal(after.ok, true);
});

test('a stale read (the old value after a newer write completed) is not linearizable', () => {
  const r = checkKey([h(put('1'), 0, 10, ok), h(put('2'), 20, 30, ok, 2), h(get(), 40, 50, read('1'), 3)]);
  assert.equal(r.ok, false);
});

test('reads that go back in time are not linearizable', () => {
  const r = checkKey([h(put('1'), 0, 100, ok), h(get(), 10, 20, read('1'), 2), h(get(), 30, 40, read(null), 3)]);
  assert.equal(r.ok, false);
});

test('an operation completing at t precedes one invoked at t', () => {
  const r = checkKey([h(put('1'), 0, 10, ok), h(put('2'), 10, 20, ok, 2), h(get(), 20, 30, read('1'), 3)]);
  assert.equal(r.ok, false);
});

test('two successful CAS from the same expected value are not linearizable', () => {
  const r = checkKey([h(cas(null, 'a'), 0, 5, { kind: 'cas', ok: true }), h(cas(null, 'b'), 6, 10, { kind: 'cas', ok: true }, 2)]);
  assert.equal(r.ok, false);
  const good = checkKey([h(cas(null, 'a'), 0, 5, { kind: 'cas', ok: true }), h(cas(null, 'b'), 6, 10, { kind: 'cas', ok: false }, 2)]);
  assert.equal(good.ok, true);
});

test('a write whose outcome is unknown may take effect at any later point, or never', () => {
  const late = checkKey([h(put('1'), 0, null, null), h(get(), 50, 60, read(null), 2), h(get(), 70, 80, read('1'), 2)]);
  assert.equal(late.ok, true);
  const never = checkKey([h(put('1'), 0, null, null), h(get(), 50, 60, read(null), 2)]);
  assert.equal(never.ok, true);
  // But once seen it cannot be un-seen.
  const flicker = checkKey([h(put('1'), 0, null, null), h(get(), 50, 60, read('1'), 2), h(get(), 70, 80, read(null), 2)]);
  assert.equal(flicker.ok, false);
});

test('a read of a value nobody wrote is not linearizable', () => {
  assert.equal(checkKey([h(put('1'), 0, 10, ok), h(get(), 20, 30, read('7'), 2)]).ok, false);
});

test('histories are checked per key, and the failing key is reported', () => {
  const x = (o: HistoryOp, key: string): HistoryOp => ({ ...o, op: { ...o.op, key } });
  const history = [
    x(h(put('1'), 0, 10, ok), 'a'),
    x(h(get(), 20, 30, read('1'), 2), 'a'),
    x(h(put('1'), 0, 10, ok), 'b'),
    x(h(put('2'), 20, 30, ok), 'b'),
    x(h(get(), 40, 50, read('1'), 2), 'b'),
  ];
  const r = checkHistory(history);
  assert.equal(r.ok, false);
  assert.equal(r.key, 'b');
  assert.equal(checkHistory(history.slice(0, 4)).ok, true);
});

test('many concurrent clients with unknown outcomes are checked quickly', () => {
  // 6 clients, 300 ops, 1/5 with lost outcomes: exercises the memoized search.
  const ops: HistoryOp[] = [];
  let state: string | null = null;
  let t = 0;
  for (let i = 0; i < 300; i++) {
    const client = (i % 6) + 1;
    const kind = i % 3;
    t += 3;
    if (kind === 0) {
      const v = `v${i}`;
      state = v;
      ops.push(h(put(v), t - 2, i % 5 === 0 ? null : t + 4, i % 5 === 0 ? null : ok, client));
    } else {
      ops.push(h(get(), t - 1, t + 4, read(state), client));
    }
  }
  assert.equal(checkKey(ops).ok, true);
});
