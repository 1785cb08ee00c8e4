// `network create` flags to a NetworkSpec, with Docker's pairing of subnets, gateways and ranges;
// `network ls` rows; `node update` flags to a NodeSpec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from '../../../util/flags.js';
import { UserError } from '../../../util/command.js';
import { ipamConfigs, networkCommand, networkRows, networkSpecFromFlags } from '../../../cli/commands/network.js';
import { applyNodeUpdate } from '../../../cli/commands/node.js';
import { nodeCommand } from '../../../cli/commands/node.js';
import type { Network, NodeSpec } from '../../../proto/gen/objects.js';

const createSpecs = networkCommand.subcommands!.find((c) => c.name === 'create')!.flags!;
const spec = (argv: string[]) => {
  const { flags, args } = parseFlags(argv, createSpecs);
  return networkSpecFromFlags(flags, args[0]!);
};

test('gateways and ranges go to the subnet that holds them', () => {
  assert.deepEqual(ipamConfigs(['10.1.0.0/16', '10.2.0.0/24'], ['10.2.0.254', '10.1.0.1'], ['10.1.4.0/24']), [
    { subnet: '10.1.0.0/16', range: '10.1.4.0/24', gateway: '10.1.0.1' },
    { subnet: '10.2.0.0/24', range: '', gateway: '10.2.0.254' },
  ]);
  assert.deepEqual(ipamConfigs(['fd00::/64'], ['fd00::1'], []), [{ subnet: 'fd00::/64', range: '', gateway: 'fd00::1' }]);
  assert.deepEqual(ipamConfigs([], [], []), []);
});

test('IPAM mistakes are named', () => {
  const refused = (s: string[], g: string[], r: string[], message: string | RegExp) => assert.throws(() => ipamConfigs(s, g, r), (e: unknown) => e instanceof UserError && (typeof message === 'string' ? e.message === message : message.test(e.message)));
  refused(['10.0.0/24'], [], [], 'invalid argument "10.0.0/24" for "--subnet" flag: invalid CIDR address: 10.0.0/24');
  refused(['10.0.0.0/33'], [], [], /invalid CIDR address/);
  refused(['10.0.0.0/16', '10.0.1.0/24'], [], [], 'subnets 10.0.0.0/16 and 10.0.1.0/24 overlap: multiple overlapping subnet configuration is not supported');
  refused(['10.0.0.0/24'], ['10.0.1.1'], [], 'no matching subnet for gateway 10.0.1.1');
  refused(['10.0.0.0/24'], ['gw'], [], 'invalid argument "gw" for "--gateway" flag: expected an IP address');
  refused(['10.0.0.0/24'], ['10.0.0.1', '10.0.0.2'], [], /cannot configure multiple gateways/);
  refused(['10.0.0.0/24'], [], ['10.0.0.0/16'], 'no matching subnet for range 10.0.0.0/16');
  refused(['10.0.0.0/24'], [], ['10.0.0.0/26', '10.0.0.64/26'], 'cannot configure multiple ranges (10.0.0.0/26, 10.0.0.64/26) on the same subnet (10.0.0.0/24)');
  refused([], ['10.0.0.1'], [], 'no matching subnet for gateway 10.0.0.1');
});

test('drivers, scope and the boolean flags', () => {
  const bridge = spec(['n1']);
  assert.deepEqual([bridge.driverConfig?.name, bridge.scope, bridge.ipam], ['bridge', 'local', null]);
  const mv = spec(['-d', 'macvlan', '-o', 'parent=eth0.10', '--internal', '--ipv6', 'n2']);
  assert.deepEqual([mv.driverConfig, mv.scope, mv.internal, mv.ipv6], [{ name: 'macvlan', options: { parent: 'eth0.10' } }, 'local', true, true]);
  const ov = spec(['-d', 'overlay', '--attachable', '--ingress', 'ingress']);
  assert.deepEqual([ov.scope, ov.attachable, ov.ingress], ['swarm', true, true]);
  assert.equal(spec(['-d', 'bridge', '--scope', 'swarm', 'n3']).scope, 'swarm');
  assert.throws(() => spec(['-d', 'host', 'n']), /unknown network driver: expected "overlay", "bridge" or "macvlan"/);
  assert.throws(() => spec(['--scope', 'global', 'n']), /expected "swarm" or "local"/);
  assert.throws(() => spec(['bad name']), /invalid network name "bad name"/);
});

test('network ls rows: sorted by name, ids cut to 12 unless --no-trunc', () => {
  const net = (id: string, name: string, driver: string, scope: string): Network => ({ id, meta: null, spec: { annotations: { name, labels: {} }, driverConfig: { name: driver, options: {} }, ipv6: false, internal: false, attachable: false, ingress: false, ipam: null, scope }, driverState: null, ipam: null });
  const rows = networkRows([net('bbbbbbbbbbbbbbbbbb', 'net10', 'overlay', 'swarm'), net('aaaaaaaaaaaaaaaaaa', 'net2', 'bridge', 'local')]);
  assert.deepEqual(rows, [
    { ID: 'aaaaaaaaaaaa', Name: 'net2', Driver: 'bridge', Scope: 'local' },
    { ID: 'bbbbbbbbbbbb', Name: 'net10', Driver: 'overlay', Scope: 'swarm' },
  ]);
  assert.equal(networkRows([net('bbbbbbbbbbbbbbbbbb', 'x', 'overlay', '')], true)[0]!.ID, 'bbbbbbbbbbbbbbbbbb');
});

test('node update flags: availability, role, labels added and removed', () => {
  const updateSpecs = nodeCommand.subcommands!.find((c) => c.name === 'update')!.flags!;
  const current: NodeSpec = { annotations: { name: '', labels: { zone: 'a', rack: '1' } }, desiredRole: 'WORKER', availability: 'ACTIVE' };
  const apply = (argv: string[]) => applyNodeUpdate(current, parseFlags(argv, updateSpecs).flags);
  assert.deepEqual(apply(['--availability', 'pause', '--role', 'manager', '--label-add', 'zone=b', '--label-rm', 'rack']), {
    annotations: { name: '', labels: { zone: 'b' } },
    desiredRole: 'MANAGER',
    availability: 'PAUSE',
  });
  assert.deepEqual(apply([]), current);
  assert.deepEqual(current.annotations?.labels, { zone: 'a', rack: '1' }, 'the current spec is not modified');
  assert.throws(() => apply(['--role', 'boss']), /invalid argument "boss" for "--role" flag: expected "worker" or "manager"/);
  assert.throws(() => apply(['--label-rm', 'disk']), /key disk doesn't exist in node's labels/);
});

test('node inspect --pretty lays a node out as Docker does', async () => {
  const { prettyNode } = await import('../../../cli/commands/node.js');
  const text = prettyNode({
    id: 'n1',
    spec: { annotations: { name: '', labels: { zone: 'a' } }, desiredRole: 'MANAGER', availability: 'DRAIN' },
    description: { hostname: 'h1', platform: { os: 'linux', architecture: 'x86_64' }, resources: { nanoCpus: 2e9, memoryBytes: 2 ** 30, generic: [], pids: 0 }, engineVersion: '0.1.0', engineLabels: {} },
    status: { state: 'READY', message: '', addr: '198.18.0.1' },
    managerStatus: { raftId: 1, addr: '198.18.0.1:2377', leader: true, reachability: 'REACHABLE' },
  } as unknown as Parameters<typeof prettyNode>[0]);
  assert.match(text, /^ID:\s+n1$/m);
  assert.match(text, /^ - zone=a$/m);
  assert.match(text, /^ Availability:\s+Drain$/m);
  assert.match(text, /^ Raft Status:\s+Reachable$/m);
  assert.match(text, /^ Leader:\s+Yes$/m);
  assert.match(text, /^ CPUs:\s+2$/m);
});
