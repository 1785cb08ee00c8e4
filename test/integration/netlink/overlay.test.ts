// The overlay layout shoal programs on each host: a vxlan device without learning, whose remote
// endpoints are static FDB entries (MAC → remote VTEP) and neighbour entries (IP → MAC).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Netlink, NetlinkError, VXLAN_PORT } from '../../../netlink/index.js';
import { bridgeJson, ipJson, tempNetns } from './netns.js';

interface IpLinkDetail {
  ifname: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; port?: number; learning?: boolean; local?: string; link?: string } };
}
interface FdbRow { mac: string; ifname: string; dst?: string; flags?: string[]; state?: string }
interface NeighRow { dst: string; dev: string; lladdr?: string; state?: string[] }

test('vxlan with learning off, static FDB and neighbour entries towards a remote VTEP', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await Netlink.open({ netns: ns });
  t.after(() => nl.close());

  // The underlay: a veth end with the host's VTEP address.
  await nl.createLink({ kind: 'veth', name: 'underlay0', peer: { name: 'underlay1' }, up: true });
  await nl.addAddress('underlay0', '192.168.50.1/24');
  await nl.createLink({ kind: 'bridge', name: 'br-ov', up: true });
  await nl.createLink({ kind: 'vxlan', name: 'vx-0001f2', vni: 0x1f2, local: '192.168.50.1', dev: 'underlay0', master: 'br-ov', mtu: 1450 });
  await nl.setUp('vx-0001f2');

  const [vx] = await ipJson<IpLinkDetail>(ns, '-d', 'link', 'show', 'vx-0001f2');
  assert.equal(vx.linkinfo?.info_kind, 'vxlan');
  assert.equal(vx.linkinfo?.info_data?.id, 0x1f2);
  assert.equal(vx.linkinfo?.info_data?.port, 4789);
  assert.equal(vx.linkinfo?.info_data?.learning, false);
  assert.equal(vx.linkinfo?.info_data?.local, '192.168.50.1');
  assert.equal(vx.linkinfo?.info_data?.link, 'underlay0');
  assert.equal(vx.master, 'br-ov');

  const link = await nl.getLink('vx-0001f2');
  assert.deepEqual(link.vxlan, {
    vni: 0x1f2, port: VXLAN_PORT, learning: false, local: '192.168.50.1', remote: undefined,
    dev: (await nl.getLink('underlay0')).index,
  });

  // Remote endpoint 10.0.9.5 (02:42:0a:00:09:05) lives behind VTEP 192.168.50.2.
  await nl.addFdb('vx-0001f2', { mac: '02:42:0a:00:09:05', dst: '192.168.50.2' });
  await nl.addFdb('vx-0001f2', { mac: '00:00:00:00:00:00', dst: '192.168.50.2' }, 'append');
  await nl.addFdb('vx-0001f2', { mac: '00:00:00:00:00:00', dst: '192.168.50.3' }, 'append');
  await nl.addNeighbour('vx-0001f2', '10.0.9.5', '02:42:0a:00:09:05');

  const fdb = (await bridgeJson<FdbRow>(ns, 'fdb', 'show', 'dev', 'vx-0001f2')).filter((r) => r.dst !== undefined);
  const rows = fdb.map((r) => `${r.mac} ${r.dst} ${r.state ?? ''} ${(r.flags ?? []).join(',')}`).sort();
  assert.deepEqual(rows, [
    '00:00:00:00:00:00 192.168.50.2 permanent self',
    '00:00:00:00:00:00 192.168.50.3 permanent self',
    '02:42:0a:00:09:05 192.168.50.2 permanent self',
  ]);
  const neigh = await ipJson<NeighRow>(ns, 'neigh', 'show', 'dev', 'vx-0001f2');
  assert.deepEqual(neigh.map((n) => [n.dst, n.lladdr, n.state]), [['10.0.9.5', '02:42:0a:00:09:05', ['PERMANENT']]]);

  // The client reads back what it wrote.
  const entries = (await nl.listFdb({ link: 'vx-0001f2' })).filter((e) => e.dst !== undefined);
  assert.deepEqual(entries.map((e) => `${e.mac} ${e.dst} ${e.states.join(',')}`).sort(), rows.map((r) => r.replace(/ self$/, '')));
  const neighbours = await nl.listNeighbours({ link: 'vx-0001f2' });
  assert.deepEqual(neighbours.map((n) => [n.ip, n.mac, n.states]), [['10.0.9.5', '02:42:0a:00:09:05', ['permanent']]]);

  // The endpoint moves to another host: replace both entries; then it goes away.
  await assert.rejects(nl.addNeighbour('vx-0001f2', '10.0.9.5', '02:42:0a:00:09:06'), { code: 'EEXIST' });
  await nl.replaceNeighbour('vx-0001f2', '10.0.9.5', '02:42:0a:00:09:06');
  await nl.replaceFdb('vx-0001f2', { mac: '02:42:0a:00:09:05', dst: '192.168.50.3' });
  assert.deepEqual((await ipJson<NeighRow>(ns, 'neigh', 'show', 'dev', 'vx-0001f2')).map((n) => n.lladdr), ['02:42:0a:00:09:06']);
  const moved = (await bridgeJson<FdbRow>(ns, 'fdb', 'show', 'dev', 'vx-0001f2')).find((r) => r.mac === '02:42:0a:00:09:05');
  assert.equal(moved?.dst, '192.168.50.3');

  await nl.deleteNeighbour('vx-0001f2', '10.0.9.5');
  await nl.deleteFdb('vx-0001f2', { mac: '02:42:0a:00:09:05' });
  await nl.deleteFdb('vx-0001f2', { mac: '00:00:00:00:00:00', dst: '192.168.50.3' });
  assert.deepEqual(await ipJson<NeighRow>(ns, 'neigh', 'show', 'dev', 'vx-0001f2'), []);
  const left = (await bridgeJson<FdbRow>(ns, 'fdb', 'show', 'dev', 'vx-0001f2')).filter((r) => r.dst !== undefined);
  assert.deepEqual(left.map((r) => `${r.mac} ${r.dst}`), ['00:00:00:00:00:00 192.168.50.2']);
  await assert.rejects(nl.deleteNeighbour('vx-0001f2', '10.0.9.5'), { message: /^delete neighbour 10.0.9.5 on link vx-0001f2: No such file or directory/ });
});

test('a second vxlan with the same name is refused naming it', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await Netlink.open({ netns: ns });
  t.after(() => nl.close());
  await nl.createLink({ kind: 'vxlan', name: 'vx-0001f2', vni: 0x1f2 });
  await assert.rejects(nl.createLink({ kind: 'vxlan', name: 'vx-0001f2', vni: 0x1f3 }), (err: unknown) => {
    assert.ok(err instanceof NetlinkError);
    assert.equal(err.message, 'vxlan vx-0001f2: File exists');
    assert.equal(err.code, 'EEXIST');
    return true;
  });
  // Same VNI and port on a second device is the kernel's other refusal, explained by it.
  await assert.rejects(nl.createLink({ kind: 'vxlan', name: 'vx-other', vni: 0x1f2 }), (err: unknown) => {
    assert.ok(err instanceof NetlinkError);
    assert.match(err.message, /^vxlan vx-other: File exists/);
    return true;
  });
  await assert.rejects(nl.createLink({ kind: 'vxlan', name: 'vx-big', vni: 1 << 24 }), /VNI 16777216 of vxlan vx-big is out of range/);
  await assert.rejects(nl.addFdb('vx-0001f2', { mac: 'not-a-mac', dst: '192.168.50.2' }), /"not-a-mac" is not a MAC address/);
});
