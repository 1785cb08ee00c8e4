import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VniAllocator, VNI_MIN, parseVniList } from '../../../manager/allocator/vni.js';
import { PortAllocator, DYNAMIC_PORT_MIN, DYNAMIC_PORT_MAX } from '../../../manager/allocator/ports.js';
import { AllocatorError } from '../../../manager/allocator/errors.js';

const web = { serviceId: 'svc1', serviceName: 'web' };
const api = { serviceId: 'svc2', serviceName: 'api' };

test('VNIs start at 4096, are unique, and a freed one is not reused at once', () => {
  const v = new VniAllocator();
  const got = Array.from({ length: 3 }, () => v.allocate());
  assert.deepEqual(got, [VNI_MIN, VNI_MIN + 1, VNI_MIN + 2]);
  v.release(VNI_MIN);
  assert.equal(v.allocate(), VNI_MIN + 3);
  v.reserve(5000);
  assert.throws(() => v.reserve(5000), /5000 is already in use/);
  assert.throws(() => v.reserve(100), /between 4096 and 16777215/);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const n = v.allocate();
    assert.ok(!seen.has(n) && n !== 5000 && n >= VNI_MIN);
    seen.add(n);
  }
  assert.deepEqual(parseVniList('4097,4098'), [4097, 4098]);
  assert.throws(() => parseVniList('12,x'), /vxlanid_list/);
});

test('a given published port is honoured when free; another service asking for it gets an error naming both', () => {
  const p = new PortAllocator();
  p.reserve('TCP', 8080, web);
  p.reserve('TCP', 8080, web);
  p.reserve('UDP', 8080, api);
  assert.throws(
    () => p.reserve('TCP', 8080, api),
    (e: unknown) => e instanceof AllocatorError && e.code === 'AlreadyExists' && /port 8080\/tcp is already in use by service "web" \(svc1\)/.test(e.message),
  );
  p.release('TCP', 8080, 'svc2');
  assert.equal(p.ownerOf('TCP', 8080)?.serviceId, 'svc1', 'only the holder can free a port');
  p.release('TCP', 8080, 'svc1');
  p.reserve('TCP', 8080, api);
  assert.throws(() => p.reserve('TCP', 70000, api), /70000/);
});

test('dynamic ports come from 30000-32767, skip taken ones, and run out with a clear error', () => {
  const p = new PortAllocator();
  p.reserve('TCP', DYNAMIC_PORT_MIN + 1, web);
  assert.equal(p.allocateDynamic('TCP', api), DYNAMIC_PORT_MIN);
  assert.equal(p.allocateDynamic('TCP', api), DYNAMIC_PORT_MIN + 2);
  assert.equal(p.allocateDynamic('UDP', api), DYNAMIC_PORT_MIN, 'protocols are separate namespaces');
  for (let port = DYNAMIC_PORT_MIN + 3; port <= DYNAMIC_PORT_MAX; port++) assert.equal(p.allocateDynamic('TCP', web), port);
  assert.throws(() => p.allocateDynamic('TCP', web), (e: unknown) => e instanceof AllocatorError && e.code === 'ResourceExhausted' && /30000-32767/.test(e.message));
  p.release('TCP', 31000, 'svc1');
  assert.equal(p.allocateDynamic('TCP', web), 31000);
});
