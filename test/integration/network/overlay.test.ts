// The overlay driver between two hosts over a private underlay: tasks ping across VXLAN, the
// peer table in the KV drives the FDB and neighbour entries (and their removal when a host's
// session dies), an agent restart takes over what it built, and release leaves nothing behind.
// Run against the embedded KV and against a real redis-server.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { localKv } from '../../../manager/kv/embedded.js';
import { RedisKv } from '../../../kv/redis.js';
import type { Kv } from '../../../kv/kv.js';
import type { DiscoveryHook } from '../../../agent/network/discovery.js';
import { Netlink } from '../../../netlink/index.js';
import { startRedisServer } from '../kv/redis-server.js';
import { cid, ipJson, linkNames, makeWorld, namespacesWith, network, nftTables, pings, task, waitFor, waitForPing, type World } from './world.js';

interface LinkDetail {
  ifname: string;
  mtu: number;
  address: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; learning?: boolean; local?: string } };
  addr_info?: Array<{ family: string; local: string; prefixlen: number }>;
}

const decoder = new TextDecoder();

async function fdbMacs(netns: string, dev: string): Promise<string[]> {
  const nl = await Netlink.open({ netns });
  try {
    const link = await nl.getLink(dev);
    return (await nl.listFdb({ link: link.index })).filter((e) => e.dst !== undefined).map((e) => `${e.mac}>${e.dst}`).sort();
  } finally {
    nl.close();
  }
}

async function permanentNeighbours(netns: string, dev: string): Promise<string[]> {
  const nl = await Netlink.open({ netns });
  try {
    return (await nl.listNeighbours({ link: dev })).filter((n) => n.states.includes('permanent')).map((n) => `${n.ip}>${n.mac}`).sort();
  } finally {
    nl.close();
  }
}

class RecordingDiscovery implements DiscoveryHook {
  readonly attached = new Map<string, { clientIp: string; attachments: Array<{ networkId: string; ip: string }> }>();
  readonly detached: string[] = [];
  attach(c: Parameters<DiscoveryHook['attach']>[0]): Promise<{ nameserver: string }> {
    this.attached.set(c.containerId, { clientIp: c.clientIp, attachments: c.attachments });
    return Promise.resolve({ nameserver: '172.18.0.1' });
  }
  detach(containerId: string): Promise<void> {
    this.detached.push(containerId);
    return Promise.resolve();
  }
}

async function overlayScenario(t: TestContext, world: World, kv: Kv): Promise<void> {
  const [hostA, hostB] = world.hosts as [World['hosts'][0], World['hosts'][0]];
  const discovery = new RecordingDiscovery();
  const stateB = await world.stateDir();
  const a = await world.attacher(hostA, kv, { discovery });
  let b = await world.attacher(hostB, kv, { stateDir: stateB });

  const net = network('ovnet0000000000000000001', 'overlay', '10.77.0.0/24', '10.77.0.1', { vni: 4242, name: 'backend' });
  const a1 = task('taska1', [[net, '10.77.0.5/24']]);
  a1.endpoint = { spec: null, ports: [], virtualIps: [{ networkId: net.id, addr: '10.77.0.2/24' }] };
  const a2 = task('taska2', [[net, '10.77.0.7/24']]);
  const b1 = task('taskb1', [[net, '10.77.0.6/24']]);

  const sa1 = await a.prepare(a1, cid(a1));
  await a.prepare(a2, cid(a2));
  const sb1 = await b.prepare(b1, cid(b1));
  const nsA1 = `${world.prefix}${cid(a1).slice(0, 12)}`;
  const nsA2 = `${world.prefix}${cid(a2).slice(0, 12)}`;
  const nsB1 = `${world.prefix}${cid(b1).slice(0, 12)}`;
  assert.equal(sa1.netnsPath, `/run/netns/${nsA1}`);
  assert.equal(sa1.ip, '10.77.0.5');
  assert.equal(sb1.ip, '10.77.0.6');

  await t.test('each task has eth0 with its address and MAC, MTU 1450, and eth1 into the gateway bridge', async () => {
    const [eth0] = await ipJson<LinkDetail>(nsA1, 'addr', 'show', 'eth0');
    assert.deepEqual(eth0?.addr_info?.filter((x) => x.family === 'inet').map((x) => `${x.local}/${x.prefixlen}`), ['10.77.0.5/24']);
    assert.equal(eth0?.address, '02:42:0a:4d:00:05');
    assert.equal(eth0?.mtu, 1450);
    const [eth1] = await ipJson<LinkDetail>(nsA1, 'addr', 'show', 'eth1');
    assert.deepEqual(eth1?.addr_info?.filter((x) => x.family === 'inet').map((x) => `${x.local}/${x.prefixlen}`), ['172.18.0.2/16']);
    const routes = await ipJson<{ dst: string; gateway?: string; dev: string }>(nsA1, 'route', 'show', 'default');
    assert.deepEqual(routes.map((r) => `${r.gateway} ${r.dev}`), ['172.18.0.1 eth1']);
    assert.deepEqual(sa1.dns, { nameservers: ['172.18.0.1'], options: ['ndots:0'] });
    assert.deepEqual(discovery.attached.get(cid(a1)), { clientIp: '172.18.0.2', attachments: [{ networkId: net.id, ip: '10.77.0.5' }] });
  });

  await t.test('the sandbox holds a bridge and a VXLAN device: VNI, port 4789, learning off, MTU 1450', async () => {
    const sandboxes = (await namespacesWith(world.prefix)).filter((n) => n.includes('ov-'));
    assert.equal(sandboxes.length, 2, `one sandbox per host: ${sandboxes.join(' ')}`);
    const sandboxA = sandboxes.find((n) => n.includes('ov-nodea'))!;
    assert.ok(sandboxA, sandboxes.join(' '));
    const [vx] = await ipJson<LinkDetail>(sandboxA, '-d', 'link', 'show', 'vx-001092');
    assert.equal(vx?.linkinfo?.info_kind, 'vxlan');
    assert.equal(vx?.linkinfo?.info_data?.id, 4242);
    assert.equal(vx?.linkinfo?.info_data?.port, 4789);
    assert.equal(vx?.linkinfo?.info_data?.learning, false);
    assert.equal(vx?.linkinfo?.info_data?.local, hostA.ip);
    assert.equal(vx?.mtu, 1450);
    assert.equal(vx?.master, 'br0');
    // Two local tasks: two veths into br0; the remote task is an FDB entry, not a port.
    const ports = (await ipJson<LinkDetail>(sandboxA, 'link', 'show', 'master', 'br0')).map((l) => l.ifname).sort();
    assert.equal(ports.length, 3, ports.join(' '));
    await waitFor('the remote endpoint in A’s FDB', async () => (await fdbMacs(sandboxA, 'vx-001092')).join() === `02:42:0a:4d:00:06>${hostB.ip}`);
    await waitFor('the remote endpoint in a1’s neighbours', async () => (await permanentNeighbours(nsA1, 'eth0')).join() === '10.77.0.6>02:42:0a:4d:00:06');
  });

  await t.test('tasks reach each other across hosts over VXLAN and on the same host', async () => {
    await waitForPing(nsA1, '10.77.0.6');
    await waitForPing(nsB1, '10.77.0.5');
    await waitForPing(nsB1, '10.77.0.7');
    await waitForPing(nsA1, '10.77.0.7');
  });

  await t.test('tasks reach the outside through the gateway bridge (masqueraded)', async () => {
    // Host B has no route back to 172.18.0.0/16: only a masqueraded ping is answered.
    await waitForPing(nsA1, hostB.ip);
    assert.deepEqual(await nftTables(hostA.name), ['ip shoal', 'bridge shoal']);
    // Tasks on the gateway bridge may not talk to each other through it.
    assert.equal(await pings(nsA1, '172.18.0.3'), false);
  });

  await t.test('the peer table holds every endpoint under its host’s session', async () => {
    const entries = await kv.list(`endpoints/${net.id}`);
    const records = entries.map((e) => JSON.parse(decoder.decode(e.value)) as Record<string, unknown>);
    assert.deepEqual(records.map((r) => `${r.ip as string} ${r.node as string} ${r.vtep as string}`).sort(), [
      `10.77.0.5 node-a ${hostA.ip}`, `10.77.0.6 node-b ${hostB.ip}`, `10.77.0.7 node-a ${hostA.ip}`,
    ]);
    const r1 = records.find((r) => r.task === a1.id)!;
    assert.deepEqual(
      { mac: r1.mac, taskName: r1.taskName, serviceId: r1.serviceId, serviceName: r1.serviceName, slot: r1.slot, aliases: r1.aliases, vip: r1.vip, endpointMode: r1.endpointMode, driver: r1.driver, serving: r1.serving },
      { mac: '02:42:0a:4d:00:05', taskName: `web.1.${a1.id}`, serviceId: 'svc1', serviceName: 'web', slot: 1, aliases: ['taska1-alias'], vip: '10.77.0.2', endpointMode: 'vip', driver: 'overlay', serving: false },
    );
    assert.equal(entries.find((e) => e.key.endsWith(b1.id))?.session, b.sessionId);
    assert.equal(entries.find((e) => e.key.endsWith(a1.id))?.session, a.sessionId);
    // The worker says a1 serves: only that field of its record changes, under the same session.
    assert.equal(await a.setServing(a1, cid(a1), true), false);
    const served = (await kv.get(`endpoints/${net.id}/${a1.id}`))!;
    assert.deepEqual(JSON.parse(decoder.decode(served.value)), { ...r1, serving: true });
    assert.equal(served.session, a.sessionId);
    assert.equal(await a.setServing(a1, cid(a1), false), true, 'withdrawn: traffic to it must drain');
  });

  await t.test('a host whose session dies disappears from the others’ FDB and neighbours', async () => {
    const sandboxA = (await namespacesWith(world.prefix)).find((n) => n.includes('ov-nodea'))!;
    const session = b.sessionId!;
    await b.close(); // the agent on B stops renewing (as if the host died) ...
    await kv.sessionDestroy(session); // ... and its session goes
    await waitFor('b1 to leave A’s FDB', async () => (await fdbMacs(sandboxA, 'vx-001092')).length === 0);
    await waitFor('b1 to leave the neighbours of A’s tasks', async () => (await permanentNeighbours(nsA1, 'eth0')).length === 0 && (await permanentNeighbours(nsA2, 'eth0')).length === 0);
    assert.equal(await pings(nsA1, '10.77.0.6'), false);
  });

  await t.test('an agent that restarts takes over its tasks, publishes them again and duplicates nothing', async () => {
    b = await world.attacher(hostB, kv, { stateDir: stateB });
    const again = await b.prepare(b1, cid(b1));
    assert.deepEqual(again, sb1);
    const sandboxB = (await namespacesWith(world.prefix)).find((n) => n.includes('ov-nodeb'))!;
    assert.equal((await ipJson(sandboxB, 'link', 'show', 'master', 'br0')).length, 2, 'the vxlan device and b1’s veth, once each');
    assert.deepEqual((await linkNames(nsB1)).join(), 'eth0,eth1,lo');
    await waitFor('b1 published under the new session', async () => (await kv.get(`endpoints/${net.id}/${b1.id}`))?.session === b.sessionId && b.sessionId !== undefined);
    await waitForPing(nsA1, '10.77.0.6');
  });

  await t.test('release leaves no namespace, link, nftables table or KV key behind', async () => {
    await a.release(a1, cid(a1));
    // a2 still uses the sandbox and the gateway bridge.
    assert.ok((await linkNames(hostA.name)).includes('shoal_gwbridge'));
    await waitForPing(nsB1, '10.77.0.7');
    await a.release(a2, cid(a2));
    await a.release(a2, cid(a2)); // idempotent
    await b.release(b1, cid(b1));
    assert.deepEqual(await namespacesWith(world.prefix), [`${world.prefix}hosta`, `${world.prefix}hostb`, `${world.prefix}underlay`]);
    assert.deepEqual(await linkNames(hostA.name), ['eth0', 'lo']);
    assert.deepEqual(await linkNames(hostB.name), ['eth0', 'lo']);
    assert.deepEqual(await nftTables(hostA.name), []);
    assert.deepEqual(await nftTables(hostB.name), []);
    assert.deepEqual(await kv.list('endpoints', { recurse: true }), []);
    assert.equal(a.sessionId, undefined);
    assert.deepEqual(discovery.detached.sort(), [cid(a1), cid(a2)].sort());
  });
}

test('overlay across two hosts, peer table in the embedded KV', { timeout: 120_000 }, async (t) => {
  const world = await makeWorld(t, 2);
  const { kv } = localKv({ expiryIntervalMs: 100 });
  t.after(() => kv.close());
  await overlayScenario(t, world, kv);
});

test('overlay across two hosts, peer table in redis-server', { timeout: 120_000 }, async (t) => {
  const world = await makeWorld(t, 2);
  const server = await startRedisServer(t);
  const kv = await RedisKv.connect(`${server.url}?prefix=${encodeURIComponent('net/')}`, { sweepIntervalMs: 200 });
  t.after(() => kv.close());
  await overlayScenario(t, world, kv);
});
