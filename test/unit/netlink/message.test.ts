// The netlink wire format, byte for byte: headers, attributes, nesting, padding, and the kernel's
// error and done messages. No kernel here; the expected bytes are what linux/netlink.h describes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesToIp, bytesToMac, ipToBytes, macToBytes, parsePrefix } from '../../../netlink/addr.js';
import { decodeError } from '../../../netlink/connection.js';
import {
  IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_LINKINFO, IFLA_MTU, IFLA_NET_NS_FD, IFLA_VXLAN_ID,
  IFLA_VXLAN_LEARNING, IFLA_VXLAN_PORT, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLMSG_ERROR, RTM_NEWLINK,
} from '../../../netlink/constants.js';
import { decodeLink, encodeChangeLink, encodeCreateLink, explainCreateError } from '../../../netlink/links.js';
import { align4, attr, Attrs, decodeMessages, encodeAttrs, encodeMessage } from '../../../netlink/message.js';
import { encodeRoute } from '../../../netlink/routes.js';
import { decodeIfInfoMsg, decodeRtMsg, encodeIfInfoMsg } from '../../../netlink/structs.js';

test('align4 rounds up to the next multiple of four', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 8, 9].map(align4), [0, 4, 4, 4, 4, 8, 8, 12]);
});

test('a message header is length, type, flags, sequence and port id, in host order', () => {
  const msg = encodeMessage(RTM_NEWLINK, 0x0605, 0x01020304, Buffer.from([0xaa, 0xbb, 0xcc]));
  assert.equal(msg.length, 20, 'padded to 4 bytes');
  assert.deepEqual([...msg], [19, 0, 0, 0, 16, 0, 0x05, 0x06, 4, 3, 2, 1, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0]);
});

test('a datagram with several messages splits on their aligned lengths', () => {
  const a = encodeMessage(16, 2, 7, Buffer.from([1, 2, 3, 4, 5]));
  const b = encodeMessage(3, 2, 7, Buffer.alloc(4));
  const msgs = decodeMessages(Buffer.concat([a, b]));
  assert.deepEqual(msgs.map((m) => [m.type, m.flags, m.seq, m.payload.length]), [[16, 2, 7, 5], [3, 2, 7, 4]]);
  assert.deepEqual([...msgs[0].payload], [1, 2, 3, 4, 5]);
});

test('a message claiming more bytes than the datagram holds is rejected', () => {
  const bad = encodeMessage(16, 0, 1, Buffer.alloc(8));
  bad.writeUInt32LE(64, 0);
  assert.throws(() => decodeMessages(bad), /malformed netlink message: length 64 at offset 0 of 24/);
});

test('attributes are length-type-value with the value padded; the length excludes padding', () => {
  const buf = encodeAttrs([attr.string(IFLA_IFNAME, 'eth0'), attr.u32(IFLA_MTU, 1500), attr.u8(99, 7)]);
  assert.deepEqual([...buf], [
    9, 0, 3, 0, 0x65, 0x74, 0x68, 0x30, 0, 0, 0, 0, // "eth0\0" + 3 bytes padding
    8, 0, 4, 0, 0xdc, 0x05, 0, 0, // 1500
    5, 0, 99, 0, 7, 0, 0, 0, // u8 + padding
  ]);
  const back = Attrs.decode(buf);
  assert.equal(back.string(IFLA_IFNAME), 'eth0');
  assert.equal(back.u32(IFLA_MTU), 1500);
  assert.equal(back.u8(99), 7);
  assert.equal(back.u32(12345), undefined);
});

test('nested attributes carry their children as the value, optionally flagged NLA_F_NESTED', () => {
  const buf = encodeAttrs([attr.nested(IFLA_LINKINFO, [attr.string(IFLA_INFO_KIND, 'vxlan'), attr.nested(IFLA_INFO_DATA, [attr.u32(IFLA_VXLAN_ID, 42)])])]);
  // outer header 4 + kind (4+6 → 12) + data (4 + 8) = 28
  assert.equal(buf.readUInt16LE(0), 28);
  assert.equal(buf.readUInt16LE(2), IFLA_LINKINFO);
  const info = Attrs.decode(buf).nested(IFLA_LINKINFO);
  assert.equal(info?.string(IFLA_INFO_KIND), 'vxlan');
  assert.equal(info?.nested(IFLA_INFO_DATA)?.u32(IFLA_VXLAN_ID), 42);

  const flagged = encodeAttrs([attr.nested(5, [attr.u8(1, 1)], true)]);
  assert.equal(flagged.readUInt16LE(2), 0x8005);
  assert.ok(Attrs.decode(flagged).has(5), 'the flag is masked off when decoding');
});

test('big-endian attributes, as for the VXLAN port', () => {
  const buf = encodeAttrs([attr.be16(IFLA_VXLAN_PORT, 4789)]);
  assert.deepEqual([...buf.subarray(4, 6)], [0x12, 0xb5]);
  assert.equal(Attrs.decode(buf).be16(IFLA_VXLAN_PORT), 4789);
});

test('an attribute running past its buffer is rejected', () => {
  const buf = encodeAttrs([attr.u32(1, 1)]);
  buf.writeUInt16LE(12, 0);
  assert.throws(() => Attrs.decode(buf), /malformed netlink attribute: length 12 at offset 0 of 8/);
});

test('a vxlan create request carries kind, VNI, port 4789 and learning off', () => {
  const payload = encodeCreateLink({ kind: 'vxlan', name: 'vx-0001f2', vni: 0x1f2, up: true }, { master: 7 });
  const head = decodeIfInfoMsg(payload);
  assert.equal(head.flags & 1, 1, 'IFF_UP requested');
  assert.equal(head.change & 1, 1);
  const attrs = Attrs.decode(payload.subarray(16));
  assert.equal(attrs.string(IFLA_IFNAME), 'vx-0001f2');
  assert.equal(attrs.u32(10 /* IFLA_MASTER */), 7);
  const data = attrs.nested(IFLA_LINKINFO)?.nested(IFLA_INFO_DATA);
  assert.equal(data?.u32(IFLA_VXLAN_ID), 0x1f2);
  assert.equal(data?.be16(IFLA_VXLAN_PORT), 4789);
  assert.equal(data?.u8(IFLA_VXLAN_LEARNING), 0);
});

test('a veth peer is a whole ifinfomsg plus attributes inside VETH_INFO_PEER', () => {
  const payload = encodeCreateLink({ kind: 'veth', name: 'a0', peer: { name: 'b0', netns: { fd: 9 }, mtu: 1400 } }, {});
  const peer = Attrs.decode(payload.subarray(16)).nested(IFLA_LINKINFO)?.nested(IFLA_INFO_DATA)?.get(1);
  assert.ok(peer);
  assert.deepEqual(decodeIfInfoMsg(peer), { family: 0, type: 0, index: 0, flags: 0, change: 0 });
  const peerAttrs = Attrs.decode(peer.subarray(16));
  assert.equal(peerAttrs.string(IFLA_IFNAME), 'b0');
  assert.equal(peerAttrs.u32(IFLA_NET_NS_FD), 9);
  assert.equal(peerAttrs.u32(IFLA_MTU), 1400);
});

test('bad link specs fail naming the bad value', () => {
  assert.throws(() => encodeCreateLink({ kind: 'vxlan', name: 'vx0', vni: -1 }, {}), /VNI -1 of vxlan vx0 is out of range/);
  assert.throws(() => encodeCreateLink({ kind: 'vlan', name: 'e.5000', parent: 1, id: 5000 }, { lower: 1 }), /VLAN id 5000 of e.5000 is out of range \(1-4094\)/);
  assert.throws(() => encodeCreateLink({ kind: 'bridge', name: 'a name' }, {}), /"a name" is not a valid link name/);
  assert.throws(() => encodeCreateLink({ kind: 'bridge', name: 'b', mtu: 10 }, {}), /MTU 10 of b is out of range/);
  assert.throws(() => encodeCreateLink({ kind: 'macvlan', name: 'm', parent: 1, mode: 'weird' as 'bridge' }, { lower: 1 }), /macvlan mode "weird" of m is not one of/);
});

test('changing a link by name sends IFLA_IFNAME; a rename addresses it by index', () => {
  const byName = encodeChangeLink('eth1', { up: false, master: null });
  assert.deepEqual(decodeIfInfoMsg(byName), { family: 0, type: 0, index: 0, flags: 0, change: 1 });
  const attrs = Attrs.decode(byName.subarray(16));
  assert.equal(attrs.string(IFLA_IFNAME), 'eth1');
  assert.equal(attrs.u32(10), 0, 'IFLA_MASTER 0 releases from the bridge');
  const rename = encodeChangeLink(4, { name: 'new0' });
  assert.equal(decodeIfInfoMsg(rename).index, 4);
  assert.equal(Attrs.decode(rename.subarray(16)).string(IFLA_IFNAME), 'new0');
  assert.throws(() => encodeChangeLink('old0', { name: 'new0' }), /renaming needs the link index/);
});

test('a link message decodes into its fields', () => {
  const payload = Buffer.concat([
    encodeIfInfoMsg({ index: 5, flags: 0x1 | 0x10000 }),
    encodeAttrs([
      attr.string(IFLA_IFNAME, 'vx0'), attr.u32(IFLA_MTU, 1450), attr.bytes(1, macToBytes('02:42:ac:11:00:02')),
      attr.u8(16, 6), attr.u32(10, 3),
      attr.nested(IFLA_LINKINFO, [attr.string(IFLA_INFO_KIND, 'vxlan'), attr.nested(IFLA_INFO_DATA, [
        attr.u32(IFLA_VXLAN_ID, 9), attr.be16(IFLA_VXLAN_PORT, 4789), attr.u8(IFLA_VXLAN_LEARNING, 0), attr.bytes(4, ipToBytes('192.168.0.1')),
      ])]),
    ]),
  ]);
  const link = decodeLink({ type: RTM_NEWLINK, flags: 0, seq: 0, pid: 0, payload });
  assert.equal(link.name, 'vx0');
  assert.equal(link.index, 5);
  assert.equal(link.up, true);
  assert.equal(link.lowerUp, true);
  assert.equal(link.operState, 'up');
  assert.equal(link.mtu, 1450);
  assert.equal(link.mac, '02:42:ac:11:00:02');
  assert.equal(link.master, 3);
  assert.deepEqual(link.vxlan, { vni: 9, port: 4789, learning: false, local: '192.168.0.1', remote: undefined, dev: undefined });
});

test('NLMSG_ERROR carries a negative errno and, with extended ACKs, the kernel\'s message', () => {
  const tlv = encodeAttrs([attr.string(1, 'Unknown device type.')]);
  const payload = Buffer.alloc(4 + 16);
  payload.writeInt32LE(-95, 0);
  const capped = { type: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS, seq: 1, pid: 0, payload: Buffer.concat([payload, tlv]) };
  assert.deepEqual(decodeError(capped), { errno: 95, kernelMessage: 'Unknown device type' });

  // Uncapped: the original request (here 24 bytes) sits between the header and the TLVs.
  const request = encodeMessage(RTM_NEWLINK, 5, 1, Buffer.alloc(8));
  const uncapped = Buffer.concat([Buffer.alloc(4), request, tlv]);
  uncapped.writeInt32LE(-17, 0);
  assert.deepEqual(decodeError({ type: NLMSG_ERROR, flags: NLM_F_ACK_TLVS, seq: 1, pid: 0, payload: uncapped }), { errno: 17, kernelMessage: 'Unknown device type' });

  const ack = Buffer.alloc(20);
  assert.deepEqual(decodeError({ type: NLMSG_ERROR, flags: NLM_F_CAPPED, seq: 1, pid: 0, payload: ack }), { errno: 0, kernelMessage: undefined });
});

test('"Operation not supported" on creation names the missing kernel support', () => {
  assert.equal(explainCreateError('vlan', 95, 'Unknown device type'), 'the kernel has no 802.1Q VLAN support (module 8021q)');
  assert.equal(explainCreateError('macvlan', 95, undefined), 'the kernel has no macvlan link support (module macvlan)');
  assert.equal(explainCreateError('vlan', 17, undefined), undefined);
  assert.equal(explainCreateError('vlan', 95, 'something else'), undefined);
});

test('routes: prefix length in the header, destination and gateway as attributes, on-link scope without a gateway', () => {
  const viaGw = encodeRoute({ dst: '10.1.0.0/16', gateway: '10.0.0.1' });
  const head = decodeRtMsg(viaGw);
  assert.equal(head.family, 2);
  assert.equal(head.dstLen, 16);
  assert.equal(head.table, 254);
  assert.equal(head.scope, 0);
  const attrs = Attrs.decode(viaGw.subarray(12));
  assert.equal(bytesToIp(attrs.get(1) as Buffer), '10.1.0.0');
  assert.equal(bytesToIp(attrs.get(5) as Buffer), '10.0.0.1');
  assert.equal(decodeRtMsg(encodeRoute({ dst: '10.2.0.0/24', oif: 3 })).scope, 253);
  assert.equal(decodeRtMsg(encodeRoute({ dst: 'default', gateway: '10.0.0.1', table: 1000 })).table, 0, 'tables over 255 only in RTA_TABLE');
  assert.throws(() => encodeRoute({ dst: '10.0.0.0/16', gateway: 'fe80::1' }), /gateway fe80::1 is not in the family of 10.0.0.0\/16/);
});

test('addresses and MACs convert both ways', () => {
  for (const ip of ['10.0.0.1', '255.255.255.255', '::', '::1', 'fe80::1', '2001:db8::8:800:200c:417a', '2001:db8:0:0:1::1', '1:2:3:4:5:6:7:8']) {
    const canonical = ip === '2001:db8:0:0:1::1' ? '2001:db8::1:0:0:1' : ip;
    assert.equal(bytesToIp(ipToBytes(ip)), canonical, ip);
  }
  assert.equal(bytesToIp(ipToBytes('::ffff:10.1.2.3')), '::ffff:a01:203');
  assert.deepEqual(parsePrefix('10.0.0.1/24'), { family: 2, address: '10.0.0.1', bytes: Buffer.from([10, 0, 0, 1]), prefixLen: 24 });
  assert.equal(parsePrefix('fe80::1').prefixLen, 128);
  assert.throws(() => parsePrefix('10.0.0.1/33'), /"10.0.0.1\/33": the prefix length must be 0..32/);
  assert.throws(() => ipToBytes('10.0.0'), /"10.0.0" is not an IPv4 or IPv6 address/);
  assert.equal(bytesToMac(macToBytes('02:42:AC:11:00:02')), '02:42:ac:11:00:02');
  assert.throws(() => macToBytes('02:42:ac:11:00'), /is not a MAC address/);
});
