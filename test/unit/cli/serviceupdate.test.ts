// `service update`: Docker's update flags applied to a current spec — only what a flag names
// changes, the current spec object is never modified, and bad values name the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from '../../../util/flags.js';
import { UserError } from '../../../util/command.js';
import { createFlags, updateFlags } from '../../../cli/serviceflags.js';
import { applyServiceUpdate, DEFAULT_RESTART, DEFAULT_UPDATE, givenUpdateFlags, serviceSpecFromFlags, type UpdateContext } from '../../../cli/servicespec.js';
import { checkUpdateFlags } from '../../../cli/commands/service.js';
import type { ServiceSpec } from '../../../proto/gen/objects.js';

/** A current spec as the manager stores it (networks resolved to ids). */
function current(argv: string[]): ServiceSpec {
  const { flags, args } = parseFlags(argv, createFlags, true);
  return serviceSpecFromFlags(flags, args);
}

const base = current([
  '--name', 'web', '--replicas', '2', '-e', 'A=1', '-e', 'B=2', '-l', 'tier=web', '--container-label', 'c=1',
  '--constraint', 'node.role==worker', '--mount', 'type=volume,source=data,target=/data', '-p', '8080:80', '-p', '53:53/udp',
  '--network', 'net-id-1', '--read-only', '--health-cmd', 'true', 'nginx:1.24', 'nginx', '-g', 'daemon off;',
]);

function update(spec: ServiceSpec, argv: string[], ctx: UpdateContext = {}): ServiceSpec {
  const { flags, args } = parseFlags(argv, updateFlags);
  assert.deepEqual(args, []);
  const before = JSON.stringify(spec);
  const out = applyServiceUpdate(spec, flags, ctx);
  assert.equal(JSON.stringify(spec), before, 'the current spec is not modified');
  return out;
}

const refused = (argv: string[], message: RegExp | string, spec = base) =>
  assert.throws(
    () => update(spec, argv),
    (e: unknown) => e instanceof UserError && (typeof message === 'string' ? e.message === message : message.test(e.message)),
    argv.join(' '),
  );

test('no flags: the same spec', () => {
  assert.deepEqual(update(base, []), base);
});

test('--image, --args and --entrypoint replace the container command line', () => {
  const s = update(base, ['--image', 'nginx:1.25', '--args', 'nginx -g "daemon on;"', '--entrypoint', '/docker-entrypoint.sh']);
  assert.equal(s.task?.container?.image, 'nginx:1.25');
  assert.deepEqual(s.task?.container?.args, ['nginx', '-g', 'daemon on;']);
  assert.deepEqual(s.task?.container?.command, ['/docker-entrypoint.sh']);
  refused(['--image', ' '], /an image reference is required/);
});

test('--env-add replaces in place or appends; --env-rm removes by key', () => {
  assert.deepEqual(update(base, ['--env-add', 'B=3', '--env-add', 'C=4', '--env-rm', 'A']).task?.container?.env, ['B=3', 'C=4']);
  assert.deepEqual(update(base, ['--env-rm', 'A=whatever']).task?.container?.env, ['B=2']);
  refused(['--env-add', '=1'], /invalid environment variable/);
});

test('--label-add/--label-rm and --container-label-add/--container-label-rm', () => {
  const s = update(base, ['--label-add', 'tier=api', '--label-add', 'new', '--container-label-rm', 'c', '--container-label-add', 'd=2', '--label-rm', 'absent']);
  assert.deepEqual(s.annotations?.labels, { tier: 'api', new: '' });
  assert.deepEqual(s.task?.container?.labels, { d: '2' });
});

test('--replicas (and --max-concurrent for jobs); refused for global services', () => {
  assert.deepEqual(update(base, ['--replicas', '5']).replicated, { replicas: 5 });
  const job = current(['--mode', 'replicated-job', '--replicas', '4', 'busybox']);
  assert.deepEqual(update(job, ['--replicas', '6', '--max-concurrent', '2']).replicatedJob, { totalCompletions: 6, maxConcurrent: 2 });
  const global = current(['--mode', 'global', 'nginx']);
  refused(['--replicas', '3'], 'replicas can only be used with replicated or replicated-job mode', global);
  refused(['--max-concurrent', '3'], 'max-concurrent can only be used with replicated-job mode');
});

test('--constraint-add/--constraint-rm, sorted as Docker keeps them; --placement-pref-*; --replicas-max-per-node', () => {
  const s = update(base, ['--constraint-add', 'node.labels.zone==a', '--constraint-rm', 'node.role==worker', '--placement-pref-add', 'spread=node.labels.rack', '--replicas-max-per-node', '1']);
  assert.deepEqual(s.task?.placement, { constraints: ['node.labels.zone==a'], preferences: [{ spreadDescriptor: 'node.labels.rack' }], maxReplicas: 1, platforms: [] });
  assert.deepEqual(update(s, ['--placement-pref-rm', 'spread=node.labels.rack']).task?.placement?.preferences, []);
  refused(['--constraint-add', 'zone'], /a constraint is KEY==VALUE or KEY!=VALUE/);
});

test('--publish-add adds or replaces by published port; --publish-rm removes by target port', () => {
  const s = update(base, ['--publish-add', '8080:81', '--publish-add', '9090:90', '--publish-rm', '53/udp']);
  assert.deepEqual(
    s.endpoint?.ports.map((p) => `${p.publishedPort}:${p.targetPort}/${p.protocol}`),
    ['8080:81/TCP', '9090:90/TCP'],
  );
  // Removing by target keeps ports of another protocol on the same target.
  assert.deepEqual(update(base, ['--publish-rm', '53']).endpoint?.ports.length, 2);
  assert.deepEqual(update(base, ['--publish-rm', 'target=80']).endpoint?.ports.map((p) => p.targetPort), [53]);
  refused(['--publish-add', '80:80/xtp'], /invalid proto: xtp/);
});

test('--mount-add replaces by target, --mount-rm removes by target', () => {
  const s = update(base, ['--mount-add', 'type=tmpfs,target=/data', '--mount-add', 'type=bind,source=/etc/x,target=/x,ro']);
  assert.deepEqual(
    s.task?.container?.mounts.map((m) => `${m.type}:${m.source}:${m.target}:${m.readOnly}`),
    ['TMPFS::/data:false', 'BIND:/etc/x:/x:true'],
  );
  assert.deepEqual(update(base, ['--mount-rm', '/data']).task?.container?.mounts, []);
  refused(['--mount-add', 'target=/a', '--mount-add', 'type=tmpfs,target=/a'], 'duplicate mount target "/a"');
});

test('--network-add attaches by id, refusing a network already attached; --network-rm by name or id', () => {
  const ids = { front: 'net-id-2', back: 'net-id-1' };
  const s = update(base, ['--network-add', 'name=front,alias=web'], { networkIds: ids });
  assert.deepEqual(
    s.task?.networks.map((n) => [n.target, n.aliases]),
    [
      ['net-id-1', []],
      ['net-id-2', ['web']],
    ],
  );
  assert.deepEqual(update(base, ['--network-rm', 'back'], { networkIds: ids }).task?.networks, []);
  assert.throws(() => update(base, ['--network-add', 'back'], { networkIds: ids }), /service is already attached to network back/);
});

test('resources: only the value given changes', () => {
  const limited = update(base, ['--limit-cpu', '1', '--limit-memory', '512m']);
  const s = update(limited, ['--limit-cpu', '2', '--reserve-memory', '128m']);
  assert.deepEqual(s.task?.resources?.limits, { nanoCpus: 2e9, memoryBytes: 512 * 1024 ** 2, generic: [], pids: 0 });
  assert.deepEqual(s.task?.resources?.reservations, { nanoCpus: 0, memoryBytes: 128 * 1024 ** 2, generic: [], pids: 0 });
});

test('restart, update and rollback configs start from the defaults when the service has none', () => {
  const s = update(base, ['--restart-max-attempts', '4', '--update-parallelism', '3', '--rollback-order', 'start-first']);
  assert.deepEqual(s.task?.restart, { ...DEFAULT_RESTART, maxAttempts: 4 });
  assert.deepEqual(s.update, { ...DEFAULT_UPDATE, parallelism: 3 });
  assert.deepEqual(s.rollback, { ...DEFAULT_UPDATE, order: 'START_FIRST' });
  // ...and from the current config when it has one.
  assert.deepEqual(update(s, ['--update-delay', '30s']).update, { ...DEFAULT_UPDATE, parallelism: 3, delayMs: 30_000 });
});

test('health: --health-* edit the current check, --no-healthcheck replaces it, and the two conflict', () => {
  const s = update(base, ['--health-interval', '3s']);
  assert.deepEqual(s.task?.container?.healthcheck, { test: ['CMD-SHELL', 'true'], intervalMs: 3000, timeoutMs: 0, retries: 0, startPeriodMs: 0 });
  const none = update(base, ['--no-healthcheck']);
  assert.deepEqual(none.task?.container?.healthcheck?.test, ['NONE']);
  assert.deepEqual(update(none, ['--health-cmd', 'curl x']).task?.container?.healthcheck?.test, ['CMD-SHELL', 'curl x']);
  assert.equal(update(none, ['--no-healthcheck=false']).task?.container?.healthcheck, null);
  refused(['--no-healthcheck', '--health-cmd', 'x'], '--no-healthcheck conflicts with --health-* options');
});

test('--read-only=false and --tty=false are changes; leaving them out is not', () => {
  assert.equal(update(base, []).task?.container?.readOnly, true);
  assert.equal(update(base, ['--read-only=false']).task?.container?.readOnly, false);
  assert.equal(update(base, ['-t']).task?.container?.tty, true);
});

test('--cap-add and --cap-drop move capabilities between the two lists', () => {
  const s = update(base, ['--cap-add', 'net_admin', '--cap-drop', 'mknod']);
  assert.deepEqual([s.task?.container?.capAdd, s.task?.container?.capDrop], [['CAP_NET_ADMIN'], ['CAP_MKNOD']]);
  const t = update(s, ['--cap-drop', 'NET_ADMIN']);
  assert.deepEqual([t.task?.container?.capAdd, t.task?.container?.capDrop], [[], ['CAP_MKNOD', 'CAP_NET_ADMIN']]);
});

test('--force bumps forceUpdate, so tasks are replaced though nothing else changed', () => {
  assert.equal(update(update(base, ['--force']), ['--force']).task?.forceUpdate, 2);
});

test('scalars: --hostname, --user, --workdir, --stop-signal, --stop-grace-period, --endpoint-mode, --log-opt', () => {
  const s = update(base, ['--hostname', 'h2', '-u', 'nobody', '-w', '/w', '--stop-signal', 'SIGQUIT', '--stop-grace-period', '30s', '--endpoint-mode', 'dnsrr', '--log-opt', 'max-file=2']);
  const c = s.task?.container;
  assert.deepEqual([c?.hostname, c?.user, c?.dir, c?.stopSignal, c?.stopGracePeriodMs, s.endpoint?.mode, c?.log], ['h2', 'nobody', '/w', 'SIGQUIT', 30_000, 'DNSRR', { maxSize: '', maxFile: 2 }]);
  assert.equal(update(s, ['--hostname', '']).task?.container?.hostname, '');
});

test('--rollback stands alone', () => {
  assert.deepEqual(update(base, ['--rollback', '-d']), base);
  refused(['--rollback', '--replicas', '3'], 'other flags may not be combined with --rollback (got --replicas)');
  refused(['--rollback', '--read-only=false'], 'other flags may not be combined with --rollback (got --read-only)');
  assert.deepEqual(givenUpdateFlags(parseFlags(['--rollback', '--env-add', 'A=1'], updateFlags).flags), ['env-add', 'rollback']);
});

test('checkUpdateFlags finds bad values with no current spec at hand (before anything is sent)', () => {
  const check = (argv: string[]) => checkUpdateFlags(parseFlags(argv, updateFlags).flags);
  assert.doesNotThrow(() => check(['--replicas', '3', '--max-concurrent', '2', '--network-add', 'x', '--publish-add', '80:80']));
  assert.throws(() => check(['--update-delay', 'soon']), /invalid argument "soon" for "--update-delay" flag/);
  assert.throws(() => check(['--limit-memory', 'lots']), /--limit-memory/);
});
