import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateNetworkSpec, validateServiceEndpoint, checkNetworkRemovable } from '../../../manager/allocator/checks.js';
import { Allocator } from '../../../manager/allocator/allocator.js';
import { AllocatorError } from '../../../manager/allocator/errors.js';
import { VXLAN_ID_OPTION } from '../../../manager/allocator/vni.js';
import { network, newStore, port, service, serviceSpec, setTaskState, task } from './fixtures.js';

function fails(fn: () => unknown, code: AllocatorError['code'], pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof AllocatorError, String(e));
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

test('network specs: an overlap with an allocated or requested subnet is refused naming both networks', () => {
  const allocated = network('n1', 'front');
  allocated.ipam = { driver: null, configs: [{ subnet: '10.0.0.0/24', gateway: '10.0.0.1', range: '' }] };
  const requested = network('n2', 'back', { subnet: '172.20.0.0/16' });
  const existing = [allocated, requested];
  fails(() => validateNetworkSpec(network('x', 'wide', { subnet: '10.0.0.0/16' }).spec!, existing), 'AlreadyExists', /10\.0\.0\.0\/16 of network "wide" overlaps subnet 10\.0\.0\.0\/24 of network "front" \(n1\)/);
  fails(() => validateNetworkSpec(network('x', 'inner', { subnet: '172.20.3.0/24' }).spec!, existing), 'AlreadyExists', /172\.20\.3\.0\/24 .* 172\.20\.0\.0\/16 of network "back"/);
  validateNetworkSpec(network('x', 'fine', { subnet: '10.1.0.0/16', gateway: '10.1.255.254', range: '10.1.8.0/21' }).spec!, existing);
  validateNetworkSpec(network('x', 'pooled').spec!, existing);
});

test('network specs: bad driver, gateway, range, a second ingress network and a taken VXLAN id are refused', () => {
  const ingress = network('i', 'ingress', { ingress: true });
  ingress.driverState = { name: 'overlay', options: { [VXLAN_ID_OPTION]: '4096' } };
  fails(() => validateNetworkSpec(network('x', 'h', { driver: 'host' }).spec!, []), 'InvalidArgument', /unsupported driver "host"; supported: overlay, bridge, macvlan/);
  fails(() => validateNetworkSpec(network('x', 'g', { subnet: '10.9.0.0/24', gateway: '10.8.0.1' }).spec!, []), 'InvalidArgument', /gateway 10\.8\.0\.1: it is not inside subnet 10\.9\.0\.0\/24/);
  fails(() => validateNetworkSpec(network('x', 'r', { subnet: '10.9.0.0/24', range: '10.9.1.0/25' }).spec!, []), 'InvalidArgument', /ip-range 10\.9\.1\.0\/25/);
  fails(() => validateNetworkSpec(network('x', 'again', { ingress: true }).spec!, [ingress]), 'AlreadyExists', /ingress network already exists: "ingress"/);
  fails(() => validateNetworkSpec(network('x', 'v', { options: { [VXLAN_ID_OPTION]: '4096' } }).spec!, [ingress]), 'AlreadyExists', /VXLAN id 4096 .* "ingress"/);
});

test('service endpoints: a published port another service holds or asks for is refused naming it', () => {
  const holder = service('s1', 'web', { ports: [port(80, 8080)] });
  const asker = service('s2', 'api', { ports: [port(80, 9090, 'INGRESS', 'UDP')] });
  fails(() => validateServiceEndpoint(serviceSpec('new', { ports: [port(80, 8080)] }), '', [holder, asker]), 'AlreadyExists', /port 8080\/tcp is already in use by service "web" \(s1\)/);
  fails(() => validateServiceEndpoint(serviceSpec('new', { ports: [port(53, 9090, 'INGRESS', 'UDP')] }), '', [holder, asker]), 'AlreadyExists', /9090\/udp .* "api"/);
  // The same number on the other protocol, host mode, or the service's own port is fine.
  validateServiceEndpoint(serviceSpec('new', { ports: [port(80, 8080, 'INGRESS', 'UDP'), port(81, 8080, 'HOST')] }), '', [holder]);
  validateServiceEndpoint(serviceSpec('web', { ports: [port(81, 8080)] }), 's1', [holder]);
  fails(() => validateServiceEndpoint(serviceSpec('dup', { ports: [port(80, 8000), port(81, 8000)] }), '', []), 'InvalidArgument', /8000\/tcp is given twice/);
  fails(() => validateServiceEndpoint(serviceSpec('rr', { mode: 'DNSRR', ports: [port(80, 8000)] }), '', []), 'InvalidArgument', /dnsrr/);
  fails(() => validateServiceEndpoint(serviceSpec('big', { ports: [port(80, 70000)] }), '', []), 'InvalidArgument', /70000/);
});

test('a network in use by a service or a live task cannot be removed', async (t) => {
  const store = newStore();
  const a = new Allocator(store);
  t.after(() => a.stop());
  await a.start();
  await store.update((tx) => {
    tx.create('networks', network('n', 'front'));
    tx.create('networks', network('ing', 'ingress', { ingress: true }));
  });
  await a.settled();
  const s = service('s', 'web', { networks: ['n'], ports: [port(80, 8080)] });
  await store.update((tx) => {
    tx.create('services', s);
    tx.create('tasks', task('s.1', s, 1));
  });
  await a.settled();
  fails(() => checkNetworkRemovable(store, 'n'), 'FailedPrecondition', /network "front" \(n\) is in use by service "web" \(s\)/);
  fails(() => checkNetworkRemovable(store, 'ing'), 'FailedPrecondition', /ingress network "ingress" \(ing\) cannot be removed: service "web"/);
  await store.update((tx) => tx.remove('services', 's'));
  fails(() => checkNetworkRemovable(store, 'n'), 'FailedPrecondition', /in use by task s\.1/);
  await setTaskState(store, 's.1', 'SHUTDOWN');
  checkNetworkRemovable(store, 'n');
  checkNetworkRemovable(store, 'ing');
});
