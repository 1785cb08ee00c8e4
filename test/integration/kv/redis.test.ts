// The KV specification against the Redis backend and a real redis-server, plus what only Redis
// has: expiry cleanup by keyspace notification alone and by the sweeper alone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisKv, parseRedisUrl } from '../../../kv/redis.js';
import type { Kv } from '../../../kv/kv.js';
import { startRedisServer } from './redis-server.js';
import { kvSuite, waitFor } from './suite.js';

test('RedisKv', async (t) => {
  const server = await startRedisServer(t);
  let namespaces = 0;
  const clients: Kv[] = [];
  t.after(() => Promise.all(clients.map((kv) => kv.close())));
  const open = async (prefix: string, opts: Parameters<typeof RedisKv.connect>[1] = {}): Promise<RedisKv> => {
    const kv = await RedisKv.connect(`${server.url}?prefix=${encodeURIComponent(prefix)}`, opts);
    clients.push(kv);
    return kv;
  };

  // Each case gets its own key namespace on the one server, so cases cannot see each other.
  await kvSuite(t, () => {
    const prefix = `test${++namespaces}/`;
    return Promise.resolve({ open: () => open(prefix, { sweepIntervalMs: 200 }) });
  });

  await t.test('expiry events alone delete an expired session’s keys (sweeper off)', async () => {
    const kv = await open('events-only/', { sweepIntervalMs: 3_600_000 });
    assert.equal(kv.notificationsEnabled, true);
    const id = await kv.sessionCreate({ ttlMs: 200 });
    await kv.put('ep', new Uint8Array([1]), { session: id });
    await waitFor('the key to vanish through the expiry event', async () => (await kv.get('ep')) === undefined);
  });

  await t.test('the sweeper alone deletes an expired session’s keys (no expiry events)', async () => {
    const kv = await open('sweeper-only/', { sweepIntervalMs: 50, keyspaceNotifications: false });
    assert.equal(kv.notificationsEnabled, false);
    const id = await kv.sessionCreate({ ttlMs: 200 });
    await kv.put('ep', new Uint8Array([1]), { session: id });
    await waitFor('the key to vanish through the sweeper', async () => (await kv.get('ep')) === undefined);
  });

  await t.test('a watch whose index is older than the trimmed change stream wakes to resync', async () => {
    const kv = await open('trimmed/', { streamMaxLen: 1 });
    await kv.put('watched', new Uint8Array([1]));
    const start = await kv.watch('watched', { index: 0, timeoutMs: 0 });
    // Redis trims approximately, in whole nodes of 100 entries: write well past that.
    for (let i = 0; i < 300; i++) await kv.put(`noise/${i}`, new Uint8Array([i & 0xff]));
    const result = await kv.watch('watched', { index: start.index, timeoutMs: 30_000 });
    assert.equal(result.timedOut, false, 'unknown history must not look like "no change"');
    assert.ok(result.index > start.index);
  });

  await t.test('the url names the server, database and prefix; a bad one is refused by name', async () => {
    assert.deepEqual(parseRedisUrl('redis://10.0.0.5:6380/2?prefix=net/'), {
      host: '10.0.0.5', port: 6380, db: 2, prefix: 'net/', tls: false,
    });
    assert.equal(parseRedisUrl('redis://h').port, 6379);
    assert.throws(() => parseRedisUrl('http://h:1'), /"http:\/\/h:1".*redis:\/\//);
    assert.throws(() => parseRedisUrl('redis://h:1/x'), /database "x"/);
    await assert.rejects(RedisKv.connect('redis://127.0.0.1:1/0'), /127\.0\.0\.1:1/);
  });
});
