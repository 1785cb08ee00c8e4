// The bridge driver on one host of a two-host world: the network's bridge with its gateway, the
// task's default route through it, NAT on the way out, host-mode published ports answered for
// clients on other hosts (prerouting) and on the host itself (output), and nothing left after.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { localKv } from '../../../manager/kv/embedded.js';
import { Names } from '../../../agent/network/names.js';
import { cid, fetchText, ipJson, linkNames, makeWorld, namespacesWith, network, nftTable, nftTables, serveText, task, waitFor, waitForPing } from './world.js';

test('bridge network: gateway, NAT, host-mode published ports, clean release', { timeout: 120_000 }, async (t) => {
  const world = await makeWorld(t, 2);
  const [hostA, hostB] = world.hosts as [(typeof world.hosts)[0], (typeof world.hosts)[0]];
  const { kv } = localKv();
  t.after(() => kv.close());
  const a = await world.attacher(hostA, kv);

  const net = network('brnet000000000000000000001', 'bridge', '10.78.0.0/24', '10.78.0.1', { name: 'front' });
  const web = task('web1', [[net, '10.78.0.5/24']], [{ targetPort: 80, publishedPort: 8080 }]);
  const setup = await a.prepare(web, cid(web));
  const ns = `${world.prefix}${cid(web).slice(0, 12)}`;
  const bridge = Names.bridge(net.id);
  assert.ok(bridge.length <= 15);

  await t.test('the bridge carries the gateway; the task routes through it', async () => {
    assert.equal(setup.ip, '10.78.0.5');
    const [br] = await ipJson<{ addr_info: Array<{ local: string; prefixlen: number }> }>(hostA.name, '-4', 'addr', 'show', bridge);
    assert.deepEqual(br?.addr_info.map((x) => `${x.local}/${x.prefixlen}`), ['10.78.0.1/24']);
    const routes = await ipJson<{ gateway?: string; dev: string }>(ns, 'route', 'show', 'default');
    assert.deepEqual(routes.map((r) => `${r.gateway} ${r.dev}`), ['10.78.0.1 eth0']);
    assert.deepEqual(await linkNames(ns), ['eth0', 'lo'], 'no gateway bridge for a task with a bridge network');
    // Masqueraded: host B has no route to 10.78.0.0/24.
    await waitForPing(ns, hostB.ip);
  });

  await t.test('a published port answers clients on other hosts and on the host itself', async () => {
    assert.match(await nftTable(hostA.name, 'ip'), /tcp dport 8080 dnat to 10\.78\.0\.5:80/);
    await serveText(t, ns, 80, 'hello-from-web1');
    await waitFor('host B to reach the published port', async () => (await fetchText(hostB.name, hostA.ip, 8080)) === 'hello-from-web1');
    assert.equal(await fetchText(hostA.name, hostA.ip, 8080), 'hello-from-web1');
    assert.equal(await fetchText(hostB.name, hostA.ip, 8081), '', 'an unpublished port is not forwarded');
  });

  await t.test('a second task cannot publish the same host port; its failure leaves nothing', async () => {
    const other = task('web2', [[net, '10.78.0.6/24']], [{ targetPort: 80, publishedPort: 8080 }]);
    await assert.rejects(a.prepare(other, cid(other)), /task web2: host port 8080\/tcp is already published on this node by task web1/);
    assert.ok(!(await namespacesWith(world.prefix)).includes(`${world.prefix}${cid(other).slice(0, 12)}`));
    assert.match(await nftTable(hostA.name, 'ip'), /dnat to 10\.78\.0\.5:80/, 'the first task keeps its port');
  });

  await t.test('release removes the rules, the bridge and the namespace', async () => {
    await a.release(web, cid(web));
    assert.deepEqual(await nftTables(hostA.name), []);
    assert.deepEqual(await linkNames(hostA.name), ['eth0', 'lo']);
    assert.deepEqual(await namespacesWith(world.prefix), [`${world.prefix}hosta`, `${world.prefix}hostb`, `${world.prefix}underlay`]);
    assert.equal(await fetchText(hostB.name, hostA.ip, 8080), '');
    assert.deepEqual(await kv.list('endpoints', { recurse: true }), []);
  });
});
