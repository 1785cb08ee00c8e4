// One network's names from its peer table: services, tasks.SERVICE, task names, aliases, VIPs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NetworkRecords, parseEndpoint } from '../../../agent/network/dns/records.js';
import { peerEntry } from './peers.js';

const net = 'net1';

function records(): NetworkRecords {
  return NetworkRecords.fromEntries(net, [
    peerEntry(net, { ip: '10.0.0.12', serviceName: 'web', slot: 2, task: 'bbb', vip: '10.0.0.2', endpointMode: 'vip', aliases: ['frontend'] }),
    peerEntry(net, { ip: '10.0.0.11', serviceName: 'web', slot: 1, task: 'aaa', vip: '10.0.0.2', endpointMode: 'vip', aliases: ['frontend'] }),
    peerEntry(net, { ip: '10.0.0.21', serviceName: 'db', task: 'ccc', endpointMode: 'dnsrr', aliases: ['Store'] }),
    peerEntry(net, { ip: '10.0.0.22', serviceName: 'db', slot: 2, task: 'ddd', endpointMode: 'dnsrr', aliases: ['store'] }),
  ]);
}

test('SERVICE is its VIP in vip mode, its task IPs in dnsrr mode', () => {
  assert.deepEqual(records().resolve('web'), { ips: ['10.0.0.2'], shuffle: false });
  assert.deepEqual(records().resolve('db'), { ips: ['10.0.0.21', '10.0.0.22'], shuffle: true });
});

test('tasks.SERVICE is every task IP, whatever the mode', () => {
  assert.deepEqual(records().resolve('tasks.web'), { ips: ['10.0.0.11', '10.0.0.12'], shuffle: true });
  assert.deepEqual(records().resolve('tasks.db'), { ips: ['10.0.0.21', '10.0.0.22'], shuffle: true });
  assert.equal(records().resolve('tasks.nothing'), undefined);
});

test('a task name is its IP; aliases act as the service name (case-insensitively)', () => {
  assert.deepEqual(records().resolve('web.1.aaa'), { ips: ['10.0.0.11'], shuffle: false });
  assert.deepEqual(records().resolve('frontend'), { ips: ['10.0.0.2'], shuffle: false });
  assert.deepEqual(records().resolve('tasks.frontend'), { ips: ['10.0.0.11', '10.0.0.12'], shuffle: true });
  assert.deepEqual(records().resolve('store'), { ips: ['10.0.0.21', '10.0.0.22'], shuffle: true });
  assert.equal(records().resolve('web.3.zzz'), undefined);
  assert.equal(records().reverse('10.0.0.22'), 'db.2.ddd');
  assert.equal(records().reverse('10.0.0.2'), undefined);
});

test('VIP backends are listed per VIP, sorted, for the load balancer', () => {
  assert.deepEqual(records().vipBackends(), [{ vip: '10.0.0.2', serviceName: 'web', backends: ['10.0.0.11', '10.0.0.12'] }]);
});

test('a VIP without endpointMode means vip mode; no VIP means the task IPs', () => {
  const r = NetworkRecords.fromEntries(net, [peerEntry(net, { ip: '10.0.0.5', serviceName: 'api', vip: '10.0.0.3' }), peerEntry(net, { ip: '10.0.0.6', serviceName: 'plain' })]);
  assert.deepEqual(r.resolve('api'), { ips: ['10.0.0.3'], shuffle: false });
  assert.deepEqual(r.resolve('plain'), { ips: ['10.0.0.6'], shuffle: true });
});

test('bad rows are reported by key and skipped; the others still count', () => {
  const problems: string[] = [];
  const bad = (value: string, id: string) => ({ ...peerEntry(net, { ip: '10.0.0.1', serviceName: 'x' }, id), value: new TextEncoder().encode(value) });
  const r = NetworkRecords.fromEntries(
    net,
    [
      bad('not json', 'e1'),
      bad('{"ip":"10.0.0.300","serviceName":"x"}', 'e2'),
      bad('{"ip":"10.0.0.9","serviceName":"x","vip":"nope"}', 'e3'),
      bad('{"ip":"10.0.0.9","serviceName":"x","endpointMode":"ipvs"}', 'e4'),
      peerEntry(net, { ip: '10.0.0.7', serviceName: 'ok' }),
    ],
    (p) => problems.push(p),
  );
  assert.deepEqual(problems, [
    'endpoints/net1/e1: value is not JSON',
    'endpoints/net1/e2: ip "10.0.0.300" is not an IPv4 address',
    'endpoints/net1/e3: vip "nope" is not an IPv4 address',
    'endpoints/net1/e4: endpointMode "ipvs" is not vip or dnsrr',
  ]);
  assert.deepEqual(r.resolve('ok')?.ips, ['10.0.0.7']);
  assert.equal(parseEndpoint(net, peerEntry(net, { ip: '10.0.0.7', serviceName: 'ok' }, 'the-id')).endpoint?.endpointId, 'the-id');
});

test('only serving endpoints back SERVICE, tasks.SERVICE, aliases and VIPs; a row without the field serves', () => {
  const r = NetworkRecords.fromEntries(net, [
    peerEntry(net, { ip: '10.0.0.11', serviceName: 'web', slot: 1, task: 'old', vip: '10.0.0.2', endpointMode: 'vip', aliases: ['front'] }),
    peerEntry(net, { ip: '10.0.0.12', serviceName: 'web', slot: 1, task: 'new', vip: '10.0.0.2', endpointMode: 'vip', aliases: ['front'], serving: false }),
    peerEntry(net, { ip: '10.0.0.13', serviceName: 'web', slot: 2, task: 'two', vip: '10.0.0.2', endpointMode: 'vip', aliases: ['front'], serving: true }),
    peerEntry(net, { ip: '10.0.0.21', serviceName: 'db', task: 'db1', endpointMode: 'dnsrr', serving: false }),
    peerEntry(net, { ip: '10.0.0.22', serviceName: 'db', slot: 2, task: 'db2', endpointMode: 'dnsrr' }),
  ]);
  assert.deepEqual(r.vipBackends(), [{ vip: '10.0.0.2', serviceName: 'web', backends: ['10.0.0.11', '10.0.0.13'] }]);
  assert.deepEqual(r.resolve('tasks.web'), { ips: ['10.0.0.11', '10.0.0.13'], shuffle: true });
  assert.deepEqual(r.resolve('tasks.front'), { ips: ['10.0.0.11', '10.0.0.13'], shuffle: true });
  assert.deepEqual(r.resolve('web'), { ips: ['10.0.0.2'], shuffle: false });
  assert.deepEqual(r.resolve('db'), { ips: ['10.0.0.22'], shuffle: true });
  assert.deepEqual(r.resolve('tasks.db'), { ips: ['10.0.0.22'], shuffle: true });
  // A task's own name and its PTR answer whether it serves or not: it is addressed directly.
  assert.deepEqual(r.resolve('web.1.new'), { ips: ['10.0.0.12'], shuffle: false });
  assert.equal(r.reverse('10.0.0.21'), 'db.1.db1');
  assert.equal(parseEndpoint(net, peerEntry(net, { ip: '10.0.0.9', serviceName: 'x' })).endpoint?.serving, true);
  assert.equal(parseEndpoint(net, peerEntry(net, { ip: '10.0.0.9', serviceName: 'x', serving: false })).endpoint?.serving, false);
});

test('a service none of whose tasks serves: its VIP still resolves, with no backend; tasks.NAME and a dnsrr name do not', () => {
  const r = NetworkRecords.fromEntries(net, [
    peerEntry(net, { ip: '10.0.0.11', serviceName: 'web', task: 'w1', vip: '10.0.0.2', endpointMode: 'vip', serving: false }),
    peerEntry(net, { ip: '10.0.0.21', serviceName: 'db', task: 'd1', endpointMode: 'dnsrr', serving: false }),
  ]);
  assert.deepEqual(r.resolve('web'), { ips: ['10.0.0.2'], shuffle: false });
  assert.deepEqual(r.vipBackends(), [{ vip: '10.0.0.2', serviceName: 'web', backends: [] }]);
  assert.equal(r.resolve('tasks.web'), undefined);
  assert.equal(r.resolve('db'), undefined);
  assert.equal(r.resolve('tasks.db'), undefined);
  assert.deepEqual(r.resolve('db.1.d1'), { ips: ['10.0.0.21'], shuffle: false });
});
