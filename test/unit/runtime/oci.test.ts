import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildOciConfig, mergeEnv, resolveArgs, DEFAULT_MASKED_PATHS, type BuildInput } from '../../../agent/runtime/spec/oci.js';
import type { ContainerSpec } from '../../../agent/runtime/runtime.js';

function input(spec: Partial<ContainerSpec>): BuildInput {
  return {
    spec: { id: 'c1', rootfs: '/r', command: ['true'], ...spec },
    user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
    hostFiles: { hosts: '/s/hosts', hostname: '/s/hostname', resolvConf: '/s/resolv.conf' },
    volumesDir: '/v',
    cgroupsPath: '/shoal/c1',
  };
}

test('argv: Command replaces Entrypoint and drops Cmd; Args replaces Cmd', () => {
  const image = { Entrypoint: ['/entry'], Cmd: ['--default'] };
  assert.deepEqual(resolveArgs({ id: 'a', rootfs: '/', image }), ['/entry', '--default']);
  assert.deepEqual(resolveArgs({ id: 'a', rootfs: '/', image, args: ['--x'] }), ['/entry', '--x']);
  assert.deepEqual(resolveArgs({ id: 'a', rootfs: '/', image, command: ['/other'] }), ['/other']);
  assert.deepEqual(resolveArgs({ id: 'a', rootfs: '/', image, command: ['/other'], args: ['y'] }), ['/other', 'y']);
  assert.throws(() => resolveArgs({ id: 'a', rootfs: '/' }), /container a: no command specified/);
});

test('env: image then spec, later keys win, defaults first and overridable', () => {
  assert.deepEqual(mergeEnv(['A=1', 'PATH=/img'], ['A=2', 'B=3'], { PATH: '/def', HOME: '/' }), ['PATH=/img', 'HOME=/', 'A=2', 'B=3']);
  assert.throws(() => mergeEnv([], ['=x'], {}), /invalid environment entry "=x"/);
});

test('resources: memory, CFS quota from NanoCPUs, pids', () => {
  const c = buildOciConfig(input({ resources: { memoryBytes: 128 << 20, nanoCpus: 1_500_000_000, pidsLimit: 100 } }));
  assert.deepEqual(c.linux.resources.memory, { limit: 128 << 20 });
  assert.deepEqual(c.linux.resources.cpu, { quota: 150_000, period: 100_000 });
  assert.deepEqual(c.linux.resources.pids, { limit: 100 });
  assert.throws(() => buildOciConfig(input({ resources: { memoryBytes: 1024 } })), /memory limit 1024 is too small/);
});

test('defaults: new netns, masked paths, read-write root, host files bound', () => {
  const c = buildOciConfig(input({}));
  assert.deepEqual(c.linux.namespaces.find((n) => n.type === 'network'), { type: 'network' });
  assert.deepEqual(c.linux.maskedPaths, DEFAULT_MASKED_PATHS);
  assert.equal(c.root.readonly, false);
  assert.equal(c.hostname, 'c1');
  for (const f of ['/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/dev/shm', '/dev/mqueue', '/dev/pts', '/proc', '/sys']) {
    assert.ok(c.mounts.some((m) => m.destination === f), f);
  }
  assert.ok(c.process.capabilities.bounding.includes('CAP_NET_RAW'));
});

test('netns path, read-only root, mounts of every kind', () => {
  const c = buildOciConfig(
    input({
      netns: '/run/netns/x',
      readOnlyRootfs: true,
      mounts: [
        { type: 'bind', source: '/host', target: '/in', readOnly: true },
        { type: 'volume', source: 'data', target: '/data' },
        { type: 'tmpfs', target: '/t', sizeBytes: 1024, mode: 0o700 },
      ],
    }),
  );
  assert.deepEqual(c.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/x' });
  assert.equal(c.root.readonly, true);
  const m = c.mounts.slice(-3);
  assert.deepEqual(m[0], { destination: '/in', type: 'bind', source: '/host', options: ['rbind', 'rprivate', 'ro'] });
  assert.deepEqual(m[1], { destination: '/data', type: 'bind', source: '/v/data/_data', options: ['rbind', 'rprivate', 'rw'] });
  assert.deepEqual(m[2], { destination: '/t', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'rw', 'size=1024', 'mode=700'] });
  assert.throws(() => buildOciConfig(input({ mounts: [{ type: 'volume', source: '../etc', target: '/x' }] })), /invalid volume name "..\/etc"/);
  assert.throws(() => buildOciConfig(input({ mounts: [{ type: 'bind', source: 'rel', target: '/x' }] })), /source "rel" must be an absolute/);
  assert.throws(() => buildOciConfig(input({ cwd: 'rel' })), /working directory "rel"/);
});
