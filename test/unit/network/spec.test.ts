// Reading a task's attachments: what each endpoint will be, and every bad value refused by name
// before anything is built.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planEndpoints, planPorts, VXLAN_ID_OPTION } from '../../../agent/network/spec.js';
import type { Network, Task } from '../../../proto/gen/objects.js';
import { makeTask } from '../worker/tasks.js';

function net(id: string, driver: string, configs: Array<[string, string]>, options: Record<string, string> = {}): Network {
  return {
    id, meta: null,
    spec: { annotations: { name: 'n1', labels: {} }, driverConfig: { name: driver, options: {} }, ipv6: false, internal: false, attachable: false, ingress: false, ipam: null, scope: '' },
    driverState: { name: driver, options },
    ipam: { driver: null, configs: configs.map(([subnet, gateway]) => ({ subnet, gateway, range: '' })) },
  };
}

function taskOn(attachments: Array<[Network | null, string, string?]>): Task {
  const t = makeTask('t1');
  t.networks = attachments.map(([n, address, mac]) => ({ networkId: n?.id ?? 'gone', addresses: address ? [address] : [], aliases: ['db'], mac: mac ?? '', network: n }));
  return t;
}

const overlay = net('ov1', 'overlay', [['10.0.1.0/24', '10.0.1.1'], ['10.0.2.0/24', '10.0.2.1']], { [VXLAN_ID_OPTION]: '4097,4098' });

test('endpoints in attachment order: interface, address with prefix, MAC, subnet, VIP', () => {
  const bridge = net('br1', 'bridge', [['172.30.0.0/16', '172.30.0.1']]);
  const t = taskOn([[overlay, '10.0.2.9/24'], [bridge, '172.30.4.5', '02:aa:bb:cc:dd:ee']]);
  t.endpoint = { spec: null, ports: [], virtualIps: [{ networkId: 'ov1', addr: '10.0.2.2/24' }] };
  const [a, b] = planEndpoints(t);
  assert.deepEqual(
    { ifname: a!.ifname, cidr: a!.cidr, ip: a!.ip, mac: a!.mac, subnet: a!.subnetIndex, vni: a!.network.subnets[1]!.vni, vip: a!.vip, aliases: a!.aliases },
    { ifname: 'eth0', cidr: '10.0.2.9/24', ip: '10.0.2.9', mac: '02:42:0a:00:02:09', subnet: 1, vni: 4098, vip: '10.0.2.2/24', aliases: ['db'] },
  );
  // A bare address takes its subnet's prefix; a given MAC is kept.
  assert.deepEqual({ ifname: b!.ifname, cidr: b!.cidr, mac: b!.mac, driver: b!.network.driver, vip: b!.vip }, { ifname: 'eth1', cidr: '172.30.4.5/16', mac: '02:aa:bb:cc:dd:ee', driver: 'bridge', vip: undefined });
});

test('bad attachments are refused naming the task, the network and the value', () => {
  const cases: Array<[Task, RegExp]> = [
    [taskOn([[net('x1', 'ipvlan', [['10.0.0.0/24', '']]), '10.0.0.2/24']]), /task t1: network "n1" \(x1\): unsupported driver "ipvlan"; supported: overlay, bridge, macvlan/],
    [taskOn([[net('x2', 'overlay', [['10.0.0.0/24', '']]), '10.0.0.2/24']]), /network "n1" \(x2\): no VXLAN id/],
    [taskOn([[net('x3', 'overlay', [['10.0.0.0/24', '']], { [VXLAN_ID_OPTION]: '5,6' }), '10.0.0.2/24']]), /2 VXLAN id\(s\) .* for 1 subnet\(s\)/],
    [taskOn([[net('x4', 'overlay', [['10.0.0.0/24', '']], { [VXLAN_ID_OPTION]: 'abc' }), '10.0.0.2/24']]), /invalid VXLAN id "abc"/],
    [taskOn([[overlay, '10.9.0.2/24']]), /address 10\.9\.0\.2\/24 is in none of its subnets \(10\.0\.1\.0\/24, 10\.0\.2\.0\/24\)/],
    [taskOn([[overlay, 'banana']]), /invalid address "banana"/],
    [taskOn([[overlay, '']]), /the attachment has no address/],
    [taskOn([[overlay, '10.0.1.5/24', 'zz']]), /invalid MAC address "zz"/],
    [taskOn([[null, '10.0.1.5/24']]), /task t1: the attachment to network gone carries no network definition/],
    [taskOn([[overlay, '10.0.1.5/24'], [overlay, '10.0.1.6/24']]), /network ov1 is attached twice/],
    [taskOn([[net('x5', 'bridge', [['10.0.0.0/24', '10.1.0.1']]), '10.0.0.2/24']]), /gateway "10\.1\.0\.1" is not an address in 10\.0\.0\.0\/24/],
    [taskOn([[net('x6', 'bridge', [['10.0.0.1/24', '']]), '10.0.0.2/24']]), /invalid subnet "10\.0\.0\.1\/24"/],
    [taskOn([[net('x7', 'bridge', []), '10.0.0.2/24']]), /no subnet \(the network is not allocated\)/],
  ];
  for (const [t, message] of cases) assert.throws(() => planEndpoints(t), message);
});

test('published ports: host mode only, the allocated ones before the spec’s', () => {
  const t = makeTask('t1');
  t.endpoint = {
    spec: { mode: 'VIP', ports: [{ name: '', protocol: 'TCP', targetPort: 1, publishedPort: 1, publishMode: 'HOST' }] },
    ports: [
      { name: '', protocol: 'UDP', targetPort: 53, publishedPort: 5353, publishMode: 'HOST' },
      { name: '', protocol: 'TCP', targetPort: 80, publishedPort: 30000, publishMode: 'INGRESS' },
      { name: '', protocol: 'TCP', targetPort: 81, publishedPort: 0, publishMode: 'HOST' },
    ],
    virtualIps: [],
  };
  assert.deepEqual(planPorts(t), [{ protocol: 'udp', published: 5353, target: 53 }, { protocol: 'tcp', published: 0, target: 81 }]);
  t.endpoint.ports = [];
  assert.deepEqual(planPorts(t), [{ protocol: 'tcp', published: 1, target: 1 }]);
  t.endpoint.spec!.ports.push({ name: '', protocol: 'TCP', targetPort: 2, publishedPort: 1, publishMode: 'HOST' });
  assert.throws(() => planPorts(t), /task t1: port 1\/tcp is published twice/);
  t.endpoint.spec!.ports = [{ name: '', protocol: 'TCP', targetPort: 0, publishedPort: 1, publishMode: 'HOST' }];
  assert.throws(() => planPorts(t), /invalid target port 0/);
});
