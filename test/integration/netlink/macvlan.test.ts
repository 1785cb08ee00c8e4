// macvlan links on a parent inside a namespace (this kernel has no dummy driver, so a veth end is
// the parent), and 802.1Q VLAN sub-interfaces where the kernel has them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Netlink, NetlinkError, type MacvlanMode } from '../../../netlink/index.js';
import { ipJson, tempNetns } from './netns.js';

interface IpLinkDetail {
  ifname: string;
  link?: string;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string; info_data?: { mode?: string; id?: number } };
}

test('macvlan links in each mode on a parent inside a namespace', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await Netlink.open({ netns: ns });
  t.after(() => nl.close());
  await nl.createLink({ kind: 'veth', name: 'parent0', peer: { name: 'parent1' }, up: true });

  const modes: MacvlanMode[] = ['bridge', 'private', 'vepa'];
  for (const mode of modes) await nl.createLink({ kind: 'macvlan', name: `mv-${mode}`, parent: 'parent0', mode, up: true });
  // passthru takes the whole parent, so it gets a parent of its own.
  await nl.createLink({ kind: 'macvlan', name: 'mv-passthru', parent: 'parent1', mode: 'passthru' });

  const links = await ipJson<IpLinkDetail>(ns, '-d', 'link', 'show');
  for (const mode of [...modes, 'passthru']) {
    const l = links.find((x) => x.ifname === `mv-${mode}`);
    assert.equal(l?.linkinfo?.info_kind, 'macvlan', `mv-${mode}`);
    assert.equal(l?.linkinfo?.info_data?.mode, mode);
    assert.equal(l?.link, mode === 'passthru' ? 'parent1' : 'parent0');
    const mine = await nl.getLink(`mv-${mode}`);
    assert.equal(mine.macvlan?.mode, mode);
    assert.equal(mine.parent, (await nl.getLink(mode === 'passthru' ? 'parent1' : 'parent0')).index);
  }
  await assert.rejects(nl.createLink({ kind: 'macvlan', name: 'mv-x', parent: 'nosuch0' }),
    { message: 'macvlan mv-x: link nosuch0 does not exist' });
});

test('a macvlan is created straight into a task namespace, its parent staying behind', { timeout: 60_000 }, async (t) => {
  const hostNs = await tempNetns(t);
  const taskNs = await tempNetns(t);
  const host = await Netlink.open({ netns: hostNs });
  t.after(() => host.close());
  await host.createLink({ kind: 'veth', name: 'uplink0', peer: { name: 'uplink1' }, up: true });
  await host.createLink({ kind: 'macvlan', name: 'eth0', parent: 'uplink0', mode: 'bridge', netns: taskNs, mac: '02:00:00:aa:00:01' });

  const [inTask] = await ipJson<IpLinkDetail & { address: string }>(taskNs, '-d', 'link', 'show', 'eth0');
  assert.equal(inTask.linkinfo?.info_kind, 'macvlan');
  assert.equal(inTask.address, '02:00:00:aa:00:01');
  assert.equal(typeof inTask.link_netnsid, 'number', 'the parent is in another namespace');
  assert.equal(await host.findLink('eth0'), undefined);
});

test('802.1Q VLAN sub-interface, or a clear refusal when the kernel lacks 8021q', { timeout: 60_000 }, async (t) => {
  const ns = await tempNetns(t);
  const nl = await Netlink.open({ netns: ns });
  t.after(() => nl.close());
  await nl.createLink({ kind: 'veth', name: 'trunk0', peer: { name: 'trunk1' } });
  try {
    await nl.createLink({ kind: 'vlan', name: 'trunk0.10', parent: 'trunk0', id: 10 });
  } catch (err) {
    assert.ok(err instanceof NetlinkError);
    assert.equal(err.message, 'vlan trunk0.10: the kernel has no 802.1Q VLAN support (module 8021q)');
    assert.equal(err.code, 'EOPNOTSUPP');
    t.skip('this kernel has no 802.1Q VLAN support (module 8021q): only the refusal was checked');
    return;
  }
  const [l] = await ipJson<IpLinkDetail>(ns, '-d', 'link', 'show', 'trunk0.10');
  assert.equal(l.linkinfo?.info_kind, 'vlan');
  assert.equal(l.linkinfo?.info_data?.id, 10);
  assert.equal((await nl.getLink('trunk0.10')).vlan?.id, 10);
});
