// The bridge driver on one host of a two-host world: the network's bridge with its gateway, the
// task's default route through it, NAT on the way out, host-mode published ports answered for
// clients on other hosts (prerouting) and on the host itself (output, 127.0.0.1 included), a
// published port of 0 bound to a chosen one and reported, two bridge networks isolated from each
// other, and nothing left after.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { localKv } from '../../../manager/kv/embedded.js';
import { Names } from '../../../agent/network/names.js';
import { cid, fetchText, ipJson, linkNames, makeWorld, namespacesWith, network, nftTable, nftTables, pings, serveText, task, waitFor, waitForPing } from './world.js';

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
    assert.equal(await fetchText(hostA.name, '127.0.0.1', 8080), 'hello-from-web1', 'the host reaches it on its loopback');
    assert.equal(await fetchText(hostB.name, hostA.ip, 8081), '', 'an unpublished port is not forwarded');
    assert.deepEqual(setup.hostPorts, [{ name: '', protocol: 'TCP', targetPort: 80, publishedPort: 8080, publishMode: 'HOST' }]);
  });

  await t.test('published port 0: a port of 30000-32767 is chosen, bound and reported', async () => {
    const any = task('web3', [[net, '10.78.0.7/24']], [{ targetPort: 80, publishedPort: 0 }]);
    const s = await a.prepare(any, cid(any));
    t.after(() => a.release(any, cid(any)));
    const bound = s.hostPorts?.[0]?.publishedPort ?? 0;
    assert.ok(bound >= 30000 && bound <= 32767, `published port ${bound} in 30000-32767`);
    assert.deepEqual(s.hostPorts, [{ name: '', protocol: 'TCP', targetPort: 80, publishedPort: bound, publishMode: 'HOST' }]);
    await serveText(t, `${world.prefix}${cid(any).slice(0, 12)}`, 80, 'hello-from-web3');
    await waitFor('host B to reach the chosen port', async () => (await fetchText(hostB.name, hostA.ip, bound)) === 'hello-from-web3');
    const again = await a.prepare(any, cid(any));
    assert.deepEqual(again.hostPorts, s.hostPorts, 'a repeated prepare reports the same port');
    await a.release(any, cid(any));
  });

  await t.test('two bridge networks: no traffic between them; each still reaches out and its published ports', async () => {
    const other = network('brback00000000000000000002', 'bridge', '10.79.0.0/24', '10.79.0.1', { name: 'back' });
    const db = task('db1', [[other, '10.79.0.5/24']]);
    await a.prepare(db, cid(db));
    t.after(() => a.release(db, cid(db)));
    const dbNs = `${world.prefix}${cid(db).slice(0, 12)}`;
    await waitForPing(dbNs, hostB.ip);
    assert.ok(await pings(ns, '10.78.0.1'), 'web1 reaches its own gateway');
    assert.equal(await pings(dbNs, '10.78.0.5'), false, 'db1 (back) does not reach web1 (front)');
    assert.equal(await pings(ns, '10.79.0.5'), false, 'web1 (front) does not reach db1 (back)');
    assert.equal(await fetchText(dbNs, hostA.ip, 8080), 'hello-from-web1', 'a published port is reachable from the other network');
    await a.release(db, cid(db));
    assert.doesNotMatch(await nftTable(hostA.name, 'ip'), /shl-brback0000|ct status dnat accept/, 'with one bridge left, no isolation rule');
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
