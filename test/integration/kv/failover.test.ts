// The embedded KV across three managers: its state reaches managers that join later and one that
// restarts from disk, followers send writers to the leader, and when the leader dies agents keep
// their sessions and keys, watches resume on another manager, and the new leader expires a
// session its agent stopped renewing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { KvError, type Kv, type KvEntry } from '../../../kv/kv.js';
import { RemoteKv } from '../../../kv/remote.js';
import type { Manager } from '../../../manager/manager.js';
import { MANAGER_CHANNEL_OPTIONS } from '../../../manager/ca/tlsconfig.js';
import { waitFor } from '../../support/wait.js';
import { TestCluster, type NodeCredentials } from './cluster.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));
const keysOf = (entries: KvEntry[]): string[] => entries.map((e) => e.key);

/** A manager's own replica, read locally (no RPC). */
const replica = (m: Manager) => m.kv.list('', { recurse: true });

function client(t: { after(fn: () => Promise<void>): void }, managers: () => readonly string[], node: NodeCredentials): RemoteKv {
  const kv = new RemoteKv({ managers, credentials: node.credentials, channelOptions: node.channelOptions, backoffMs: 20 });
  t.after(() => kv.close());
  return kv;
}

test('the embedded KV survives a leader failover: sessions, keys and watches carry on', async (t) => {
  const cluster = await TestCluster.start(t);
  const node = await cluster.worker();

  // State written while the founder is alone: managers that join later must receive it. The
  // agent renews its session in the background from the start, as agent/ would.
  const agent = client(t, () => cluster.addrs(), node);
  assert.equal(await agent.put('static/config', enc('v1')), true);
  const ttlMs = 3000;
  const session = await agent.sessionCreate({ ttlMs, node: node.nodeId });
  let renewals = 0;
  let renewing = true;
  const renewErrors: unknown[] = [];
  const renewLoop = (async () => {
    while (renewing) {
      try {
        await agent.sessionRenew(session);
        renewals++;
      } catch (err) {
        if (renewing) renewErrors.push(err);
      }
      await new Promise((r) => setTimeout(r, ttlMs / 6));
    }
  })();
  t.after(async () => {
    renewing = false;
    await renewLoop;
  });
  assert.equal(await agent.put('endpoints/net1/ep-a', enc('10.0.0.2'), { session }), true);

  await cluster.addManager();
  await cluster.addManager();
  const want = await replica(cluster.managers[0]!);
  for (const m of cluster.managers) {
    await waitFor(`manager ${m.addrForTests()} to hold the KV written before it joined`, async () => {
      const got = await replica(m);
      return got.length === want.length && (await m.kv.sessionInfo(session)) !== undefined;
    });
    assert.deepEqual(await replica(m), want);
  }

  // A follower sends a writer to the leader, and the writer stays there.
  const leader = await cluster.leader();
  const follower = cluster.managers.find((m) => m !== leader)!;
  const viaFollower = client(t, () => [follower.addrForTests()], node);
  assert.equal(await viaFollower.put('static/redirected', enc('yes')), true);
  assert.equal(viaFollower.manager, leader.addrForTests(), 'the client moved to the leader the follower named');
  assert.equal(dec((await viaFollower.get('static/redirected'))?.value), 'yes', 'reads its own write');

  // A watcher blocks on the leader (the first address it was given).
  const watcher = client(t, () => [leader.addrForTests(), ...cluster.addrs()], node);
  const start = await watcher.watch('endpoints/net1', { index: 0, recurse: true, timeoutMs: 0 });
  assert.deepEqual(keysOf(start.entries), ['endpoints/net1/ep-a']);
  const watching = watcher.watch('endpoints/net1', { index: start.index, recurse: true, timeoutMs: 60_000 });

  await cluster.kill(leader);
  const newLeader = await cluster.leader();
  assert.notEqual(newLeader, leader);

  // A write through the new leader wakes the watch that was waiting on the dead one.
  const writer = client(t, () => [leader.addrForTests(), ...cluster.addrs()], node);
  assert.equal(await writer.put('endpoints/net1/ep-b', enc('10.0.0.3')), true);
  const woke = await watching;
  assert.equal(woke.timedOut, false);
  assert.ok(woke.index > start.index);
  assert.deepEqual(keysOf(woke.entries), ['endpoints/net1/ep-a', 'endpoints/net1/ep-b'], 'the session key survived the failover');
  assert.notEqual(watcher.manager, leader.addrForTests(), 'the watch moved off the dead manager');

  // Keep renewing through the new leader for longer than the TTL: the key stays.
  const renewalsAfter = renewals;
  await waitFor(() => `renewals through the new leader to span more than one TTL (errors: ${renewErrors.map(String).join('; ')})`, () => renewals >= renewalsAfter + 8);
  assert.equal(dec((await agent.get('endpoints/net1/ep-a'))?.value), '10.0.0.2');
  assert.equal((await agent.sessionInfo(session))?.node, node.nodeId);
  assert.deepEqual(renewErrors, [], 'renewals failed over instead of failing');

  // The agent stops renewing: the new leader expires the session and its key on every manager.
  renewing = false;
  await renewLoop;
  await waitFor('the session key to vanish after the TTL', async () => (await agent.get('endpoints/net1/ep-a')) === undefined, { timeoutMs: 30_000 });
  assert.equal(await agent.sessionInfo(session), undefined);
  await assert.rejects(agent.sessionRenew(session), (err: Error) => err instanceof KvError && err.code === 'no-session');

  // The dead manager comes back from its disk and catches up with everything it missed.
  const back = await cluster.restart(leader);
  const now = await replica(newLeader);
  assert.deepEqual(keysOf(now), ['endpoints/net1/ep-b', 'static/config', 'static/redirected']);
  await waitFor('the restarted manager to catch up', async () => JSON.stringify(await replica(back)) === JSON.stringify(now));
  assert.equal(await back.kv.sessionInfo(session), undefined);
});

test('the KV service answers only nodes of the cluster', async (t) => {
  const cluster = await TestCluster.start(t);
  // Trusts the managers but shows no certificate of its own.
  const anonymous = new RemoteKv({
    managers: cluster.addrs(),
    credentials: grpc.credentials.createSsl(Buffer.from(cluster.caPem)),
    channelOptions: MANAGER_CHANNEL_OPTIONS,
  });
  t.after(() => anonymous.close());
  await assert.rejects(anonymous.get('k'), (err: Error) => err instanceof KvError && err.code === 'backend' && /certificate/.test(err.message));
  await assert.rejects(anonymous.put('k', enc('v')), (err: Error) => err instanceof KvError && /UNAUTHENTICATED/.test(err.message));

  // A node removed from the cluster is refused by every manager, and the client stops there.
  const node = await cluster.worker();
  const kv = new RemoteKv({ managers: cluster.addrs(), credentials: node.credentials, channelOptions: node.channelOptions });
  t.after(() => kv.close());
  assert.equal(await kv.put('k', enc('v')), true);
  const leader = await cluster.leader();
  await leader.store.update((tx) => tx.remove('nodes', node.nodeId));
  await assert.rejects(kv.get('k'), (err: Error) => err instanceof KvError && err.code === 'backend' && /PERMISSION_DENIED.*removed/.test(err.message));
});

test('a client with no reachable manager fails with a backend error naming them', async (t) => {
  const cluster = await TestCluster.start(t);
  const node = await cluster.worker();
  const addr = cluster.addrs()[0]!;
  await cluster.kill(cluster.managers[0]!);
  const kv: Kv = new RemoteKv({ managers: [addr], credentials: node.credentials, channelOptions: node.channelOptions, failoverTimeoutMs: 300, backoffMs: 20 });
  t.after(() => kv.close());
  await assert.rejects(kv.get('k'), (err: Error) => err instanceof KvError && err.code === 'backend' && err.message.includes(addr));
});
