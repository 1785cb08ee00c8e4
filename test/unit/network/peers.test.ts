// The peer table's two halves against the embedded KV: the publisher holding this host's
// endpoints under one session (replaced, with every endpoint, when the KV loses it), and the
// watcher handing each new view of a network's directory to the drivers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EndpointPublisher, PeerWatcher, decodePeer, encodePeer, peerKey, type PeerRecord } from '../../../agent/network/peers.js';
import type { KvEntry } from '../../../kv/kv.js';
import { localKv } from '../../../manager/kv/embedded.js';
import { silentLogger } from '../../../util/log.js';

const record = (ip: string): PeerRecord => ({
  ip, mac: '02:42:0a:00:00:05', node: 'n1', vtep: '198.18.0.1', task: 't1', taskName: 'web.1.t1', serviceId: 's', serviceName: 'web', slot: 1, aliases: [], endpointMode: 'vip', driver: 'overlay',
});

async function waitFor(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('the publisher holds endpoints under one session and gives it up with the last', async (t) => {
  const { kv } = localKv({ expiryIntervalMs: 20 });
  t.after(() => kv.close());
  const current = new Map<string, string>();
  const sessions: Array<string | undefined> = [];
  const pub = new EndpointPublisher({
    kv, nodeId: 'n1', ttlMs: 300, log: silentLogger, current: () => [...current], exclusive: (fn) => fn(),
    onSession: (id) => {
      sessions.push(id);
      return Promise.resolve();
    },
  });
  t.after(() => pub.close());

  const k1 = peerKey('net1', 't1');
  const k2 = peerKey('net1', 't2');
  current.set(k1, encodePeer(record('10.0.0.5')));
  await pub.publish(k1, current.get(k1)!);
  current.set(k2, encodePeer(record('10.0.0.6')));
  await pub.publish(k2, current.get(k2)!);
  const first = pub.sessionId!;
  assert.deepEqual(sessions, [first]);
  assert.equal((await kv.get(k1))?.session, first);
  assert.equal((await kv.get(k2))?.session, first);

  // Renewals keep it alive well past its TTL.
  await new Promise((r) => setTimeout(r, 700));
  assert.equal((await kv.get(k1))?.session, first);

  // The KV loses the session (as after a partition longer than the TTL): both come back under a new one.
  await kv.sessionDestroy(first);
  await waitFor('the endpoints under a new session', async () => {
    const e1 = await kv.get(k1);
    const e2 = await kv.get(k2);
    return e1?.session !== undefined && e1.session !== first && e2?.session === e1.session;
  });
  assert.equal(sessions.length, 2);

  current.delete(k1);
  await pub.withdraw(k1);
  await pub.idle();
  assert.notEqual(pub.sessionId, undefined, 'one endpoint is left to hold');
  current.delete(k2);
  await pub.withdraw(k2);
  await pub.idle();
  assert.equal(pub.sessionId, undefined);
  assert.equal(sessions.at(-1), undefined);
  assert.equal(await kv.sessionInfo(sessions[1]!), undefined, 'the session is destroyed');
  assert.deepEqual(await kv.list('endpoints', { recurse: true }), []);
});

test('publishing a key another session holds takes it over; publishing under a lost session replaces it', async (t) => {
  const { kv } = localKv();
  t.after(() => kv.close());
  const current = new Map<string, string>();
  const pub = new EndpointPublisher({ kv, nodeId: 'n1', ttlMs: 60_000, log: silentLogger, current: () => [...current], exclusive: (fn) => fn(), onSession: () => Promise.resolve() });
  t.after(() => pub.close());
  const old = await kv.sessionCreate({ ttlMs: 60_000 });
  const key = peerKey('net1', 't1');
  await kv.put(key, new TextEncoder().encode('{}'), { session: old });
  current.set(key, encodePeer(record('10.0.0.5')));
  await pub.publish(key, current.get(key)!);
  assert.equal((await kv.get(key))?.session, pub.sessionId);

  // A session from before a restart that the KV no longer has.
  const gone = pub.sessionId!;
  await kv.sessionDestroy(gone);
  const other = peerKey('net1', 't2');
  await pub.publish(other, encodePeer(record('10.0.0.6')));
  assert.notEqual(pub.sessionId, gone);
  assert.equal((await kv.get(other))?.session, pub.sessionId);
  assert.equal((await kv.get(key))?.session, pub.sessionId, 'the other endpoints are put again too');
});

test('the watcher hands over each view of the network’s directory, starting with the current one', async (t) => {
  const { kv } = localKv();
  t.after(() => kv.close());
  const encoder = new TextEncoder();
  await kv.put(peerKey('net1', 'a'), encoder.encode(encodePeer(record('10.0.0.5'))));
  await kv.put(peerKey('net2', 'x'), encoder.encode(encodePeer(record('10.0.1.5'))));
  const views: string[][] = [];
  let failOnce = true;
  const watcher = new PeerWatcher(kv, 'net1', (entries: KvEntry[]) => {
    if (entries.length === 2 && failOnce) {
      failOnce = false;
      return Promise.reject(new Error('device busy')); // a view that fails to apply is fetched again
    }
    views.push(entries.map((e) => decodePeer(e)!.ip).sort());
    return Promise.resolve();
  }, silentLogger, 5_000);
  t.after(() => watcher.stop());
  await waitFor('the first view', () => views.length === 1);
  assert.deepEqual(views[0], ['10.0.0.5']);
  await kv.put(peerKey('net1', 'b'), encoder.encode(encodePeer(record('10.0.0.6'))));
  await waitFor('the view with b', () => views.some((v) => v.length === 2));
  await kv.delete(peerKey('net1', 'a'));
  await waitFor('the view without a', () => views.at(-1)?.join() === '10.0.0.6');
  assert.ok(views.every((v) => !v.includes('10.0.1.5')), 'another network is not seen');
  await watcher.stop();
  assert.equal(watcher.stopped, true);
});

test('entries that are not peer records are recognised', () => {
  const entry = (text: string): KvEntry => ({ key: 'endpoints/n/x', value: new TextEncoder().encode(text), createIndex: 1, modifyIndex: 1, lockIndex: 0 });
  assert.equal(decodePeer(entry('not json')), undefined);
  assert.equal(decodePeer(entry('{"ip":"10.0.0.5"}')), undefined);
  assert.equal(decodePeer(entry(encodePeer(record('10.0.0.5'))))?.vtep, '198.18.0.1');
});
