// Links, addresses and routes against the real kernel, in namespaces the test creates; `ip -j`
// is the witness and a ping proves the plumbing carries packets.
import assert from 'node:assert/strict';
import { readlinkSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { Netlink, NetlinkError, AF_INET, AF_INET6 } from '../../../netlink/index.js';
import { inNetns, ipJson, tempNetns } from './netns.js';

interface IpLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  address: string;
  master?: string;
  flags: string[];
  operstate: string;
  linkinfo?: { info_kind?: string };
}
interface IpAddr { ifname: string; addr_info: { family: string; local: string; prefixlen: number }[] }
interface IpRoute { dst: string; gateway?: string; dev: string; table?: string }

async function openIn(t: { after(fn: () => void): void }, netns: string): Promise<Netlink> {
  const nl = await Netlink.open({ netns });
  t.after(() => nl.close());
  return nl;
}

test('bridge and a veth pair across two namespaces carry a ping, with addresses and a route', { timeout: 60_000 }, async (t) => {
  const hostNs = await tempNetns(t);
  const taskNs = await tempNetns(t);
  const host = await openIn(t, hostNs);
  const task = await openIn(t, `/run/netns/${taskNs}`); // a path works as well as a name

  await host.createLink({ kind: 'bridge', name: 'br-test', up: true });
  await host.createLink({ kind: 'veth', name: 'veth-host', mtu: 1400, peer: { name: 'eth-task', netns: taskNs, mtu: 1400 } });
  await host.setMaster('veth-host', 'br-test');
  await host.setUp('veth-host');
  await host.addAddress('br-test', '10.77.0.1/24');
  await task.setUp('eth-task');
  await task.setUp('lo');
  await task.addAddress('eth-task', '10.77.0.2/24');
  await task.addRoute({ dst: '10.78.0.0/16', gateway: '10.77.0.1' });
  await task.addRoute({ dst: '10.79.1.0/24', dev: 'eth-task', table: 100 });

  const hostLinks = await ipJson<IpLink>(hostNs, '-d', 'link', 'show');
  const veth = hostLinks.find((l) => l.ifname === 'veth-host');
  assert.equal(veth?.master, 'br-test');
  assert.equal(veth?.mtu, 1400);
  assert.ok(veth?.flags.includes('UP'));
  assert.equal(hostLinks.find((l) => l.ifname === 'br-test')?.linkinfo?.info_kind, 'bridge');
  assert.equal(hostLinks.some((l) => l.ifname === 'eth-task'), false, 'the peer was created in the task namespace');
  const taskLinks = await ipJson<IpLink>(taskNs, 'link', 'show');
  assert.equal(taskLinks.find((l) => l.ifname === 'eth-task')?.mtu, 1400);

  const brAddrs = await ipJson<IpAddr>(hostNs, 'addr', 'show', 'dev', 'br-test');
  assert.deepEqual(brAddrs[0].addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`), ['10.77.0.1/24']);
  const routes = await ipJson<IpRoute>(taskNs, 'route', 'show');
  assert.ok(routes.some((r) => r.dst === '10.78.0.0/16' && r.gateway === '10.77.0.1' && r.dev === 'eth-task'), JSON.stringify(routes));
  const table100 = await ipJson<IpRoute>(taskNs, 'route', 'show', 'table', '100');
  assert.deepEqual(table100.map((r) => [r.dst, r.dev]), [['10.79.1.0/24', 'eth-task']]);

  // What the client lists agrees with what ip saw.
  const bridge = await host.getLink('br-test');
  const vethLink = await host.getLink('veth-host');
  assert.equal(vethLink.master, bridge.index);
  assert.equal(vethLink.kind, 'veth');
  assert.equal(vethLink.slaveKind, 'bridge');
  assert.equal((await host.getLink(bridge.index)).name, 'br-test');
  const addrs = await task.listAddresses({ link: 'eth-task', family: AF_INET });
  assert.deepEqual(addrs.map((a) => a.cidr), ['10.77.0.2/24']);
  const clientRoutes = await task.listRoutes();
  assert.ok(clientRoutes.some((r) => r.dst === '10.78.0.0/16' && r.gateway === '10.77.0.1'));
  assert.ok(!clientRoutes.some((r) => r.dst === '10.79.1.0/24'), 'table 100 is not the main table');
  assert.deepEqual((await task.listRoutes({ table: 100 })).map((r) => r.dst), ['10.79.1.0/24']);

  const ping = await inNetns(taskNs, 'busybox', 'ping', '-c', '1', '-w', '10', '10.77.0.1');
  assert.equal(ping.code, 0, ping.output);

  await task.deleteRoute({ dst: '10.78.0.0/16', gateway: '10.77.0.1' });
  await task.deleteAddress('eth-task', '10.77.0.2/24');
  assert.ok(!(await ipJson<IpRoute>(taskNs, 'route', 'show')).some((r) => r.dst === '10.78.0.0/16'));
  assert.deepEqual((await task.listAddresses({ link: 'eth-task', family: AF_INET })), []);
});

test('link attributes change: mtu, MAC, down, nomaster, rename, delete; IPv6 addresses', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await openIn(t, ns);
  await nl.createLink({ kind: 'bridge', name: 'br0' });
  await nl.createLink({ kind: 'veth', name: 'a0', peer: { name: 'a1' }, master: 'br0', up: true });
  assert.equal((await nl.getLink('a0')).master, (await nl.getLink('br0')).index);

  await nl.setMtu('a0', 1280);
  await nl.setMac('a0', '02:aa:bb:cc:dd:01');
  await nl.setNoMaster('a0');
  await nl.setDown('a0');
  let [ip] = await ipJson<IpLink>(ns, 'link', 'show', 'a0');
  assert.equal(ip.mtu, 1280);
  assert.equal(ip.address, '02:aa:bb:cc:dd:01');
  assert.equal(ip.master, undefined);
  assert.ok(!ip.flags.includes('UP'));

  await nl.addAddress('br0', 'fd00:77::1/64');
  const v6 = await ipJson<IpAddr>(ns, 'addr', 'show', 'dev', 'br0');
  assert.ok(v6[0].addr_info.some((a) => a.family === 'inet6' && a.local === 'fd00:77::1' && a.prefixlen === 64), JSON.stringify(v6));
  assert.deepEqual((await nl.listAddresses({ link: 'br0', family: AF_INET6 })).map((a) => a.cidr).filter((c) => c.startsWith('fd00')), ['fd00:77::1/64']);
  await nl.deleteAddress('br0', 'fd00:77::1/64');
  assert.deepEqual((await nl.listAddresses({ link: 'br0', family: AF_INET6 })).filter((a) => a.address.startsWith('fd00')), []);

  const index = (await nl.getLink('a0')).index;
  await nl.rename('a0', 'renamed0');
  [ip] = await ipJson<IpLink>(ns, 'link', 'show', 'renamed0');
  assert.equal(ip.ifindex, index);
  assert.equal(await nl.findLink('a0'), undefined);

  await nl.deleteLink('renamed0'); // deleting one end of a veth removes both
  const names = (await nl.listLinks()).map((l) => l.name).sort();
  assert.deepEqual(names, ['br0', 'lo']);
});

test('a link moves to another namespace by name, by fd and by pid', { timeout: 60_000 }, async (t) => {
  const a = await tempNetns(t);
  const b = await tempNetns(t);
  const nl = await openIn(t, a);
  const nb = await openIn(t, b);
  await nl.createLink({ kind: 'veth', name: 'm0', peer: { name: 'm1' } });
  await nl.createLink({ kind: 'veth', name: 'm2', peer: { name: 'm3', netns: b } }); // bridges cannot move

  await nl.moveToNetns('m0', b);
  const fd = await open(`/run/netns/${b}`, 'r');
  try {
    await nl.moveToNetns('m1', { fd: fd.fd });
  } finally {
    await fd.close();
  }
  // A process living in b: `ip netns exec b sleep` becomes one once it has entered b.
  const sleeper = spawn('ip', ['netns', 'exec', b, 'sleep', '60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  const pid = sleeper.pid;
  assert.ok(pid !== undefined);
  await until(() => sameNetns(`/proc/${pid}/ns/net`, `/run/netns/${b}`));
  await nl.moveToNetns('m2', { pid });

  assert.deepEqual((await nl.listLinks()).map((l) => l.name), ['lo']);
  assert.deepEqual((await nb.listLinks()).map((l) => l.name).sort(), ['lo', 'm0', 'm1', 'm2', 'm3']);
});

test('opening a client in a namespace leaves the calling thread in its own namespace', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const before = readlinkSync('/proc/thread-self/ns/net');
  const nl = await openIn(t, ns);
  assert.equal(readlinkSync('/proc/thread-self/ns/net'), before);
  assert.deepEqual((await nl.listLinks()).map((l) => l.name), ['lo']);
});

test('errors name the operation and the object', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await openIn(t, ns);
  await nl.createLink({ kind: 'bridge', name: 'br-dup' });
  await assert.rejects(nl.createLink({ kind: 'bridge', name: 'br-dup' }), (err: unknown) => {
    assert.ok(err instanceof NetlinkError);
    assert.equal(err.message, 'bridge br-dup: File exists');
    assert.equal(err.code, 'EEXIST');
    assert.equal(err.errno, 17);
    return true;
  });
  await assert.rejects(nl.deleteLink('nosuch0'), { message: 'delete link nosuch0: No such device', code: 'ENODEV' });
  await assert.rejects(nl.getLink(9999), { message: 'link #9999: No such device' });
  await assert.rejects(nl.addAddress('nosuch0', '10.0.0.1/24'), { message: 'add address 10.0.0.1/24 to link nosuch0: link nosuch0 does not exist', code: 'ENODEV' });
  await assert.rejects(nl.addAddress('br-dup', '10.0.0.300/24'), /"10.0.0.300" is not an IPv4 or IPv6 address/);
  await nl.addAddress('br-dup', '10.0.0.1/24');
  await assert.rejects(nl.addAddress('br-dup', '10.0.0.1/24'), { message: /^add address 10.0.0.1\/24 to link br-dup: File exists/ });
  await assert.rejects(nl.addRoute({ dst: '10.5.0.0/16', gateway: '10.9.9.9' }), (err: unknown) => {
    assert.ok(err instanceof NetlinkError);
    assert.match(err.message, /^add route 10.5.0.0\/16 via 10.9.9.9: /);
    assert.equal(err.code, 'ENETUNREACH');
    return true;
  });
  await assert.rejects(nl.createLink({ kind: 'bridge', name: 'this-name-is-too-long' }), /"this-name-is-too-long" is not a valid link name/);
  await assert.rejects(Netlink.open({ netns: 'shnl-does-not-exist' }), /\/run\/netns\/shnl-does-not-exist: No such file or directory/);
});

async function sameNetns(a: string, b: string): Promise<boolean> {
  try {
    const [x, y] = await Promise.all([stat(a), stat(b)]);
    return x.ino === y.ino && x.dev === y.dev;
  } catch {
    return false;
  }
}

/** Polls a condition (a child needs a moment to enter its namespace). */
async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('condition never became true');
}
