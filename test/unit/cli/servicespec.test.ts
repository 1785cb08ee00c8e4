// `service create`: each flag, parsed by the real flag specs, lands where Docker puts it in the
// ServiceSpec; every bad value is a UserError naming the flag and the value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from '../../../util/flags.js';
import { UserError } from '../../../util/command.js';
import { createFlags } from '../../../cli/serviceflags.js';
import { DEFAULT_RESTART, DEFAULT_UPDATE, serviceSpecFromFlags, type SpecIO } from '../../../cli/servicespec.js';
import type { ServiceSpec } from '../../../proto/gen/objects.js';

function create(argv: string[], io: SpecIO = {}): ServiceSpec {
  const { flags, args } = parseFlags(argv, createFlags, true);
  return serviceSpecFromFlags(flags, args, io);
}

const refused = (argv: string[], message: RegExp | string, io: SpecIO = {}) =>
  assert.throws(
    () => create(argv, io),
    (e: unknown) => e instanceof UserError && (typeof message === 'string' ? e.message === message : message.test(e.message)),
    argv.join(' '),
  );

test('the minimal service: one replica of the image, nothing else asked for', () => {
  const s = create(['nginx:1.25']);
  assert.equal(s.task?.container?.image, 'nginx:1.25');
  assert.deepEqual(s.replicated, { replicas: 1 });
  assert.equal(s.mode, 'replicated');
  assert.equal(s.annotations?.name, '');
  // Unasked-for messages stay unset so the manager applies swarmkit's defaults.
  assert.equal(s.update, null);
  assert.equal(s.rollback, null);
  assert.equal(s.task?.restart, null);
  assert.equal(s.task?.resources, null);
  assert.equal(s.task?.placement, null);
  assert.equal(s.task?.container?.healthcheck, null);
  assert.deepEqual(s.endpoint, { mode: 'VIP', ports: [] });
});

test('COMMAND and ARG go to args; flags after the image belong to the command', () => {
  const s = create(['--name', 'web', 'busybox', 'sh', '-c', 'echo hi', '--name', 'x']);
  assert.equal(s.annotations?.name, 'web');
  assert.deepEqual(s.task?.container?.args, ['sh', '-c', 'echo hi', '--name', 'x']);
  assert.deepEqual(s.task?.container?.command, []);
});

test('--entrypoint is split into words and replaces the image ENTRYPOINT', () => {
  assert.deepEqual(create(['--entrypoint', `sh -c 'sleep 5'`, 'busybox']).task?.container?.command, ['sh', '-c', 'sleep 5']);
});

test('--name must be a DNS label', () => {
  refused(['--name', 'bad name', 'nginx'], /invalid name "bad name"/);
  refused(['--name', '-web', 'nginx'], /invalid name "-web"/);
  refused(['--name', 'a'.repeat(64), 'nginx'], /invalid name/);
  assert.equal(create(['--name', 'my_web-1', 'nginx']).annotations?.name, 'my_web-1');
});

test('--replicas and --mode', () => {
  assert.deepEqual(create(['--replicas', '3', 'nginx']).replicated, { replicas: 3 });
  assert.deepEqual(create(['--replicas', '0', 'nginx']).replicated, { replicas: 0 });
  const g = create(['--mode', 'global', 'nginx']);
  assert.deepEqual(g.global, {});
  assert.equal(g.mode, 'global');
  assert.equal(g.replicated ?? null, null);
  assert.deepEqual(create(['--mode', 'global-job', 'busybox']).globalJob, {});
  refused(['--replicas', '-1', 'nginx'], 'invalid argument "-1" for "--replicas" flag: expected a non-negative integer');
  refused(['--replicas', 'two', 'nginx'], 'invalid argument "two" for "--replicas" flag: expected a non-negative integer');
  refused(['--mode', 'daemonset', 'nginx'], 'invalid argument "daemonset" for "--mode" flag: expected "replicated", "global", "replicated-job" or "global-job"');
  refused(['--mode', 'global', '--replicas', '2', 'nginx'], /replicas can only be used with replicated or replicated-job mode/);
  refused(['--mode', 'global-job', '--replicas', '2', 'nginx'], /replicas can only be used/);
});

test('replicated jobs: --replicas is the total, --max-concurrent defaults to it (and the other way round)', () => {
  assert.deepEqual(create(['--mode', 'replicated-job', 'busybox']).replicatedJob, { maxConcurrent: 1, totalCompletions: 1 });
  assert.deepEqual(create(['--mode', 'replicated-job', '--replicas', '5', 'busybox']).replicatedJob, { maxConcurrent: 5, totalCompletions: 5 });
  assert.deepEqual(create(['--mode', 'replicated-job', '--replicas', '5', '--max-concurrent', '2', 'busybox']).replicatedJob, { maxConcurrent: 2, totalCompletions: 5 });
  assert.deepEqual(create(['--mode', 'replicated-job', '--max-concurrent', '3', 'busybox']).replicatedJob, { maxConcurrent: 3, totalCompletions: 3 });
  refused(['--max-concurrent', '2', 'busybox'], /max-concurrent can only be used with replicated-job mode/);
});

test('-e/--env, with pass-through of a bare KEY from the CLI environment; later values win', () => {
  const s = create(['-e', 'A=1', '--env', 'B=x=y', '-e', 'HOME', '-e', 'UNSET', '-e', 'A=2', 'nginx'], { env: { HOME: '/root' } });
  assert.deepEqual(s.task?.container?.env, ['A=2', 'B=x=y', 'HOME=/root', 'UNSET']);
  refused(['-e', '=x', 'nginx'], 'invalid argument "=x" for "--env" flag: invalid environment variable');
});

test('--env-file is read through the injected reader, before -e, in Docker\'s format', () => {
  const files: Record<string, string> = { '/e': '# comment\n\nA=from-file\n  B=2\nPASS\nMISSING\nC=  spaced  \n' };
  const readFile = (p: string) => {
    if (!(p in files)) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
    return files[p]!;
  };
  const s = create(['--env-file', '/e', '-e', 'A=flag', 'nginx'], { readFile, env: { PASS: 'yes' } });
  assert.deepEqual(s.task?.container?.env, ['A=flag', 'B=2', 'PASS=yes', 'C=  spaced  ']);
  refused(['--env-file', '/missing', 'nginx'], 'open /missing: no such file or directory', { readFile });
  files['/bad'] = 'GOOD=1\nBAD KEY=2\n';
  refused(['--env-file', '/bad', 'nginx'], "/bad:2: variable 'BAD KEY' contains whitespaces", { readFile });
});

test('--label/-l and --container-label: KEY=VALUE or a bare KEY', () => {
  const s = create(['-l', 'tier=web', '--label', 'flag', '--container-label', 'c=1', 'nginx']);
  assert.deepEqual(s.annotations?.labels, { tier: 'web', flag: '' });
  assert.deepEqual(s.task?.container?.labels, { c: '1' });
  refused(['--label', '=v', 'nginx'], 'invalid argument "=v" for "--label" flag: empty name');
});

test('--constraint, --placement-pref and --replicas-max-per-node build the placement', () => {
  const s = create(['--constraint', 'node.role==manager', '--constraint', 'node.labels.zone != b', '--placement-pref', 'spread=node.labels.zone', '--replicas-max-per-node', '2', 'nginx']);
  assert.deepEqual(s.task?.placement, { constraints: ['node.role==manager', 'node.labels.zone != b'], preferences: [{ spreadDescriptor: 'node.labels.zone' }], maxReplicas: 2, platforms: [] });
  refused(['--constraint', 'node.role=manager', 'nginx'], /invalid argument "node.role=manager" for "--constraint" flag: a constraint is KEY==VALUE or KEY!=VALUE/);
  refused(['--placement-pref', 'binpack=x', 'nginx'], /unsupported placement preference binpack \(only spread is supported\)/);
  refused(['--placement-pref', 'spread', 'nginx'], /placement preference must be of the format "<strategy>=<arg>"/);
  refused(['--mode', 'global', '--replicas-max-per-node', '1', 'nginx'], /replicas-max-per-node can only be used with replicated mode/);
});

test('--reserve-* and --limit-*: decimal CPUs to nano CPUs, Docker sizes to bytes, pids', () => {
  const s = create(['--reserve-cpu', '0.5', '--reserve-memory', '256M', '--limit-cpu', '2', '--limit-memory', '1g', '--limit-pids', '100', 'nginx']);
  assert.deepEqual(s.task?.resources, {
    reservations: { nanoCpus: 500_000_000, memoryBytes: 256 * 1024 ** 2, generic: [], pids: 0 },
    limits: { nanoCpus: 2_000_000_000, memoryBytes: 1024 ** 3, generic: [], pids: 100 },
  });
  assert.equal(create(['--limit-memory', '64m', 'nginx']).task?.resources?.reservations, null);
  refused(['--limit-cpu', 'lots', 'nginx'], 'invalid argument "lots" for "--limit-cpu" flag: failed to parse lots as a rational number');
  refused(['--reserve-memory', '1q', 'nginx'], `invalid argument "1q" for "--reserve-memory" flag: invalid size: '1q'`);
  refused(['--limit-pids', '-5', 'nginx'], /--limit-pids/);
});

test('--restart-*: the policy starts from swarmkit\'s defaults', () => {
  assert.deepEqual(create(['--restart-condition', 'on-failure', 'nginx']).task?.restart, { ...DEFAULT_RESTART, condition: 'ON_FAILURE' });
  assert.deepEqual(create(['--restart-delay', '10s', '--restart-max-attempts', '3', '--restart-window', '1m', 'nginx']).task?.restart, { condition: 'ANY', delayMs: 10_000, maxAttempts: 3, windowMs: 60_000 });
  assert.equal(create(['--restart-condition', 'none', 'nginx']).task?.restart?.condition, 'NONE');
  refused(['--restart-condition', 'always', 'nginx'], 'invalid argument "always" for "--restart-condition" flag: expected "none", "on-failure" or "any"');
  refused(['--restart-delay', '5', 'nginx'], 'invalid argument "5" for "--restart-delay" flag: time: invalid duration "5"');
  refused(['--restart-delay', '-1s', 'nginx'], 'invalid argument "-1s" for "--restart-delay" flag: duration cannot be negative');
});

test('-p/--publish: short syntax with protocols and ranges, long syntax with host mode', () => {
  const ports = create(['-p', '8080:80', '-p', '53:53/udp', '-p', '9000-9001:90-91', '-p', '443', '--publish', 'published=7000,target=70,protocol=sctp,mode=host', 'nginx']).endpoint?.ports;
  assert.deepEqual(ports, [
    { name: '', protocol: 'TCP', targetPort: 80, publishedPort: 8080, publishMode: 'INGRESS' },
    { name: '', protocol: 'UDP', targetPort: 53, publishedPort: 53, publishMode: 'INGRESS' },
    { name: '', protocol: 'TCP', targetPort: 90, publishedPort: 9000, publishMode: 'INGRESS' },
    { name: '', protocol: 'TCP', targetPort: 91, publishedPort: 9001, publishMode: 'INGRESS' },
    { name: '', protocol: 'TCP', targetPort: 443, publishedPort: 0, publishMode: 'INGRESS' },
    { name: '', protocol: 'SCTP', targetPort: 70, publishedPort: 7000, publishMode: 'HOST' },
  ]);
  refused(['-p', '8080:80/xtp', 'nginx'], 'invalid argument "8080:80/xtp" for "--publish" flag: invalid proto: xtp');
  refused(['-p', '1.2.3.4:80:80', 'nginx'], /hostip is not supported/);
  refused(['-p', '70000:80', 'nginx'], /invalid port "70000": expected 1-65535/);
  refused(['-p', '8080-8082:80-81', 'nginx'], /invalid ranges specified for container and host Ports: 80-81 and 8080-8082/);
  refused(['-p', 'published=80', 'nginx'], /missing mandatory field 'target'/);
  refused(['-p', 'target=80,mode=bridge', 'nginx'], /invalid publish mode value \(bridge\): must be either 'ingress' or 'host'/);
  refused(['-p', 'target=80,color=red', 'nginx'], /invalid field key 'color'/);
  refused(['-p', '8080:80', '-p', '8080:81', 'nginx'], 'port 8080/tcp is published twice (to 80 and 81)');
});

test('--network: a name, or name/alias/driver-opt fields', () => {
  const nets = create(['--network', 'front', '--network', 'name=back,alias=db,alias=pg,driver-opt=com.x=1', 'nginx']).task?.networks;
  assert.deepEqual(nets, [
    { target: 'front', aliases: [], addresses: [], driverOpts: {} },
    { target: 'back', aliases: ['db', 'pg'], addresses: [], driverOpts: { 'com.x': '1' } },
  ]);
  refused(['--network', 'alias=x', 'nginx'], /network name\/id is not specified/);
  refused(['--network', 'name=a,ip=1', 'nginx'], /invalid field key 'ip'/);
  refused(['--network', 'a', '--network', 'a', 'nginx'], /network given twice/);
});

test('--mount: bind, volume (the default type), tmpfs with a size; readonly forms', () => {
  const mounts = create(['--mount', 'type=bind,source=/srv,target=/data,readonly', '--mount', 'src=vol1,dst=/v,ro=false', '--mount', 'type=tmpfs,target=/tmp,tmpfs-size=64m', 'nginx']).task?.container?.mounts;
  assert.deepEqual(mounts, [
    { type: 'BIND', source: '/srv', target: '/data', readOnly: true, tmpfsSizeBytes: 0 },
    { type: 'VOLUME', source: 'vol1', target: '/v', readOnly: false, tmpfsSizeBytes: 0 },
    { type: 'TMPFS', source: '', target: '/tmp', readOnly: false, tmpfsSizeBytes: 64 * 1024 ** 2 },
  ]);
  refused(['--mount', 'type=bind,source=/srv', 'nginx'], 'invalid argument "type=bind,source=/srv" for "--mount" flag: target is required');
  refused(['--mount', 'type=bind,target=/x', 'nginx'], /source is required for a bind mount/);
  refused(['--mount', 'type=nfs,target=/x', 'nginx'], /invalid mount type "nfs"/);
  refused(['--mount', 'type=tmpfs,source=x,target=/x', 'nginx'], /source must not be set for a tmpfs mount/);
  refused(['--mount', 'target=/x,volume-driver=local', 'nginx'], /unexpected key 'volume-driver'/);
  refused(['--mount', 'target=/x,readonly=maybe', 'nginx'], /invalid value for readonly: maybe/);
  refused(['--mount', 'target=/x', '--mount', 'type=tmpfs,target=/x', 'nginx'], 'duplicate mount target "/x"');
});

test('container settings: hostname, user, workdir, stop signal and grace period, read-only, tty', () => {
  const c = create(['--hostname', 'h', '-u', '1000:1000', '-w', '/app', '--stop-signal', 'SIGINT', '--stop-grace-period', '1m30s', '--read-only', '-t', 'nginx']).task?.container;
  assert.equal(c?.hostname, 'h');
  assert.equal(c?.user, '1000:1000');
  assert.equal(c?.dir, '/app');
  assert.equal(c?.stopSignal, 'SIGINT');
  assert.equal(c?.stopGracePeriodMs, 90_000);
  assert.equal(c?.readOnly, true);
  assert.equal(c?.tty, true);
});

test('--cap-add/--cap-drop are normalised to CAP_ names', () => {
  const c = create(['--cap-add', 'net_admin', '--cap-add', 'CAP_SYS_TIME', '--cap-drop', 'all', 'nginx']).task?.container;
  assert.deepEqual(c?.capAdd, ['CAP_NET_ADMIN', 'CAP_SYS_TIME']);
  assert.deepEqual(c?.capDrop, ['ALL']);
  refused(['--cap-add', 'net admin', 'nginx'], /not a capability name/);
});

test('health flags: a CMD-SHELL check, or --no-healthcheck alone', () => {
  assert.deepEqual(create(['--health-cmd', 'curl -f localhost', '--health-interval', '5s', '--health-timeout', '2s', '--health-retries', '3', '--health-start-period', '10s', 'nginx']).task?.container?.healthcheck, {
    test: ['CMD-SHELL', 'curl -f localhost'],
    intervalMs: 5000,
    timeoutMs: 2000,
    retries: 3,
    startPeriodMs: 10_000,
  });
  assert.deepEqual(create(['--no-healthcheck', 'nginx']).task?.container?.healthcheck?.test, ['NONE']);
  refused(['--no-healthcheck', '--health-retries', '2', 'nginx'], '--no-healthcheck conflicts with --health-* options');
  refused(['--health-retries', '-1', 'nginx'], /--health-retries cannot be negative/);
});

test('--log-opt: max-size and max-file of the built-in driver', () => {
  assert.deepEqual(create(['--log-opt', 'max-size=10m', '--log-opt', 'max-file=3', 'nginx']).task?.container?.log, { maxSize: '10m', maxFile: 3 });
  refused(['--log-opt', 'compress=true', 'nginx'], /unknown log opt 'compress': expected max-size or max-file/);
  refused(['--log-opt', 'max-size=big', 'nginx'], /invalid size: 'big'/);
  refused(['--log-opt', 'max-file=0', 'nginx'], /max-file must be a positive integer/);
});

test('--endpoint-mode', () => {
  assert.equal(create(['--endpoint-mode', 'dnsrr', 'nginx']).endpoint?.mode, 'DNSRR');
  refused(['--endpoint-mode', 'rr', 'nginx'], 'invalid argument "rr" for "--endpoint-mode" flag: expected "vip" or "dnsrr"');
});

test('--update-* and --rollback-*: a config starting from the defaults, only what was given changed', () => {
  const s = create(['--update-parallelism', '2', '--update-delay', '10s', '--update-failure-action', 'rollback', '--update-order', 'start-first', '--update-max-failure-ratio', '0.25', '--rollback-monitor', '20s', 'nginx']);
  assert.deepEqual(s.update, { parallelism: 2, delayMs: 10_000, failureAction: 'ROLLBACK', monitorMs: 5000, maxFailureRatio: 0.25, order: 'START_FIRST' });
  assert.deepEqual(s.rollback, { ...DEFAULT_UPDATE, monitorMs: 20_000 });
  assert.equal(create(['--update-parallelism', '0', 'nginx']).update?.parallelism, 0);
  refused(['--rollback-failure-action', 'rollback', 'nginx'], 'invalid argument "rollback" for "--rollback-failure-action" flag: expected "pause" or "continue"');
  refused(['--update-max-failure-ratio', '1.5', 'nginx'], /expected a number between 0 and 1/);
  refused(['--update-order', 'random', 'nginx'], /expected "start-first" or "stop-first"/);
});

test('an image is required', () => {
  assert.throws(() => serviceSpecFromFlags(parseFlags(['--name', 'x'], createFlags, true).flags, []), /requires an IMAGE/);
});
