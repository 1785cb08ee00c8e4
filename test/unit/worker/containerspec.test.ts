// The mapping from the cluster's ContainerSpec to the runtime's, and what gets a task rejected.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_STOP_GRACE_MS,
  healthCheckFor,
  parseByteSize,
  parseHostEntry,
  SpecRejectedError,
  toRuntimeSpec,
  validateTask,
  type ImageInfo,
} from '../../../agent/worker/containerspec.js';
import { containerIdFor, LABEL_TASK_ID, LABEL_TASK_NAME, taskName } from '../../../agent/worker/naming.js';
import { makeTask } from './tasks.js';

const image: ImageInfo = { id: 'sha256:x', config: { Entrypoint: ['/entry'], Cmd: ['serve'], Env: ['PATH=/bin', 'A=image'], WorkingDir: '/srv', StopSignal: 'SIGQUIT' } };
const input = { containerId: containerIdFor('t1'), rootfs: '/r', image, network: {} };

test('defaults: the image decides, Docker’s grace period, the task’s identity in name and labels', () => {
  const spec = toRuntimeSpec(makeTask('t1'), input);
  assert.equal(spec.id, containerIdFor('t1'));
  assert.equal(spec.name, 'web.1.t1');
  assert.equal(spec.rootfs, '/r');
  assert.deepEqual(spec.image?.Entrypoint, ['/entry']);
  assert.equal(spec.image?.StopSignal, 'SIGQUIT');
  assert.equal(spec.command, undefined);
  assert.equal(spec.args, undefined);
  assert.equal(spec.hostname, undefined, 'the runtime names the host after the container id');
  assert.equal(spec.stopGraceMs, DEFAULT_STOP_GRACE_MS);
  assert.equal(spec.labels?.[LABEL_TASK_ID], 't1');
  assert.equal(spec.labels?.[LABEL_TASK_NAME], 'web.1.t1');
  assert.equal(spec.resources, undefined);
  assert.equal(spec.netns, undefined);
});

test('every spec field reaches the runtime', () => {
  const task = makeTask('t1', {
    command: ['/bin/sh', '-c'],
    args: ['echo hi'],
    env: ['A=spec'],
    dir: '/work',
    user: 'app',
    hostname: 'h1',
    labels: { team: 'x', [LABEL_TASK_ID]: 'forged' },
    mounts: [
      { type: 'BIND', source: '/data', target: '/d', readOnly: true, tmpfsSizeBytes: 0 },
      { type: 'VOLUME', source: 'vol', target: '/v', readOnly: false, tmpfsSizeBytes: 0 },
      { type: 'VOLUME', source: '', target: '/anon', readOnly: false, tmpfsSizeBytes: 0 },
      { type: 'TMPFS', source: '', target: '/t', readOnly: false, tmpfsSizeBytes: 1024 },
    ],
    stopGracePeriodMs: 2500,
    stopSignal: 'SIGINT',
    readOnly: true,
    capAdd: ['NET_ADMIN'],
    capDrop: ['ALL'],
    hosts: ['10.0.0.1 db db.local', 'cache:10.0.0.2'],
    log: { maxSize: '10m', maxFile: 3 },
  });
  task.spec = { ...task.spec!, resources: { limits: { nanoCpus: 1_500_000_000, memoryBytes: 64 << 20, pids: 100, generic: [] }, reservations: null } };
  const spec = toRuntimeSpec(task, { ...input, network: { netnsPath: '/run/netns/n', ip: '10.0.0.9', hosts: [{ ip: '10.0.0.3', names: ['peer'] }], dns: { nameservers: ['10.0.0.53'] } } });
  assert.deepEqual(spec.command, ['/bin/sh', '-c']);
  assert.deepEqual(spec.args, ['echo hi']);
  assert.deepEqual(spec.env, ['A=spec']);
  assert.equal(spec.cwd, '/work');
  assert.equal(spec.user, 'app');
  assert.equal(spec.hostname, 'h1');
  assert.equal(spec.labels?.team, 'x');
  assert.equal(spec.labels?.[LABEL_TASK_ID], 't1', 'a spec label cannot forge the task id');
  assert.deepEqual(spec.mounts?.[0], { type: 'bind', source: '/data', target: '/d', readOnly: true });
  assert.deepEqual(spec.mounts?.[1], { type: 'volume', source: 'vol', target: '/v', readOnly: false });
  const anon = spec.mounts?.[2];
  assert.ok(anon?.type === 'volume' && /^[0-9a-f]{64}$/.test(anon.source), 'an anonymous volume gets a name');
  assert.deepEqual(spec.mounts?.[3], { type: 'tmpfs', target: '/t', readOnly: false, sizeBytes: 1024 });
  assert.equal(spec.stopGraceMs, 2500);
  assert.equal(spec.stopSignal, 'SIGINT');
  assert.equal(spec.readOnlyRootfs, true);
  assert.deepEqual(spec.capAdd, ['NET_ADMIN']);
  assert.deepEqual(spec.capDrop, ['ALL']);
  assert.deepEqual(spec.resources, { memoryBytes: 64 << 20, nanoCpus: 1_500_000_000, pidsLimit: 100 });
  assert.deepEqual(spec.log, { maxSizeBytes: 10 * 1024 * 1024, maxFiles: 3 });
  assert.equal(spec.netns, '/run/netns/n');
  assert.equal(spec.ip, '10.0.0.9');
  assert.deepEqual(spec.dns, { nameservers: ['10.0.0.53'] });
  assert.deepEqual(spec.hosts, [
    { ip: '10.0.0.3', names: ['peer'] },
    { ip: '10.0.0.1', names: ['db', 'db.local'] },
    { ip: '10.0.0.2', names: ['cache'] },
  ]);
});

test('global tasks are named after the node; the manager’s name wins when it gives one', () => {
  const global = { ...makeTask('t9'), slot: 0, nodeId: 'n7' };
  assert.equal(taskName(global), 'web.n7.t9');
  assert.equal(taskName({ ...global, annotations: { name: 'custom', labels: {} } }), 'custom');
});

test('rejected specs name the bad value', () => {
  const cases: Array<[Parameters<typeof makeTask>[1], RegExp]> = [
    [{ image: '' }, /no image/],
    [{ stopSignal: 'SIGBOGUS' }, /SIGBOGUS/],
    [{ capAdd: ['MAGIC'] }, /MAGIC/],
    [{ healthcheck: { test: ['WHAT'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0 } }, /WHAT/],
    [{ log: { maxSize: 'big', maxFile: 0 } }, /"big"/],
    [{ hosts: ['nohost'] }, /nohost/],
    [{ env: ['=x'] }, /=x/],
    [{ mounts: [{ type: 'BIND', source: 'rel', target: '/x', readOnly: false, tmpfsSizeBytes: 0 }] }, /"rel"/],
    [{ mounts: [{ type: 'TMPFS', source: '', target: 'x', readOnly: false, tmpfsSizeBytes: 0 }] }, /"x"/],
  ];
  for (const [container, message] of cases) {
    assert.throws(() => validateTask(makeTask('t1', container)), (err: Error) => err instanceof SpecRejectedError && message.test(err.message), JSON.stringify(container));
  }
  const noContainer = makeTask('t1');
  noContainer.spec = { ...noContainer.spec!, container: null };
  assert.throws(() => validateTask(noContainer), /no container spec/);
  validateTask(makeTask('t1', { stopSignal: 'TERM', capAdd: ['net_admin'], hosts: ['a:1.2.3.4'] }));
});

test('health checks: the spec’s, else the image’s (ns → ms), NONE turns them off', () => {
  const withImageCheck: ImageInfo = { id: 'i', config: { Healthcheck: { Test: ['CMD', 'ok'], Interval: 2e9, Timeout: 5e8, StartPeriod: 1e9, Retries: 4 } } };
  assert.deepEqual(healthCheckFor(makeTask('t'), withImageCheck), { test: ['CMD', 'ok'], intervalMs: 2000, timeoutMs: 500, startPeriodMs: 1000, retries: 4 });
  const spec = { test: ['CMD-SHELL', 'x'], intervalMs: 100, timeoutMs: 0, retries: 0, startPeriodMs: 0 };
  assert.deepEqual(healthCheckFor(makeTask('t', { healthcheck: spec }), withImageCheck), { test: ['CMD-SHELL', 'x'], intervalMs: 100 });
  assert.equal(healthCheckFor(makeTask('t', { healthcheck: { ...spec, test: ['NONE'] } }), withImageCheck), undefined);
  assert.equal(healthCheckFor(makeTask('t'), image), undefined);
});

test('sizes and host entries', () => {
  assert.equal(parseByteSize('100'), 100);
  assert.equal(parseByteSize('512k'), 512 * 1024);
  assert.equal(parseByteSize('10M'), 10 * 1024 * 1024);
  assert.equal(parseByteSize('1.5g'), 1.5 * 1024 ** 3);
  assert.equal(parseByteSize('2mb'), 2 * 1024 * 1024);
  assert.throws(() => parseByteSize('ten'), /"ten"/);
  assert.deepEqual(parseHostEntry('1.2.3.4 a b'), { ip: '1.2.3.4', names: ['a', 'b'] });
  assert.deepEqual(parseHostEntry('a:fe80::1'), { ip: 'fe80::1', names: ['a'] });
});

test("Docker's templates in hostname, env and mount sources; an unknown placeholder rejects the task", () => {
  const task = makeTask('t1', {
    hostname: '{{.Node.Hostname}}-{{ .Task.Slot }}',
    env: ['WHO={{.Task.Name}}', 'SVC={{.Service.Name}}', 'PLAIN=x'],
    mounts: [{ type: 'BIND', source: '/data/{{.Task.Slot}}', target: '/d', readOnly: false, tmpfsSizeBytes: 0 }],
  });
  const spec = toRuntimeSpec(task, input);
  assert.match(spec.hostname ?? '', /^.+-1$/);
  assert.deepEqual(spec.env, ['WHO=web.1.t1', 'SVC=web', 'PLAIN=x']);
  const m = spec.mounts?.[0];
  assert.equal(m && 'source' in m ? m.source : undefined, '/data/1');
  const bad = makeTask('t2', { hostname: '{{.Task.Nmae}}' });
  assert.throws(() => validateTask(bad), (e: Error) => e instanceof SpecRejectedError && /\{\{\.Task\.Nmae\}\}/.test(e.message));
});
