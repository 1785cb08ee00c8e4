// The embedded KV state machine: deterministic replicas, snapshots, session expiry as an op.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KvStateMachine, decodeOp, encodeOp, type KvChange, type KvOp, type KvResult } from '../../../manager/kv/statemachine.js';
import { mulberry32 as rng } from '../../support/prng.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);


interface Entry {
  op: KvOp;
  index: number;
  now: number;
}

/** A plausible log: puts, CAS, deletes, sessions, renewals, expiry; Raft indexes with gaps. */
function randomLog(seed: number, length: number): Entry[] {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const keys = ['n/a', 'n/b', 'n/b/c', 'n/bc', 'm/x', 'm/y/z'];
  const sessions: string[] = [];
  const log: Entry[] = [];
  let index = 0;
  let now = 1_700_000_000_000;
  for (let i = 0; i < length; i++) {
    index += 1 + Math.floor(rand() * 3); // other store ops share the Raft log
    now += Math.floor(rand() * 200) - 20; // leaders' clocks wobble, even backwards
    const r = rand();
    let op: KvOp;
    if (r < 0.35) {
      op = { type: 'put', key: pick(keys), value: enc(String(i)) };
      if (rand() < 0.3) op.cas = Math.floor(rand() * index);
      if (sessions.length && rand() < 0.4) op.session = pick(sessions);
    } else if (r < 0.5) {
      op = { type: 'delete', key: pick(keys) };
      if (rand() < 0.3) op.recurse = true;
    } else if (r < 0.6) {
      const id = `s-${i}`;
      sessions.push(id);
      op = { type: 'sessionCreate', id, ttlMs: 100 + Math.floor(rand() * 1000), node: `node-${i % 3}` };
    } else if (r < 0.75 && sessions.length) {
      op = { type: 'sessionRenew', id: pick(sessions) };
    } else if (r < 0.8 && sessions.length) {
      op = { type: 'sessionDestroy', id: pick(sessions) };
    } else if (r < 0.9) {
      op = { type: 'expireSessions' };
    } else {
      op = { type: 'put', key: pick(['', 'a/../b', 'ok']), value: enc('x'), cas: -1 }; // invalid: refused alike everywhere
    }
    log.push({ op, index, now });
  }
  return log;
}

function replay(sm: KvStateMachine, log: Entry[], viaWire: boolean): KvResult[] {
  return log.map((e) => sm.apply(viaWire ? decodeOp(encodeOp(e.op)) : e.op, { index: e.index, now: e.now }));
}

test('replicas applying the same log end with byte-identical snapshots and equal results', () => {
  let invalid = 0;
  let multiKey = 0;
  for (const seed of [1, 2, 3, 42, 1234]) {
    const log = randomLog(seed, 400);
    const a = new KvStateMachine();
    const b = new KvStateMachine(); // receives the ops as bytes, like a follower reading the log
    const ra = replay(a, log, false);
    const rb = replay(b, log, true);
    assert.deepEqual(rb, ra, `seed ${seed}: results`);
    assert.deepEqual(b.snapshot(), a.snapshot(), `seed ${seed}: snapshots`);
    invalid += ra.filter((r) => r.error).length;
    multiKey += ra.filter((r) => r.ok && r.changed.length > 1).length;
  }
  assert.ok(invalid > 0, 'the logs exercised invalid ops');
  assert.ok(multiKey > 0, 'the logs exercised multi-key deletes');
});

test('a replica restored from a snapshot mid-log converges with one that applied everything', () => {
  const log = randomLog(7, 300);
  const full = new KvStateMachine();
  // Keys and sessions created out of sorted order: a restored replica holds them in another order,
  // which must not show in its snapshots.
  full.apply({ type: 'put', key: 'zz/first', value: enc('1') }, { index: 1, now: 0 });
  full.apply({ type: 'put', key: 'aa/second', value: enc('2') }, { index: 2, now: 0 });
  full.apply({ type: 'sessionCreate', id: 'zz', ttlMs: 1e7 }, { index: 3, now: 0 });
  full.apply({ type: 'sessionCreate', id: 'aa', ttlMs: 1e7 }, { index: 4, now: 0 });
  for (const e of log) e.index += 4;
  replay(full, log.slice(0, 150), false);
  const restored = new KvStateMachine();
  restored.restore(full.snapshot());
  assert.equal(restored.index, full.index);
  replay(full, log.slice(150), false);
  replay(restored, log.slice(150), false);
  assert.deepEqual(restored.snapshot(), full.snapshot());
});

test('snapshot and restore round-trip every field, binary values included', () => {
  const sm = new KvStateMachine();
  sm.apply({ type: 'sessionCreate', id: 'sess-1', ttlMs: 5000, node: 'node-1' }, { index: 1, now: 1000 });
  sm.apply({ type: 'put', key: 'a/held', value: Uint8Array.from([0, 255, 10]), session: 'sess-1' }, { index: 2, now: 1001 });
  sm.apply({ type: 'put', key: 'a/plain', value: enc('p') }, { index: 5, now: 1002 });
  sm.apply({ type: 'put', key: 'a/plain', value: enc('q') }, { index: 6, now: 1003 });
  const copy = new KvStateMachine();
  copy.restore(sm.snapshot());
  assert.deepEqual(copy.list('', true), sm.list('', true));
  assert.deepEqual(copy.get('a/plain'), { key: 'a/plain', value: enc('q'), createIndex: 5, modifyIndex: 6, lockIndex: 0 });
  assert.deepEqual(copy.get('a/held')!.value, Uint8Array.from([0, 255, 10]));
  assert.deepEqual(copy.session('sess-1'), { id: 'sess-1', ttlMs: 5000, node: 'node-1', createIndex: 1 });
  assert.equal(copy.index, 6);
  assert.equal(copy.now, 1003);
  assert.equal(copy.nextExpiry(), 1000 + 5000);
  // The restored session still owns its key: expiry deletes it on the copy too.
  const result = copy.apply({ type: 'expireSessions' }, { index: 7, now: 6000 });
  assert.deepEqual(result.changed, ['a/held']);
  assert.throws(() => copy.restore(enc('{"version":99}')), /version 99/);
  assert.throws(() => copy.restore(enc('not json')), /not valid JSON/);
});

test('the Raft index is the modify index, and indexes must move forward', () => {
  const sm = new KvStateMachine();
  sm.apply({ type: 'put', key: 'k', value: enc('1') }, { index: 10, now: 0 });
  sm.apply({ type: 'put', key: 'k', value: enc('2') }, { index: 14, now: 0 });
  assert.deepEqual([sm.get('k')!.createIndex, sm.get('k')!.modifyIndex], [10, 14]);
  assert.throws(() => sm.apply({ type: 'put', key: 'k', value: enc('3') }, { index: 14, now: 0 }), /index 14 does not follow applied index 14/);
});

test('sessions expire only through the expireSessions op, at the time stamped in the entry', () => {
  const sm = new KvStateMachine();
  sm.apply({ type: 'sessionCreate', id: 's1', ttlMs: 100 }, { index: 1, now: 1000 });
  sm.apply({ type: 'put', key: 'ep/1', value: enc('x'), session: 's1' }, { index: 2, now: 1050 });
  sm.apply({ type: 'put', key: 'ep/2', value: enc('y') }, { index: 3, now: 1060 });
  // Time passing alone changes nothing: the state machine never reads a clock.
  assert.ok(sm.get('ep/1'));
  sm.apply({ type: 'sessionRenew', id: 's1' }, { index: 4, now: 1090 }); // deadline now 1190
  assert.deepEqual(sm.apply({ type: 'expireSessions' }, { index: 5, now: 1150 }).changed, []);
  // A put under a session past its deadline but not yet expired by the op is refused by name.
  const late = sm.apply({ type: 'put', key: 'ep/3', value: enc('z'), session: 's1' }, { index: 6, now: 1190 });
  assert.equal(late.ok, false);
  assert.match(late.error!.message, /session s1 has expired/);
  const changes: KvChange[] = [];
  sm.onChange((c) => changes.push(c));
  assert.deepEqual(sm.apply({ type: 'expireSessions' }, { index: 7, now: 1200 }).changed, ['ep/1']);
  assert.deepEqual(changes, [{ index: 7, keys: ['ep/1'] }]);
  assert.equal(sm.get('ep/1'), undefined);
  assert.ok(sm.get('ep/2'), 'keys without a session stay');
  assert.equal(sm.session('s1'), undefined);
});

test('a new leader\'s resetSessionTimers restarts every TTL from the time it stamped', () => {
  const sm = new KvStateMachine();
  sm.apply({ type: 'sessionCreate', id: 'short', ttlMs: 100 }, { index: 1, now: 1000 }); // deadline 1100
  sm.apply({ type: 'sessionCreate', id: 'long', ttlMs: 10_000 }, { index: 2, now: 1000 }); // deadline 11000
  sm.apply({ type: 'put', key: 'ep/1', value: enc('x'), session: 'short' }, { index: 3, now: 1010 });
  // The old leader died; the new one takes over after the short session's deadline passed.
  const result = sm.apply({ type: 'resetSessionTimers' }, { index: 4, now: 1150 });
  assert.deepEqual([result.ok, result.changed], [true, []]);
  assert.equal(sm.nextExpiry(), 1250, 'short: 1150 + its TTL');
  assert.deepEqual(sm.apply({ type: 'expireSessions' }, { index: 5, now: 1200 }).changed, [], 'the key outlived its old deadline');
  assert.deepEqual(sm.apply({ type: 'expireSessions' }, { index: 6, now: 1250 }).changed, ['ep/1']);
  assert.equal(sm.nextExpiry(), 11_150, 'long: restarted from 1150 too');
});

test('time never goes backwards across leaders', () => {
  const sm = new KvStateMachine();
  sm.apply({ type: 'sessionCreate', id: 's1', ttlMs: 100 }, { index: 1, now: 5000 });
  // A new leader whose clock is behind must not resurrect or extend anything.
  sm.apply({ type: 'sessionRenew', id: 's1' }, { index: 2, now: 100 });
  assert.equal(sm.now, 5000);
  assert.equal(sm.nextExpiry(), 5100);
});

test('invalid ops are refused as results, identically, without touching state or throwing', () => {
  const sm = new KvStateMachine();
  const before = sm.snapshot();
  const cases: [KvOp, RegExp][] = [
    [{ type: 'put', key: '', value: enc('x') }, /invalid key ""/],
    [{ type: 'put', key: 'a/../b', value: enc('x') }, /"a\/\.\.\/b"/],
    [{ type: 'sessionCreate', id: 's', ttlMs: -5 }, /TTL -5/],
    [{ type: 'sessionRenew', id: 'ghost' }, /session ghost not found/],
    [{ type: 'delete', key: 'a', recurse: true, cas: 1 }, /"a"/],
    [{ type: 'bogus' } as unknown as KvOp, /unknown kv op "bogus"/],
  ];
  let index = 0;
  for (const [op, pattern] of cases) {
    const result = sm.apply(op, { index: ++index, now: 0 });
    assert.equal(result.ok, false);
    assert.match(result.error?.message ?? '', pattern);
  }
  const after = JSON.parse(new TextDecoder().decode(sm.snapshot())) as { entries: unknown[]; sessions: unknown[] };
  assert.deepEqual([after.entries, after.sessions], [[], []]);
  assert.notDeepEqual(sm.snapshot(), before, 'the index still advanced');
});

test('ops survive the wire encoding, values as bytes', () => {
  const ops: KvOp[] = [
    { type: 'put', key: 'k', value: Uint8Array.from([0, 1, 254, 255]), cas: 3, session: 's' },
    { type: 'delete', key: 'd', recurse: true },
    { type: 'sessionCreate', id: 's', ttlMs: 10, node: 'n' },
    { type: 'expireSessions' },
    { type: 'resetSessionTimers' },
  ];
  for (const op of ops) assert.deepEqual(decodeOp(encodeOp(op)), op);
});
