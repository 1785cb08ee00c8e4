import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Bitmap } from '../../../manager/allocator/ipam/bitmap.js';
import { formatIp, parseCidr, parseIp, overlaps } from '../../../manager/allocator/ipam/ipv4.js';
import { Ipam } from '../../../manager/allocator/ipam/ipam.js';
import { macFromIp } from '../../../manager/allocator/ipam/mac.js';
import { AddressSpace, parseAddressPools } from '../../../manager/allocator/ipam/pool.js';
import { AllocatorError } from '../../../manager/allocator/errors.js';

const owner = (id: string) => ({ networkId: id, networkName: id === 'n1' ? 'front' : `net-${id}` });
const noConfig: never[] = [];
const cfg = (subnet: string, gateway = '', range = '') => ({ subnet, gateway, range });

function rejects(fn: () => unknown, code: AllocatorError['code'], ...parts: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AllocatorError, `expected an AllocatorError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const p of parts) assert.ok(e.message.includes(p), `"${e.message}" should mention ${p}`);
    return true;
  });
}

test('bitmap finds the next clear bit across full words and respects its bounds', () => {
  const b = new Bitmap(100);
  for (let i = 0; i < 70; i++) b.set(i);
  assert.equal(b.findClear(0, 99), 70);
  assert.equal(b.findClear(31, 99), 70);
  b.clear(33);
  assert.equal(b.findClear(0, 99), 33);
  assert.equal(b.findClear(34, 69), -1);
  assert.equal(b.findClear(71, 71), 71);
  for (let i = 70; i < 100; i++) b.set(i);
  assert.equal(b.findClear(34, 99), -1);
  assert.equal(b.setCount, 99);
  assert.equal(b.set(5), false, 'setting a set bit reports it');
});

test('IPv4 parsing refuses malformed input and host bits, naming what was meant', () => {
  assert.equal(formatIp(parseIp('10.1.2.3')), '10.1.2.3');
  rejects(() => parseIp('10.1.2.256'), 'InvalidArgument', '10.1.2.256');
  rejects(() => parseCidr('10.1.2.3/24'), 'InvalidArgument', '10.1.2.3/24', 'did you mean 10.1.2.0/24');
  rejects(() => parseCidr('10.1.0.0/33'), 'InvalidArgument', '10.1.0.0/33');
  rejects(() => parseCidr('fd00::/64'), 'InvalidArgument', 'IPv6');
  assert.ok(overlaps(parseCidr('10.1.0.0/16'), parseCidr('10.1.200.0/24')));
  assert.ok(!overlaps(parseCidr('10.1.0.0/16'), parseCidr('10.2.0.0/24')));
});

test('addresses skip the network, gateway and broadcast addresses, and a full subnet is a clear error', () => {
  const ipam = new Ipam();
  const [c] = ipam.addNetwork(owner('n1'), [cfg('192.168.5.0/29')]);
  assert.deepEqual(c, { subnet: '192.168.5.0/29', gateway: '192.168.5.1', range: '' });
  const got = Array.from({ length: 5 }, () => ipam.allocate('n1'));
  assert.deepEqual(got, ['192.168.5.2/29', '192.168.5.3/29', '192.168.5.4/29', '192.168.5.5/29', '192.168.5.6/29']);
  rejects(() => ipam.allocate('n1'), 'ResourceExhausted', '192.168.5.0/29', '"front"');
});

test('a released address is handed out again once the serial cursor comes round', () => {
  const ipam = new Ipam();
  ipam.addNetwork(owner('n1'), [cfg('192.168.5.0/29')]);
  for (let i = 0; i < 5; i++) ipam.allocate('n1');
  assert.equal(ipam.release('n1', '192.168.5.4/29'), true);
  assert.equal(ipam.allocate('n1'), '192.168.5.4/29');
  // Serial: with room left, a just-freed address is not the next one given.
  ipam.release('n1', '192.168.5.2');
  ipam.release('n1', '192.168.5.3');
  assert.equal(ipam.allocate('n1'), '192.168.5.2/29');
  ipam.release('n1', '192.168.5.2');
  assert.equal(ipam.allocate('n1'), '192.168.5.3/29');
  assert.equal(ipam.release('n1', '192.168.5.1'), false, 'the gateway is never freed');
  assert.equal(ipam.inUse('n1'), 4);
});

test('gateway defaults to the first usable address; a given one is honoured and checked', () => {
  const ipam = new Ipam();
  const [c] = ipam.addNetwork(owner('n1'), [cfg('10.9.0.0/24', '10.9.0.254')]);
  assert.equal(c!.gateway, '10.9.0.254');
  assert.equal(ipam.allocate('n1'), '10.9.0.1/24', 'the first address is free when the gateway is elsewhere');
  rejects(() => ipam.reserve('n1', '10.9.0.254'), 'InvalidArgument', 'gateway');
  rejects(() => ipam.addNetwork(owner('n2'), [cfg('10.8.0.0/24', '10.7.0.1')]), 'InvalidArgument', '10.7.0.1', '10.8.0.0/24');
  rejects(() => ipam.addNetwork(owner('n3'), [cfg('10.8.0.0/24', '10.8.0.255')]), 'InvalidArgument', 'broadcast');
  rejects(() => ipam.addNetwork(owner('n4'), [cfg('', '10.8.0.1')]), 'InvalidArgument', 'needs a subnet');
});

test('ip-range limits task addresses to the sub-range and must lie inside the subnet', () => {
  const ipam = new Ipam();
  const [c] = ipam.addNetwork(owner('n1'), [cfg('10.20.0.0/16', '', '10.20.5.0/30')]);
  assert.equal(c!.range, '10.20.5.0/30');
  assert.equal(c!.gateway, '10.20.0.1');
  // 10.20.5.0 .. .3 are all ordinary hosts of the /16.
  assert.deepEqual(Array.from({ length: 4 }, () => ipam.allocate('n1')), ['10.20.5.0/16', '10.20.5.1/16', '10.20.5.2/16', '10.20.5.3/16']);
  rejects(() => ipam.allocate('n1'), 'ResourceExhausted', 'ip-range 10.20.5.0/30');
  // A static address outside the range but inside the subnet is still allowed.
  assert.equal(ipam.reserve('n1', '10.20.9.9'), '10.20.9.9/16');
  rejects(() => ipam.addNetwork(owner('n2'), [cfg('10.30.0.0/24', '', '10.31.0.0/25')]), 'InvalidArgument', '10.31.0.0/25', 'not inside');
});

test('subnets never overlap: a /16 over an existing /24 and a /24 inside an existing /16 are refused, naming both networks', () => {
  const ipam = new Ipam();
  ipam.addNetwork(owner('n1'), [cfg('10.1.2.0/24')]);
  rejects(() => ipam.addNetwork(owner('n2'), [cfg('10.1.0.0/16')]), 'AlreadyExists', '10.1.0.0/16', 'net-n2', '10.1.2.0/24', '"front"');
  ipam.addNetwork(owner('n3'), [cfg('172.20.0.0/16')]);
  rejects(() => ipam.addNetwork(owner('n4'), [cfg('172.20.9.0/24')]), 'AlreadyExists', '172.20.9.0/24', '172.20.0.0/16', 'net-n3');
  assert.equal(ipam.hasNetwork('n2'), false, 'a refused network holds nothing');
  ipam.removeNetwork('n1');
  ipam.addNetwork(owner('n2'), [cfg('10.1.0.0/16')]);
});

test('the default pool is carved into /24s in order, skipping subnets networks were given', () => {
  const ipam = new Ipam();
  ipam.addNetwork(owner('a'), [cfg('10.0.1.0/24')]);
  ipam.addNetwork(owner('b'), [cfg('10.0.4.0/22')]);
  const carved = ['c', 'd', 'e', 'f'].map((id) => ipam.addNetwork(owner(id), noConfig)[0]!.subnet);
  assert.deepEqual(carved, ['10.0.0.0/24', '10.0.2.0/24', '10.0.3.0/24', '10.0.8.0/24']);
  ipam.removeNetwork('d');
  assert.equal(ipam.addNetwork(owner('g'), noConfig)[0]!.subnet, '10.0.2.0/24');
});

test('the default pools and subnet size are configurable, and exhausting them is a clear error', () => {
  const ipam = new Ipam(parseAddressPools(['172.30.0.0/23', '192.168.100.0/24'], 25));
  const got = ['a', 'b', 'c', 'd'].map((id) => ipam.addNetwork(owner(id), noConfig)[0]!.subnet);
  assert.deepEqual(got, ['172.30.0.0/25', '172.30.0.128/25', '172.30.1.0/25', '172.30.1.128/25']);
  assert.equal(ipam.addNetwork(owner('e'), noConfig)[0]!.subnet, '192.168.100.0/25');
  ipam.addNetwork(owner('f'), noConfig);
  rejects(() => ipam.addNetwork(owner('g'), noConfig), 'ResourceExhausted', '/25', '172.30.0.0/23');
  assert.deepEqual(parseAddressPools(), { pools: [parseCidr('10.0.0.0/8')], subnetBits: 24 });
  rejects(() => parseAddressPools(['10.0.0.0/24'], 16), 'InvalidArgument', '10.0.0.0/24', '/16');
  rejects(() => parseAddressPools(['10.0.0.0/8', '10.5.0.0/16']), 'InvalidArgument', '10.5.0.0/16', 'overlaps');
  rejects(() => parseAddressPools([], 31), 'InvalidArgument', '31');
});

test('address space reports who holds an overlapping subnet', () => {
  const space = new AddressSpace();
  space.reserve(parseCidr('10.7.0.0/16'), owner('x'));
  assert.equal(space.findOverlap(parseCidr('10.7.3.0/24'))?.networkId, 'x');
  assert.equal(space.findOverlap(parseCidr('10.8.0.0/24')), undefined);
});

test('MAC addresses derive from the IP like Docker: 02:42 and the four address bytes', () => {
  assert.equal(macFromIp('10.0.1.5/24'), '02:42:0a:00:01:05');
  assert.equal(macFromIp('172.18.255.254'), '02:42:ac:12:ff:fe');
});
