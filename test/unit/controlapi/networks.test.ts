// Networks through the control API: create with each driver and its checks, inspect, list with
// filters, and removal refused while a service, a task or the routing mesh uses the network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { createNetwork, getNetwork, listNetworks, removeNetwork } from '../../../manager/controlapi/networks.js';
import { createService } from '../../../manager/controlapi/services.js';
import { clusterContext, networkSpec, newContext, port, rejects, serviceSpec, task, type NetworkOptions } from './fixtures.js';

test('create: overlay by default with scope swarm; bridge and macvlan are local', async () => {
  const ctx = newContext();
  const overlay = await createNetwork(ctx, { spec: networkSpec('front', { attachable: true, internal: true, labels: { env: 'prod' } }) });
  assert.equal(overlay.spec?.driverConfig?.name, 'overlay');
  assert.equal(overlay.spec?.scope, 'swarm');
  assert.equal(overlay.spec?.attachable, true);
  assert.equal(overlay.spec?.internal, true);
  assert.deepEqual(overlay.spec?.annotations?.labels, { env: 'prod' });
  assert.ok((overlay.meta?.version ?? 0) > 0);
  const bridge = await createNetwork(ctx, { spec: networkSpec('local', { driver: 'bridge', subnet: '172.30.0.0/16', gateway: '172.30.0.254', options: { 'com.docker.network.bridge.name': 'br-local' } }) });
  assert.equal(bridge.spec?.scope, 'local');
  assert.deepEqual(bridge.spec?.driverConfig?.options, { 'com.docker.network.bridge.name': 'br-local' });
  assert.equal(bridge.spec?.ipam?.configs[0]?.gateway, '172.30.0.254');
  const macvlan = await createNetwork(ctx, { spec: networkSpec('lan', { driver: 'macvlan', subnet: '192.168.50.0/24', options: { parent: 'eth0.50', macvlan_mode: 'bridge' } }) });
  assert.equal(macvlan.spec?.scope, 'local');
  assert.equal(ctx.store.all('networks').length, 3);
});

type Case = [what: string, name: string, options: NetworkOptions, code: status, message: RegExp];

const INVALID: Case[] = [
  ['an empty name', '', {}, status.INVALID_ARGUMENT, /a network needs a name/],
  ['a name with a slash', 'a/b', {}, status.INVALID_ARGUMENT, /invalid network name "a\/b"/],
  ['an unknown driver', 'n', { driver: 'ipvlan' }, status.INVALID_ARGUMENT, /unsupported driver "ipvlan"; supported: overlay, bridge, macvlan/],
  ['a scope the driver does not have', 'n', { driver: 'bridge', scope: 'swarm' }, status.INVALID_ARGUMENT, /the bridge driver has scope local, not "swarm"/],
  ['an attachable ingress network', 'n', { ingress: true, attachable: true }, status.INVALID_ARGUMENT, /an ingress network cannot be attachable/],
  ['an internal ingress network', 'n', { ingress: true, internal: true }, status.INVALID_ARGUMENT, /an ingress network cannot be internal/],
  ['an encrypted overlay', 'n', { options: { encrypted: '' } }, status.INVALID_ARGUMENT, /encrypted overlay networks are not supported/],
  ['a macvlan network without parent', 'lan', { driver: 'macvlan' }, status.INVALID_ARGUMENT, /network lan: a macvlan network needs the host interface it sits on: -o parent=eth0/],
  ['a macvlan parent that is no interface name', 'lan', { driver: 'macvlan', options: { parent: 'eth0/1' } }, status.INVALID_ARGUMENT, /invalid parent interface "eth0\/1"/],
  ['a macvlan parent of 16 characters', 'lan', { driver: 'macvlan', options: { parent: 'a'.repeat(16) } }, status.INVALID_ARGUMENT, /invalid parent interface "a{16}"/],
  ['an unknown macvlan mode', 'lan', { driver: 'macvlan', options: { parent: 'eth0', macvlan_mode: 'hub' } }, status.INVALID_ARGUMENT, /invalid macvlan_mode "hub": expected bridge, private, vepa, passthru/],
  ['a parent on an overlay', 'n', { options: { parent: 'eth0' } }, status.INVALID_ARGUMENT, /the parent option is for the macvlan driver, not overlay/],
  ['a malformed subnet', 'n', { subnet: '10.1.0.0/33' }, status.INVALID_ARGUMENT, /invalid subnet "10.1.0.0\/33"/],
  ['a subnet that is no CIDR', 'n', { subnet: 'ten' }, status.INVALID_ARGUMENT, /invalid subnet "ten"/],
  ['a gateway outside the subnet', 'n', { subnet: '10.1.0.0/24', gateway: '10.2.0.1' }, status.INVALID_ARGUMENT, /invalid gateway 10.2.0.1: it is not inside subnet 10.1.0.0\/24/],
  ['a malformed gateway', 'n', { subnet: '10.1.0.0/24', gateway: '10.1.0.x' }, status.INVALID_ARGUMENT, /invalid gateway "10.1.0.x"/],
  ['an ip-range outside the subnet', 'n', { subnet: '10.1.0.0/24', range: '10.1.1.0/25' }, status.INVALID_ARGUMENT, /invalid ip-range 10.1.1.0\/25: it is not inside subnet 10.1.0.0\/24/],
  ['a gateway without a subnet', 'n', { gateway: '10.1.0.1' }, status.INVALID_ARGUMENT, /a gateway or ip-range needs a subnet/],
];

for (const [what, name, options, code, message] of INVALID) {
  test(`network create refuses ${what}`, async () => {
    const ctx = newContext();
    await rejects(createNetwork(ctx, { spec: networkSpec(name, options) }), code, message);
    assert.equal(ctx.store.all('networks').length, 0);
  });
}

test('create refuses a taken name, an overlapping subnet, a second ingress network and a shared macvlan parent', async () => {
  const ctx = await clusterContext();
  const a = await createNetwork(ctx, { spec: networkSpec('a', { subnet: '10.10.0.0/16' }) });
  await rejects(createNetwork(ctx, { spec: networkSpec('a') }), status.ALREADY_EXISTS, new RegExp(`network with name a already exists \\(${a.id}\\)`));
  await rejects(createNetwork(ctx, { spec: networkSpec('b', { subnet: '10.10.5.0/24' }) }), status.ALREADY_EXISTS, /subnet 10.10.5.0\/24 of network "b" overlaps subnet 10.10.0.0\/16 of network "a"/);
  await rejects(createNetwork(ctx, { spec: networkSpec('mesh', { ingress: true }) }), status.ALREADY_EXISTS, /an ingress network already exists: "ingress"/);
  const lan = await createNetwork(ctx, { spec: networkSpec('lan', { driver: 'macvlan', options: { parent: 'eth1' } }) });
  await rejects(createNetwork(ctx, { spec: networkSpec('lan2', { driver: 'macvlan', options: { parent: 'eth1' } }) }), status.ALREADY_EXISTS, new RegExp(`network lan \\(${lan.id}\\) is already using parent interface eth1`));
  await createNetwork(ctx, { spec: networkSpec('lan10', { driver: 'macvlan', options: { parent: 'eth1.10' } }) });
  await rejects(createNetwork(ctx, {}), status.INVALID_ARGUMENT, /needs a network spec/);
});

test('get by id, name or prefix; list filters by id, name, driver, label and scope', async () => {
  const ctx = await clusterContext();
  const ids = ['f00d1', 'beef2', 'cafe3'];
  ctx.newId = () => ids.shift()!;
  await createNetwork(ctx, { spec: networkSpec('front', { labels: { tier: 'web' } }) });
  await createNetwork(ctx, { spec: networkSpec('back-end', { labels: { tier: 'db' } }) });
  await createNetwork(ctx, { spec: networkSpec('host-lan', { driver: 'bridge' }) });
  assert.equal(getNetwork(ctx, 'front').id, 'f00d1');
  assert.equal(getNetwork(ctx, 'bee').spec?.annotations?.name, 'back-end');
  assert.equal(getNetwork(ctx, 'ingress0').spec?.ingress, true);
  await rejects(() => getNetwork(ctx, 'nope'), status.NOT_FOUND, /network nope not found/);
  const names = (filters: Record<string, string>) => listNetworks(ctx, { filters }).map((n) => n.spec?.annotations?.name);
  assert.deepEqual(names({}), ['back-end', 'front', 'host-lan', 'ingress']);
  assert.deepEqual(names({ name: 'end' }), ['back-end']);
  assert.deepEqual(names({ id: 'afe' }), ['host-lan']);
  assert.deepEqual(names({ driver: 'bridge' }), ['host-lan']);
  assert.deepEqual(names({ scope: 'swarm' }), ['back-end', 'front', 'ingress']);
  assert.deepEqual(names({ label: 'tier=db' }), ['back-end']);
  assert.deepEqual(names({ label: 'tier', scope: 'swarm' }), ['back-end', 'front']);
  await rejects(() => names({ dangling: 'true' }), status.INVALID_ARGUMENT, /invalid filter 'dangling'/);
});

test('remove is refused while a service spec uses the network, and allowed after', async () => {
  const ctx = await clusterContext();
  const net = await createNetwork(ctx, { spec: networkSpec('front') });
  const web = await createService(ctx, { spec: serviceSpec('web', { networks: ['front'] }) });
  await rejects(removeNetwork(ctx, 'front'), status.FAILED_PRECONDITION, new RegExp(`network "front" \\(${net.id}\\) is in use by service "web" \\(${web.id}\\)`));
  await ctx.store.update((tx) => tx.remove('services', web.id));
  await removeNetwork(ctx, net.id);
  assert.equal(ctx.store.get('networks', net.id), undefined);
  await rejects(removeNetwork(ctx, 'front'), status.NOT_FOUND, /network front not found/);
});

test('remove is refused while a task that has not ended is attached', async () => {
  const ctx = await clusterContext();
  const net = await createNetwork(ctx, { spec: networkSpec('front') });
  await ctx.store.update((tx) => tx.create('tasks', task('t1', 'gone', 'old', { networks: [net.id] })));
  await rejects(removeNetwork(ctx, 'front'), status.FAILED_PRECONDITION, /is in use by task t1/);
  const ended = { ...ctx.store.get('tasks', 't1')!, status: { ...ctx.store.get('tasks', 't1')!.status!, state: 'SHUTDOWN' as const } };
  await ctx.store.update((tx) => tx.update('tasks', ended));
  await removeNetwork(ctx, 'front');
});

test('the ingress network cannot be removed while a service publishes ingress ports', async () => {
  const ctx = await clusterContext();
  const web = await createService(ctx, { spec: serviceSpec('web', { ports: [port(80, 8080)] }) });
  await createService(ctx, { spec: serviceSpec('api', { ports: [port(80, 9000, 'HOST')] }) });
  await rejects(removeNetwork(ctx, 'ingress'), status.FAILED_PRECONDITION, new RegExp(`ingress network "ingress" \\(ingress0\\) cannot be removed: service "web" \\(${web.id}\\) publishes ports through it`));
  await ctx.store.update((tx) => tx.remove('services', web.id));
  await removeNetwork(ctx, 'ingress');
});
