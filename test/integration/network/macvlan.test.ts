// The macvlan driver: tasks on two hosts sit directly on the underlay segment through macvlan
// links on each host's eth0, and reach each other and the hosts there. 802.1Q parents need the
// kernel's 8021q; without it the refusal names the parent. A macvlan-only task shares no
// interface with its host, so service discovery answers it on 127.0.0.11 inside its namespace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ServiceDiscovery } from '../../../agent/network/dns/servicediscovery.js';
import { localKv } from '../../../manager/kv/embedded.js';
import { cid, inNetns, ipJson, linkNames, makeWorld, namespacesWith, network, task, waitFor, waitForPing } from './world.js';

interface LinkDetail {
  ifname: string;
  address: string;
  linkinfo?: { info_kind?: string; info_data?: { mode?: string } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

test('macvlan tasks on two hosts share the underlay segment', { timeout: 120_000 }, async (t) => {
  const world = await makeWorld(t, 2);
  const [hostA, hostB] = world.hosts as [(typeof world.hosts)[0], (typeof world.hosts)[0]];
  const { kv } = localKv();
  t.after(() => kv.close());
  const a = await world.attacher(hostA, kv);
  const b = await world.attacher(hostB, kv);

  const net = network('mvnet000000000000000000001', 'macvlan', '198.18.0.0/24', '198.18.0.254', { options: { parent: 'eth0' } });
  const m1 = task('mv1', [[net, '198.18.0.10/24']]);
  const m2 = task('mv2', [[net, '198.18.0.11/24']]);
  await a.prepare(m1, cid(m1));
  await b.prepare(m2, cid(m2));
  const ns1 = `${world.prefix}${cid(m1).slice(0, 12)}`;
  const ns2 = `${world.prefix}${cid(m2).slice(0, 12)}`;

  const [eth0] = await ipJson<LinkDetail>(ns1, '-d', 'addr', 'show', 'eth0');
  assert.equal(eth0?.linkinfo?.info_kind, 'macvlan');
  assert.equal(eth0?.linkinfo?.info_data?.mode, 'bridge');
  assert.equal(eth0?.address, '02:42:c6:12:00:0a');
  assert.deepEqual(eth0?.addr_info?.filter((x) => x.family === 'inet').map((x) => `${x.local}/${x.prefixlen}`), ['198.18.0.10/24']);
  const routes = await ipJson<{ gateway?: string }>(ns1, 'route', 'show', 'default');
  assert.deepEqual(routes.map((r) => r.gateway), ['198.18.0.254']);

  await waitForPing(ns1, '198.18.0.11');
  await waitForPing(ns2, '198.18.0.10');
  await waitForPing(ns1, hostB.ip);

  await a.release(m1, cid(m1));
  await b.release(m2, cid(m2));
  assert.deepEqual(await linkNames(hostA.name), ['eth0', 'lo']);
  assert.deepEqual(await namespacesWith(world.prefix), [`${world.prefix}hosta`, `${world.prefix}hostb`, `${world.prefix}underlay`]);
});

test('macvlan-only tasks resolve service names on 127.0.0.11 inside their own namespace', { timeout: 120_000 }, async (t) => {
  const world = await makeWorld(t, 2);
  const [hostA, hostB] = world.hosts as [(typeof world.hosts)[0], (typeof world.hosts)[0]];
  const { kv } = localKv();
  const discovery = () => {
    const sd = new ServiceDiscovery({ kv, resolvConfPath: '/nonexistent', readyTimeoutMs: 2_000 });
    t.after(() => sd.close());
    return sd;
  };
  t.after(() => kv.close());
  const a = await world.attacher(hostA, kv, { discovery: discovery() });
  const b = await world.attacher(hostB, kv, { discovery: discovery() });

  const net = network('mvdns00000000000000000001', 'macvlan', '198.18.0.0/24', '198.18.0.254', { options: { parent: 'eth0' } });
  const m1 = task('mvd1', [[net, '198.18.0.20/24']]);
  const m2 = task('mvd2', [[net, '198.18.0.21/24']]);
  Object.assign(m1, { serviceId: 'svc-alpha', serviceName: 'alpha' });
  Object.assign(m2, { serviceId: 'svc-beta', serviceName: 'beta' });
  const s1 = await a.prepare(m1, cid(m1));
  await b.prepare(m2, cid(m2));
  assert.deepEqual(s1.dns?.nameservers, ['127.0.0.11']);
  const ns1 = `${world.prefix}${cid(m1).slice(0, 12)}`;

  const lookup = async (name: string) => {
    const r = await inNetns(ns1, 'busybox', 'nslookup', name, '127.0.0.11');
    return [...r.output.matchAll(/^Address:\s+(\d+\.\d+\.\d+\.\d+)$/gm)].map((m) => m[1]!);
  };
  // Published from prepare on (reachable), but named only once the worker says a task serves.
  assert.equal(await a.setServing(m1, cid(m1), true), false, 'starting to serve drains nothing');
  assert.equal(await b.setServing(m2, cid(m2), true), false);
  await waitFor('alpha (h A) to resolve tasks.beta (h B)', async () => (await lookup('tasks.beta')).join() === '198.18.0.21');
  assert.deepEqual(await lookup('tasks.alpha'), ['198.18.0.20']);
  assert.deepEqual(await lookup('tasks.nosuch'), []);
  // Withdrawn (a task about to stop): host A stops naming it while it is still wired.
  assert.equal(await b.setServing(m2, cid(m2), false), true, 'a serving task withdrawn: traffic must drain');
  assert.equal(await b.setServing(m2, cid(m2), false), false, 'withdrawn already');
  await waitFor('tasks.beta to resolve to nothing once beta does not serve', async () => (await lookup('tasks.beta')).length === 0);
  assert.deepEqual(await lookup('tasks.alpha'), ['198.18.0.20']);
  await b.setServing(m2, cid(m2), true);
  await waitFor('tasks.beta to resolve again once beta serves', async () => (await lookup('tasks.beta')).join() === '198.18.0.21');

  // Released: the sockets in the namespace are closed with it, and a new prepare binds again.
  await a.release(m1, cid(m1));
  await a.prepare(m1, cid(m1));
  await a.setServing(m1, cid(m1), true);
  await waitFor('tasks.beta to resolve again after a new prepare', async () => (await lookup('tasks.beta')).join() === '198.18.0.21');
  await a.release(m1, cid(m1));
  await b.release(m2, cid(m2));
  assert.deepEqual(await namespacesWith(world.prefix), [`${world.prefix}hosta`, `${world.prefix}hostb`, `${world.prefix}underlay`]);
});

test('macvlan options: the mode, a missing parent, an 802.1Q parent', { timeout: 60_000 }, async (t) => {
  const world = await makeWorld(t, 1);
  const [host] = world.hosts as [(typeof world.hosts)[0]];
  const { kv } = localKv();
  t.after(() => kv.close());
  const a = await world.attacher(host, kv);

  await t.test('macvlan_mode picks the mode', async () => {
    const net = network('mvnet000000000000000000002', 'macvlan', '198.18.0.0/24', '', { options: { parent: 'eth0', macvlan_mode: 'private' } });
    const m = task('mvp', [[net, '198.18.0.20/24']]);
    await a.prepare(m, cid(m));
    const ns = `${world.prefix}${cid(m).slice(0, 12)}`;
    const [eth0] = await ipJson<LinkDetail>(ns, '-d', 'link', 'show', 'eth0');
    assert.equal(eth0?.linkinfo?.info_data?.mode, 'private');
    assert.deepEqual(await ipJson(ns, 'route', 'show', 'default'), [], 'no gateway, no default route');
    await a.release(m, cid(m));
  });

  await t.test('a parent that does not exist, or none, is named', async () => {
    const none = task('mvn', [[network('mvnet000000000000000000003', 'macvlan', '198.18.0.0/24', '', { name: 'lan' }), '198.18.0.21/24']]);
    await assert.rejects(a.prepare(none, cid(none)), /macvlan network "lan" \(mvnet0000000\): no parent interface \(create it with -o parent=IF\)/);
    const missing = task('mvm', [[network('mvnet000000000000000000004', 'macvlan', '198.18.0.0/24', '', { name: 'lan', options: { parent: 'eth9' } }), '198.18.0.22/24']]);
    await assert.rejects(a.prepare(missing, cid(missing)), /macvlan network "lan" \(mvnet0000000\): parent interface eth9 does not exist/);
  });

  await t.test('parent eth0.10: the sub-interface is created, or refused naming the parent and 8021q', async (tt) => {
    const net = network('mvnet000000000000000000005', 'macvlan', '198.18.10.0/24', '', { name: 'vlan10', options: { parent: 'eth0.10' } });
    const m = task('mvv', [[net, '198.18.10.5/24']]);
    try {
      await a.prepare(m, cid(m));
    } catch (err) {
      assert.match((err as Error).message, /macvlan network "vlan10" \(mvnet0000000\): cannot create parent eth0\.10: .*8021q/);
      tt.skip('this kernel has no 802.1Q support (module 8021q): only the refusal is checked');
      return;
    }
    assert.ok((await linkNames(host.name)).includes('eth0.10'));
    await a.release(m, cid(m));
    assert.ok(!(await linkNames(host.name)).includes('eth0.10'), 'the sub-interface goes with the network');
  });

  assert.deepEqual(await linkNames(host.name), ['eth0', 'lo']);
  assert.deepEqual(await namespacesWith(world.prefix), [`${world.prefix}hosta`, `${world.prefix}underlay`]);
});
