// connectKv: an agent asks the managers which KV the cluster was founded with (ClusterSpec.kv_url)
// and gets the managers' service or a direct connection to the cluster's Redis server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { connectKv } from '../../../kv/connect.js';
import { KvError } from '../../../kv/kv.js';
import { RedisKv } from '../../../kv/redis.js';
import { RemoteKv } from '../../../kv/remote.js';
import { startRedisServer } from './redis-server.js';
import { TestCluster } from './cluster.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('a cluster with the embedded KV hands agents the managers\' KV service', async (t) => {
  const cluster = await TestCluster.start(t);
  const node = await cluster.worker();
  const kv = await connectKv({ managers: cluster.addrs(), credentials: node.credentials, channelOptions: node.channelOptions });
  t.after(() => kv.close());
  assert.ok(kv instanceof RemoteKv);
  assert.deepEqual(await kv.backend(), { kind: 'embedded', url: '' });
  assert.equal(await kv.put('peers/a', enc('1')), true);
  const leader = await cluster.leader();
  assert.equal(new TextDecoder().decode((await leader.kv.get('peers/a'))!.value), '1', 'written into the managers\' replicas');
});

test('a cluster founded with --kv redis:// sends agents to Redis, and its managers refuse KV calls', async (t) => {
  const redis = await startRedisServer(t);
  const url = `${redis.url}?prefix=cluster1/`;
  const cluster = await TestCluster.start(t, { kvUrl: url });
  const node = await cluster.worker();
  const kv = await connectKv({ managers: cluster.addrs(), credentials: node.credentials, channelOptions: node.channelOptions });
  t.after(() => kv.close());
  assert.ok(kv instanceof RedisKv);
  assert.equal(await kv.put('peers/a', enc('1')), true);

  // Another agent reaching Redis directly sees the same key: one store for the cluster.
  const direct = await RedisKv.connect(url);
  t.after(() => direct.close());
  assert.equal(new TextDecoder().decode((await direct.get('peers/a'))!.value), '1');

  const leader = await cluster.leader();
  assert.equal(await leader.kv.get('peers/a'), undefined, 'nothing went into the managers\' own KV');
  const remote = new RemoteKv({ managers: cluster.addrs(), credentials: node.credentials, channelOptions: node.channelOptions });
  t.after(() => remote.close());
  await assert.rejects(remote.put('peers/b', enc('2')), (err: Error) => err instanceof KvError && err.code === 'backend' && /Redis/.test(err.message));
});
