// Every rule a service spec is checked against before it is stored, one case each: the spec that
// breaks it, the status code, and the bad value named in the message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { blank } from '../../../manager/store/blank.js';
import {
  GenericResource,
  HealthConfig,
  Mount,
  Placement,
  PlacementPreference,
  ResourceRequirements,
  Resources,
  RestartPolicy,
  UpdateConfig,
  type ServiceSpec,
} from '../../../proto/gen/objects.js';
import { createService } from '../../../manager/controlapi/services.js';
import { createNetwork } from '../../../manager/controlapi/networks.js';
import { clusterContext, networkSpec, newContext, port, rejects, serviceSpec } from './fixtures.js';

const MIB = 1024 * 1024;

type Case = [what: string, change: (s: ServiceSpec) => void, code: status, message: RegExp];

const mount = (fields: Partial<Mount>) => blank(Mount, { type: 'VOLUME', target: '/data', ...fields });
const resources = (limits: Partial<Resources> | null, reservations: Partial<Resources> | null) =>
  blank(ResourceRequirements, { limits: limits ? blank(Resources, limits) : null, reservations: reservations ? blank(Resources, reservations) : null });

const INVALID: Case[] = [
  ['an empty name', (s) => (s.annotations!.name = ''), status.INVALID_ARGUMENT, /needs a name/],
  ['a name of 64 characters', (s) => (s.annotations!.name = 'a'.repeat(64)), status.INVALID_ARGUMENT, /it has 64 characters, at most 63/],
  ['a name with a bad character', (s) => (s.annotations!.name = 'web!'), status.INVALID_ARGUMENT, /invalid service name "web!"/],
  ['a name starting with -', (s) => (s.annotations!.name = '-web'), status.INVALID_ARGUMENT, /invalid service name "-web"/],
  ['a name ending with -', (s) => (s.annotations!.name = 'web-'), status.INVALID_ARGUMENT, /invalid service name "web-"/],
  ['a name with a dot', (s) => (s.annotations!.name = 'web.1'), status.INVALID_ARGUMENT, /invalid service name "web.1"/],
  ['two modes', (s) => (s.global = {}), status.INVALID_ARGUMENT, /one mode, but replicated and global were given/],
  ['no container', (s) => (s.task!.container = null), status.INVALID_ARGUMENT, /service web: the task has no container spec/],
  ['no image', (s) => (s.task!.container!.image = ''), status.INVALID_ARGUMENT, /service web: an image is required/],
  ['an image with a space', (s) => (s.task!.container!.image = 'busy box'), status.INVALID_ARGUMENT, /invalid image reference "busy box"/],
  ['an env entry without a name', (s) => (s.task!.container!.env = ['=x']), status.INVALID_ARGUMENT, /invalid environment variable "=x"/],
  ['a negative stop grace period', (s) => (s.task!.container!.stopGracePeriodMs = -1), status.INVALID_ARGUMENT, /stop grace period cannot be negative \(-1ms\)/],
  ['an unknown restart condition', (s) => (s.task!.restart = blank(RestartPolicy, { condition: 'SOMETIMES' as never })), status.INVALID_ARGUMENT, /invalid restart condition "SOMETIMES": expected any, on-failure, none/],
  ['a negative restart delay', (s) => (s.task!.restart = blank(RestartPolicy, { condition: 'ON_FAILURE', delayMs: -5 })), status.INVALID_ARGUMENT, /restart delay cannot be negative \(-5ms\)/],
  ['a negative restart window', (s) => (s.task!.restart = blank(RestartPolicy, { windowMs: -5 })), status.INVALID_ARGUMENT, /restart window cannot be negative/],
  ['a constraint without operator', (s) => (s.task!.placement = blank(Placement, { constraints: ['node.role~manager'] })), status.INVALID_ARGUMENT, /invalid constraint "node.role~manager"/],
  ['a constraint with a bad key', (s) => (s.task!.placement = blank(Placement, { constraints: ['!x==y'] })), status.INVALID_ARGUMENT, /key '!x' is invalid/],
  [
    'a spread preference over a non-label',
    (s) => (s.task!.placement = blank(Placement, { preferences: [blank(PlacementPreference, { spreadDescriptor: 'node.id' })] })),
    status.INVALID_ARGUMENT,
    /invalid placement preference spread=node.id/,
  ],
  ['a memory reservation above the limit', (s) => (s.task!.resources = resources({ memoryBytes: 64 * MIB }, { memoryBytes: 128 * MIB })), status.INVALID_ARGUMENT, /memory reservation 128MiB is more than the memory limit 64MiB/],
  ['a cpu reservation above the limit', (s) => (s.task!.resources = resources({ nanoCpus: 5e8 }, { nanoCpus: 1e9 })), status.INVALID_ARGUMENT, /cpu reservation 1 is more than the cpu limit 0.5/],
  ['a memory limit under 4MiB', (s) => (s.task!.resources = resources({ memoryBytes: MIB }, null)), status.INVALID_ARGUMENT, /invalid memory limit 1048576 bytes: it must be at least 4MiB/],
  ['a cpu limit under 0.001', (s) => (s.task!.resources = resources({ nanoCpus: 10 }, null)), status.INVALID_ARGUMENT, /invalid cpu limit 1e-8/],
  ['a negative pids limit', (s) => (s.task!.resources = resources({ pids: -1 }, null)), status.INVALID_ARGUMENT, /invalid pids limit -1/],
  ['a generic resource as a limit', (s) => (s.task!.resources = resources({ generic: [blank(GenericResource, { kind: 'gpu', value: 1 })] }, null)), status.INVALID_ARGUMENT, /generic resource "gpu" can be reserved, not limited/],
  ['a generic reservation of 0', (s) => (s.task!.resources = resources(null, { generic: [blank(GenericResource, { kind: 'gpu', value: 0 })] })), status.INVALID_ARGUMENT, /invalid generic resource gpu=0/],
  ['an unknown mount type', (s) => (s.task!.container!.mounts = [mount({ type: 'NFS' as never })]), status.INVALID_ARGUMENT, /invalid mount type "NFS": expected bind, volume, tmpfs/],
  ['a mount without target', (s) => (s.task!.container!.mounts = [mount({ target: '' })]), status.INVALID_ARGUMENT, /a volume mount needs a target/],
  ['a relative mount target', (s) => (s.task!.container!.mounts = [mount({ target: 'data' })]), status.INVALID_ARGUMENT, /invalid mount target "data": it must be an absolute path/],
  ['a mount over /', (s) => (s.task!.container!.mounts = [mount({ target: '/' })]), status.INVALID_ARGUMENT, /invalid mount target "\/"/],
  ['two mounts at one target', (s) => (s.task!.container!.mounts = [mount({}), mount({ type: 'TMPFS' })]), status.INVALID_ARGUMENT, /duplicate mount point \/data/],
  ['a bind mount without source', (s) => (s.task!.container!.mounts = [mount({ type: 'BIND' })]), status.INVALID_ARGUMENT, /bind mount at \/data needs a source/],
  ['a relative bind source', (s) => (s.task!.container!.mounts = [mount({ type: 'BIND', source: 'srv' })]), status.INVALID_ARGUMENT, /invalid bind mount source "srv"/],
  ['a tmpfs mount with a source', (s) => (s.task!.container!.mounts = [mount({ type: 'TMPFS', source: 'x' })]), status.INVALID_ARGUMENT, /tmpfs mount at \/data cannot have a source \(got "x"\)/],
  ['a bad volume name', (s) => (s.task!.container!.mounts = [mount({ source: 'a/b' })]), status.INVALID_ARGUMENT, /invalid volume name "a\/b"/],
  ['a tmpfs size on a volume', (s) => (s.task!.container!.mounts = [mount({ tmpfsSizeBytes: 10 })]), status.INVALID_ARGUMENT, /tmpfs size was given for the volume mount/],
  ['an unknown healthcheck test', (s) => (s.task!.container!.healthcheck = blank(HealthConfig, { test: ['RUN', 'true'] })), status.INVALID_ARGUMENT, /invalid healthcheck test \["RUN","true"\]/],
  ['a healthcheck CMD without command', (s) => (s.task!.container!.healthcheck = blank(HealthConfig, { test: ['CMD'] })), status.INVALID_ARGUMENT, /healthcheck CMD has no command/],
  ['a negative healthcheck interval', (s) => (s.task!.container!.healthcheck = blank(HealthConfig, { test: ['NONE'], intervalMs: -1 })), status.INVALID_ARGUMENT, /healthcheck interval cannot be negative/],
  ['negative healthcheck retries', (s) => (s.task!.container!.healthcheck = blank(HealthConfig, { retries: -2 })), status.INVALID_ARGUMENT, /healthcheck retries cannot be negative \(-2\)/],
  ['an update max failure ratio above 1', (s) => (s.update = blank(UpdateConfig, { maxFailureRatio: 1.5 })), status.INVALID_ARGUMENT, /invalid update max failure ratio 1.5/],
  ['a negative update delay', (s) => (s.update = blank(UpdateConfig, { delayMs: -1 })), status.INVALID_ARGUMENT, /update delay cannot be negative/],
  ['a negative rollback monitor', (s) => (s.rollback = blank(UpdateConfig, { monitorMs: -1 })), status.INVALID_ARGUMENT, /rollback monitor period cannot be negative/],
  ['a rollback that rolls back', (s) => (s.rollback = blank(UpdateConfig, { failureAction: 'ROLLBACK' })), status.INVALID_ARGUMENT, /rollback failure action cannot be rollback/],
  ['an unknown update order', (s) => (s.update = blank(UpdateConfig, { order: 'RANDOM' as never })), status.INVALID_ARGUMENT, /invalid update order "RANDOM"/],
  ['an unknown port protocol', (s) => (s.endpoint!.ports = [{ ...port(80, 8080), protocol: 'ICMP' as never }]), status.INVALID_ARGUMENT, /invalid port protocol "ICMP": expected tcp, udp, sctp/],
  ['an unknown publish mode', (s) => (s.endpoint!.ports = [{ ...port(80, 8080), publishMode: 'EVERYWHERE' as never }]), status.INVALID_ARGUMENT, /invalid publish mode "EVERYWHERE": expected ingress, host/],
  ['a target port of 0', (s) => (s.endpoint!.ports = [port(0, 8080)]), status.INVALID_ARGUMENT, /invalid target port of service web 0/],
  ['a published port above 65535', (s) => (s.endpoint!.ports = [port(80, 70000)]), status.INVALID_ARGUMENT, /invalid published port of service web 70000/],
  ['one host port twice', (s) => (s.endpoint!.ports = [port(80, 8080, 'HOST'), port(81, 8080, 'HOST')]), status.INVALID_ARGUMENT, /published port 8080\/tcp is given twice/],
  ['one ingress port twice', (s) => (s.endpoint!.ports = [port(80, 8080), port(81, 8080)]), status.INVALID_ARGUMENT, /published port 8080\/tcp is given twice/],
  ['an ingress port in dnsrr mode', (s) => ((s.endpoint!.mode = 'DNSRR'), (s.endpoint!.ports = [port(80, 8080)])), status.INVALID_ARGUMENT, /need endpoint mode vip, not dnsrr/],
];

for (const [what, change, code, message] of INVALID) {
  test(`service create refuses ${what}`, async () => {
    const ctx = await clusterContext();
    const spec = serviceSpec('web');
    change(spec);
    await rejects(createService(ctx, { spec }), code, message);
    assert.equal(ctx.store.all('services').length, 0, 'nothing was stored');
  });
}

test('names swarmkit accepts: 63 characters, inner dashes and underscores', async () => {
  const ctx = await clusterContext();
  for (const name of ['a'.repeat(63), 'my-web', 'stack_web', 'W3b']) await createService(ctx, { spec: serviceSpec(name) });
  assert.equal(ctx.store.all('services').length, 4);
});

test('the same port on different protocols, and host ports in dnsrr mode, are fine', async () => {
  const ctx = await clusterContext();
  const spec = serviceSpec('dns', { ports: [port(53, 53, 'HOST', 'UDP'), port(53, 53, 'HOST', 'TCP')] });
  spec.endpoint!.mode = 'DNSRR';
  const s = await createService(ctx, { spec });
  assert.equal(s.spec?.endpoint?.ports.length, 2);
});

test('an ingress port another service publishes is refused, naming that service', async () => {
  const ctx = await clusterContext();
  const first = await createService(ctx, { spec: serviceSpec('web', { ports: [port(80, 8080)] }) });
  await rejects(createService(ctx, { spec: serviceSpec('api', { ports: [port(81, 8080)] }) }), status.ALREADY_EXISTS, new RegExp(`port 8080/tcp is already in use by service "web" \\(${first.id}\\)`));
  // The same port number as a host port, or on udp, does not clash with the routing mesh's.
  await createService(ctx, { spec: serviceSpec('api', { ports: [port(81, 8080, 'HOST'), port(82, 8080, 'INGRESS', 'UDP')] }) });
});

test('publishing through the routing mesh needs an ingress network; host mode does not', async () => {
  const ctx = newContext();
  await rejects(createService(ctx, { spec: serviceSpec('web', { ports: [port(80, 8080)] }) }), status.FAILED_PRECONDITION, /no ingress network/);
  await createService(ctx, { spec: serviceSpec('web', { ports: [port(80, 8080, 'HOST')] }) });
});

test('networks are referenced by name, id or unique id prefix and stored as ids', async () => {
  const ctx = await clusterContext();
  const ids = ['f1f1f1f1', 'b2b2b2b2', 's1', 's2'];
  ctx.newId = () => ids.shift()!;
  const front = await createNetwork(ctx, { spec: networkSpec('front') });
  const back = await createNetwork(ctx, { spec: networkSpec('back') });
  const s = await createService(ctx, { spec: serviceSpec('web', { networks: ['front', 'b2b'] }) });
  assert.deepEqual(
    s.spec?.task?.networks.map((n) => n.target),
    [front.id, back.id],
  );
  // The ids read back resolve to themselves, so an update can send the spec it read.
  const again = await createService(ctx, { spec: serviceSpec('api', { networks: [front.id] }) });
  assert.deepEqual(
    again.spec?.task?.networks.map((n) => n.target),
    [front.id],
  );
});

test('network attachments: unknown, ambiguous, ingress, twice, and static addresses outside the subnet', async () => {
  const ctx = await clusterContext();
  await createNetwork(ctx, { spec: networkSpec('front', { subnet: '10.20.0.0/24' }) });
  await createNetwork(ctx, { spec: networkSpec('back') });
  await rejects(createService(ctx, { spec: serviceSpec('web', { networks: ['nowhere'] }) }), status.NOT_FOUND, /service web: network nowhere not found/);
  // Test ids are id0001, id0002, ...: "id" is a prefix of both networks.
  await rejects(createService(ctx, { spec: serviceSpec('web', { networks: ['id'] }) }), status.INVALID_ARGUMENT, /network id is ambiguous \(2 matches found\)/);
  await rejects(createService(ctx, { spec: serviceSpec('web', { networks: ['ingress'] }) }), status.INVALID_ARGUMENT, /cannot be explicitly attached to the ingress network "ingress"/);
  await rejects(createService(ctx, { spec: serviceSpec('web', { networks: ['front', 'front'] }) }), status.INVALID_ARGUMENT, /network front \(id0001\) is attached twice/);
  const spec = serviceSpec('web', { networks: ['front'] });
  spec.task!.networks[0]!.addresses = ['10.30.0.5'];
  await rejects(createService(ctx, { spec }), status.INVALID_ARGUMENT, /address 10.30.0.5 is not inside the subnets of network front \(id0001\) \(10.20.0.0\/24\)/);
  spec.task!.networks[0]!.addresses = ['10.20.0.500'];
  await rejects(createService(ctx, { spec }), status.INVALID_ARGUMENT, /invalid address for network front \(id0001\) of service web "10.20.0.500"/);
  spec.task!.networks[0]!.addresses = ['10.20.0.5'];
  await createService(ctx, { spec });
});
