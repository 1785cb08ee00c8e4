// Names of what the drivers build: derived from ids, within the kernel's 15 characters, and
// distinct between hosts sharing one /run/netns.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GW_BRIDGE, GW_VETH_PREFIX, Names } from '../../../agent/network/names.js';

const cid = 'f'.repeat(64);

test('link names stay within 15 characters whatever the ids', () => {
  const names = new Names('shoal-', 'node-with-a-very-long-id-0123456789');
  for (const name of [GW_BRIDGE, names.endpointLink(cid, 0), names.endpointLink(cid, 99), names.gatewayLink(cid), Names.bridge('x'.repeat(40)), Names.sandboxBridge(9), Names.vxlan(0xffffff), Names.taskInterface(12)]) {
    assert.ok(name.length <= 15, `${name} is ${name.length} characters`);
  }
  assert.ok(names.gatewayLink(cid).startsWith(GW_VETH_PREFIX));
  assert.equal(Names.vxlan(4242), 'vx-001092');
});

test('task namespaces are NetnsNetworkAttacher’s; sandboxes carry the node', () => {
  const a = new Names('shoal-', 'nodeA');
  const b = new Names('shoal-', 'nodeB');
  assert.equal(a.taskNetns(cid), `shoal-${cid.slice(0, 12)}`);
  assert.equal(a.sandboxNetns('3f2a9c1b7d0e99'), 'shoal-ov-nodea-3f2a9c1b7d0e');
  assert.notEqual(a.sandboxNetns('n1'), b.sandboxNetns('n1'));
  assert.equal(Names.bridge('net/../weird id'), 'shl-netweirdid');
});
