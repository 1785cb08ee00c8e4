// The embedded KV as an extension of the replicated store: KV ops are store log entries, applied
// at the entry's index with the proposer's time, and the KV state travels in store snapshots.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LocalProposer, MemoryStore } from '../../../manager/store/memory.js';
import { storeKv } from '../../../manager/kv/replicated.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

function replica(clock: () => number = Date.now) {
  const store = new MemoryStore(null, clock);
  const { kv, sm } = storeKv(store, { leading: () => true, expiryIntervalMs: 0 });
  return { store, kv, sm };
}

test('KV writes are store log entries: the index is the log index, the time the proposer\'s', async (t) => {
  let now = 5_000;
  const a = replica(() => now);
  t.after(() => a.kv.close());
  a.store.setProposer(new LocalProposer(a.store));
  // Store transactions and KV ops share one log.
  assert.equal(await a.kv.put('k', enc('1')), true);
  await a.store.update((tx) => tx.create('secrets', { id: 's1', meta: null, spec: { annotations: null, data: new Uint8Array() } }));
  assert.equal(await a.kv.put('k', enc('2')), true);
  const entry = (await a.kv.get('k'))!;
  assert.deepEqual([entry.createIndex, entry.modifyIndex, a.store.appliedIndex], [1, 3, 3]);

  const id = await a.kv.sessionCreate({ ttlMs: 100 });
  assert.equal(await a.kv.put('held', enc('x'), { session: id }), true);
  // Expiry follows the time stamped in the entry, not the replica's clock.
  now = 5_099;
  await a.kv.resetSessionTimers(); // deadline restarts at 5099 + 100
  now = 5_150;
  await a.store.proposeExtension('kv', enc(JSON.stringify({ type: 'expireSessions' })));
  assert.ok(await a.kv.get('held'), 'not yet: the deadline was restarted');
  now = 5_199;
  await a.store.proposeExtension('kv', enc(JSON.stringify({ type: 'expireSessions' })));
  assert.equal(await a.kv.get('held'), undefined);
});

test('the KV travels in store snapshots, and a restore wakes the replica\'s watchers', async (t) => {
  const a = replica();
  const b = replica();
  t.after(() => Promise.all([a.kv.close(), b.kv.close()]));
  a.store.setProposer(new LocalProposer(a.store));
  b.store.setProposer(new LocalProposer(b.store));
  await b.kv.put('stale/only-on-b', enc('gone after the restore'));
  const start = await b.kv.watch('peers', { index: 0, recurse: true, timeoutMs: 0 });
  const watching = b.kv.watch('peers', { index: start.index, recurse: true, timeoutMs: 30_000 });

  const id = await a.kv.sessionCreate({ ttlMs: 60_000, node: 'n1' });
  await a.kv.put('peers/ep1', Uint8Array.from([0, 255]), { session: id });
  await a.kv.put('peers/ep2', enc('2'));
  b.store.restore(a.store.snapshot(), a.store.appliedIndex);

  const woke = await watching;
  assert.equal(woke.timedOut, false);
  assert.deepEqual(await b.kv.list('', { recurse: true }), await a.kv.list('', { recurse: true }));
  assert.deepEqual(await b.kv.sessionInfo(id), await a.kv.sessionInfo(id));
  assert.equal(b.sm.index, a.sm.index);
  // The restored replica goes on applying later entries at later indexes.
  await b.kv.put('peers/ep3', enc('3'));
  assert.equal((await b.kv.get('peers/ep3'))!.modifyIndex, a.store.appliedIndex + 1);
});

test('a replica that cannot propose refuses KV writes and keeps serving reads', async (t) => {
  const { kv, store } = replica();
  t.after(() => kv.close());
  store.setProposer(new LocalProposer(store));
  await kv.put('k', enc('v'));
  store.setProposer(null);
  await assert.rejects(kv.put('k', enc('w')), /not the leader/);
  assert.equal(new TextDecoder().decode((await kv.get('k'))!.value), 'v');
});
