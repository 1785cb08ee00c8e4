// The overlay scenario with the cluster's KV in Redis (issue #7): h1's shoald founds the swarm with
// `--kv redis://…` pointing at a redis-server running on h1's lab address, and every agent keeps
// the overlay peer table there. test and test1 on h2, test2 on h3 ping each other by name; the
// peer table's keys are in Redis; h3 killed and cut off, its endpoints' session expires in Redis
// and they leave the KV and h2's forwarding table; after removal no key names the network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, closeSync } from 'node:fs';
import { Lab } from '../../deploy/labkit/lab.js';
import { formCluster, killDaemon } from '../../deploy/labkit/cluster.js';
import { testLabName } from './labkit/helpers.js';
import { waitFor } from '../support/wait.js';
import { agentNamespaces, idle, kvKeys, labImage, shoal, waitForPing, waitForTasks } from './probes.js';

/** The agents' peer-table session TTL (agent/network/attacher.ts, sessionTtlMs default). */
const PEER_SESSION_TTL_MS = 15_000;
const REDIS_PORT = 6379;

test('overlay with the KV in Redis: names across hosts, a host lost, nothing left after removal', async (t) => {
  const lab = new Lab(testLabName('netredis'));
  t.after(async () => {
    await lab.down();
  });
  await lab.up({ hosts: 3, registry: true });
  const h1 = lab.host('h1');
  // In h1's namespace, on its lab address only: the hosts reach it over the sealed underlay, so
  // protected mode (loopback clients only, without a password) is off. No persistence: the data
  // dies with the lab (down kills every process in its namespaces).
  const log = openSync(`${h1.runDir}/redis.log`, 'a');
  const redis = lab.spawn('h1', ['redis-server', '--bind', h1.address, '--port', String(REDIS_PORT), '--protected-mode', 'no', '--save', '', '--appendonly', 'no', '--dir', h1.runDir], { stdio: ['ignore', log, log] });
  closeSync(log);
  t.after(() => {
    if (redis.exitCode === null && redis.signalCode === null) redis.kill('SIGKILL');
  });
  const redisCli = (...args: string[]) => lab.exec('h1', ['redis-cli', '-h', h1.address, '-p', String(REDIS_PORT), ...args]);
  await waitFor('redis-server to answer', async () => (await redisCli('ping')).stdout.trim() === 'PONG', { timeoutMs: 10_000 });

  await formCluster(lab, 1, () => {}, { founderFlags: ['--kv', `redis://${h1.address}:${REDIS_PORT}`] });
  const image = labImage(lab);
  const netId = shoal(lab, 'h1', ['network', 'create', '--driver', 'overlay', 'overlay_net01']).trim();
  for (const [name, host] of [['test', 'h2'], ['test1', 'h2'], ['test2', 'h3']] as const) {
    shoal(lab, 'h1', ['service', 'create', '--detach', '--name', name, '--network', 'overlay_net01', '--constraint', `node.hostname==${host}`, image, ...idle]);
  }
  const task = await waitForTasks(lab, ['test', 'test1', 'test2']);
  const redisKeysOfNetwork = async () => (await redisCli('--scan', '--pattern', `*${netId}*`)).stdout.split('\n').filter(Boolean);

  await t.test('test pings test1 and test2 by name; the peer table is in Redis', async () => {
    await waitForPing(lab, task.test!, 'test1');
    await waitForPing(lab, task.test!, 'test2');
    await waitForPing(lab, task.test2!, 'test');
    const keys = await kvKeys(lab, 'h2', `endpoints/${netId}`);
    assert.deepEqual(keys, [task.test!.id, task.test1!.id, task.test2!.id].map((id) => `endpoints/${netId}/${id}`).sort());
    assert.ok((await redisKeysOfNetwork()).length >= 3, 'Redis itself holds the endpoints');
  });

  await t.test('h3 killed and cut off: its endpoint’s session expires and it leaves the peer tables', async () => {
    const sandbox = (await agentNamespaces(lab, 'h2')).find((n) => n.includes('.ov-') && n.endsWith(netId.slice(0, 12).toLowerCase()));
    assert.ok(sandbox, 'h2 has a sandbox for overlay_net01');
    const toH3 = async () => (await lab.exec('h2', ['bridge', '-n', sandbox, 'fdb', 'show'])).stdout.split('\n').filter((l) => l.includes(`dst ${lab.host('h3').address} `));
    assert.ok((await toH3()).length > 0, 'h2 forwards to test2 on h3');
    const killedAt = Date.now();
    await killDaemon(lab, 'h3');
    assert.equal((await lab.exec('h3', ['ip', 'link', 'set', 'eth0', 'down'])).code, 0);
    await waitFor('test2’s endpoint to leave the KV and h2’s FDB', async () => {
      const keys = await kvKeys(lab, 'h2', `endpoints/${netId}`);
      return !keys.includes(`endpoints/${netId}/${task.test2!.id}`) && (await toH3()).length === 0;
    }, { timeoutMs: PEER_SESSION_TTL_MS + 15_000 });
    t.diagnostic(`h3's endpoint left the peer tables ${Date.now() - killedAt} ms after the kill (session TTL ${PEER_SESSION_TTL_MS} ms)`);
    await waitForPing(lab, task.test!, 'test1');
  });

  await t.test('services and the network removed: no key of the network left in Redis', async () => {
    shoal(lab, 'h1', ['service', 'rm', 'test', 'test1', 'test2']);
    await waitFor('network rm overlay_net01', () => shoal(lab, 'h1', ['network', 'rm', 'overlay_net01']).trim() === 'overlay_net01', { timeoutMs: 30_000 });
    let last: string[] = [];
    await waitFor(() => `no Redis key naming the network (last: ${last.join(' ')})`, async () => (last = await redisKeysOfNetwork()).length === 0, { timeoutMs: 20_000 });
    await waitFor('h2 without a namespace of the network', async () => !(await agentNamespaces(lab, 'h2')).some((n) => n.endsWith(netId.slice(0, 12).toLowerCase())), { timeoutMs: 20_000 });
  });
});
