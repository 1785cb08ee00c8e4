// Services through the control API against a real store: create, inspect, update against the
// version read, rollback, remove, list with filters and task counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { copy } from '../../../manager/store/blank.js';
import { ServiceSpec, type Service } from '../../../proto/gen/objects.js';
import { createService, getService, listServices, removeService, serviceWarnings, updateService } from '../../../manager/controlapi/services.js';
import { clusterContext, node, port, rejects, serviceSpec, task, type TestContext } from './fixtures.js';

async function withService(name = 'web', replicas = 3): Promise<{ ctx: TestContext; service: Service }> {
  const ctx = await clusterContext();
  const service = await createService(ctx, { spec: serviceSpec(name, { replicas }) });
  return { ctx, service };
}

/** The spec as a client would send it back: read, copied, changed. */
function edited(s: Service, change: (spec: ServiceSpec) => void): ServiceSpec {
  const spec = copy(ServiceSpec, s.spec!);
  change(spec);
  return spec;
}

test('create stores the spec under a new id, with a store version and spec version 0', async () => {
  const { ctx, service } = await withService();
  assert.equal(service.id, 'id0001');
  assert.equal(service.spec?.annotations?.name, 'web');
  assert.equal(service.spec?.mode, 'replicated');
  assert.equal(service.spec?.replicated?.replicas, 3);
  assert.ok((service.meta?.version ?? 0) > 0);
  assert.equal(service.specVersion, 0);
  assert.equal(service.previousSpec, null);
  assert.deepEqual(ctx.store.get('services', service.id), service);
});

test('a spec without a mode gets Docker\'s default: replicated, one replica', async () => {
  const ctx = await clusterContext();
  const s = await createService(ctx, { spec: serviceSpec('web', { mode: 'none' }) });
  assert.equal(s.spec?.mode, 'replicated');
  assert.equal(s.spec?.replicated?.replicas, 1);
  // A mode named only by the oneof's discriminator counts as that mode.
  const g = await createService(ctx, { spec: { ...serviceSpec('agent', { mode: 'none' }), mode: 'global' } });
  assert.equal(g.spec?.mode, 'global');
  assert.deepEqual(g.spec?.global, {});
});

test('a second service with a taken name is refused', async () => {
  const { ctx } = await withService();
  await rejects(createService(ctx, { spec: serviceSpec('web') }), status.ALREADY_EXISTS, /service web already exists \(id0001\)/);
  await rejects(createService(ctx, {}), status.INVALID_ARGUMENT, /needs a service spec/);
});

test('get finds a service by id, name or unique id prefix', async () => {
  const { ctx, service } = await withService();
  await createService(ctx, { spec: serviceSpec('api') }); // id0002
  assert.equal(getService(ctx, service.id).id, service.id);
  assert.equal(getService(ctx, 'web').id, service.id);
  assert.equal(getService(ctx, 'id0002').spec?.annotations?.name, 'api');
  await rejects(() => getService(ctx, 'id000'), status.INVALID_ARGUMENT, /service id000 is ambiguous \(2 matches found\)/);
  await rejects(() => getService(ctx, 'db'), status.NOT_FOUND, /service db not found/);
  await rejects(() => getService(ctx, ''), status.INVALID_ARGUMENT, /a service id or name is required/);
});

test('update replaces the spec, keeps the previous one, and records the version read as spec version', async () => {
  const { ctx, service } = await withService();
  const spec = edited(service, (s) => {
    s.replicated!.replicas = 5;
    s.task!.container!.image = 'busybox:1.37';
  });
  const updated = await updateService(ctx, { service: 'web', version: service.meta!.version, spec, rollback: '' });
  assert.equal(updated.spec?.replicated?.replicas, 5);
  assert.equal(updated.spec?.task?.container?.image, 'busybox:1.37');
  assert.equal(updated.previousSpec?.replicated?.replicas, 3);
  assert.equal(updated.previousSpec?.task?.container?.image, 'busybox:1.36');
  assert.equal(updated.specVersion, service.meta!.version);
  assert.ok(updated.meta!.version > service.meta!.version);
  assert.equal(updated.meta!.createdAt, service.meta!.createdAt);
});

test('an update against a stale version is refused, and changes nothing', async () => {
  const { ctx, service } = await withService();
  const v1 = service.meta!.version;
  await updateService(ctx, { service: 'web', version: v1, spec: edited(service, (s) => (s.replicated!.replicas = 4)), rollback: '' });
  await rejects(
    updateService(ctx, { service: 'web', version: v1, spec: edited(service, (s) => (s.replicated!.replicas = 9)), rollback: '' }),
    status.FAILED_PRECONDITION,
    new RegExp(`service web was changed since it was read \\(update out of sequence: version ${v1} was read`),
  );
  assert.equal(getService(ctx, 'web').spec?.replicated?.replicas, 4);
  await rejects(updateService(ctx, { service: 'web', version: 0, spec: service.spec, rollback: '' }), status.INVALID_ARGUMENT, /needs the version of the service that was read/);
  await rejects(updateService(ctx, { service: 'web', version: v1, spec: null, rollback: '' }), status.INVALID_ARGUMENT, /needs the new service spec/);
  await rejects(updateService(ctx, { service: 'nope', version: v1, spec: service.spec, rollback: '' }), status.NOT_FOUND, /service nope not found/);
});

test('update --force: a bumped force counter is a new spec', async () => {
  const { ctx, service } = await withService();
  const updated = await updateService(ctx, { service: service.id, version: service.meta!.version, spec: edited(service, (s) => s.task!.forceUpdate++), rollback: '' });
  assert.equal(updated.spec?.task?.forceUpdate, 1);
  assert.equal(updated.previousSpec?.task?.forceUpdate, 0);
  assert.notEqual(updated.specVersion, service.specVersion);
});

test('update validates the new spec like create, and refuses a mode change or a rename', async () => {
  const { ctx, service } = await withService();
  const v = service.meta!.version;
  await rejects(updateService(ctx, { service: 'web', version: v, spec: edited(service, (s) => (s.task!.container!.image = '')), rollback: '' }), status.INVALID_ARGUMENT, /an image is required/);
  const global = edited(service, (s) => {
    s.replicated = null;
    s.global = {};
  });
  await rejects(updateService(ctx, { service: 'web', version: v, spec: global, rollback: '' }), status.INVALID_ARGUMENT, /changing the mode from replicated to global is not supported/);
  await rejects(
    updateService(ctx, { service: 'web', version: v, spec: edited(service, (s) => (s.annotations!.name = 'www')), rollback: '' }),
    status.INVALID_ARGUMENT,
    /renaming a service is not supported \(asked to rename it to www\)/,
  );
});

test('a service may keep its own published port across updates, but not take another service\'s', async () => {
  const ctx = await clusterContext();
  const web = await createService(ctx, { spec: serviceSpec('web', { ports: [port(80, 8080)] }) });
  await createService(ctx, { spec: serviceSpec('api', { ports: [port(80, 9090)] }) });
  const kept = await updateService(ctx, { service: 'web', version: web.meta!.version, spec: edited(web, (s) => (s.replicated!.replicas = 2)), rollback: '' });
  assert.equal(kept.spec?.endpoint?.ports[0]?.publishedPort, 8080);
  await rejects(
    updateService(ctx, { service: 'web', version: kept.meta!.version, spec: edited(kept, (s) => (s.endpoint!.ports = [port(80, 9090)])), rollback: '' }),
    status.ALREADY_EXISTS,
    /port 9090\/tcp is already in use by service "api"/,
  );
});

test('rollback swaps back to the previous spec and marks a rollback started', async () => {
  const { ctx, service } = await withService();
  await rejects(updateService(ctx, { service: 'web', version: service.meta!.version, spec: null, rollback: 'previous' }), status.FAILED_PRECONDITION, /service web does not have a previous spec/);
  const updated = await updateService(ctx, { service: 'web', version: service.meta!.version, spec: edited(service, (s) => (s.replicated!.replicas = 7)), rollback: '' });
  const rolled = await updateService(ctx, { service: 'web', version: updated.meta!.version, spec: null, rollback: 'previous' });
  assert.equal(rolled.spec?.replicated?.replicas, 3);
  assert.equal(rolled.previousSpec?.replicated?.replicas, 7);
  assert.equal(rolled.updateStatus?.state, 'ROLLBACK_STARTED');
  assert.equal(rolled.updateStatus?.startedAt, 5_000_000);
  assert.equal(rolled.updateStatus?.message, 'manually requested rollback');
  assert.equal(rolled.specVersion, updated.meta!.version);
  // A new update clears the rollback status.
  const again = await updateService(ctx, { service: 'web', version: rolled.meta!.version, spec: rolled.spec, rollback: '' });
  assert.equal(again.updateStatus, null);
  await rejects(updateService(ctx, { service: 'web', version: again.meta!.version, spec: null, rollback: 'latest' }), status.INVALID_ARGUMENT, /invalid rollback "latest"/);
});

test('rollback re-checks the previous spec: a port taken since is refused', async () => {
  const ctx = await clusterContext();
  const web = await createService(ctx, { spec: serviceSpec('web', { ports: [port(80, 8080)] }) });
  const moved = await updateService(ctx, { service: 'web', version: web.meta!.version, spec: edited(web, (s) => (s.endpoint!.ports = [port(80, 8081)])), rollback: '' });
  await createService(ctx, { spec: serviceSpec('api', { ports: [port(80, 8080)] }) });
  await rejects(updateService(ctx, { service: 'web', version: moved.meta!.version, spec: null, rollback: 'previous' }), status.ALREADY_EXISTS, /port 8080\/tcp is already in use by service "api"/);
});

test('a job runs again when its spec changes: the job iteration is bumped', async () => {
  const ctx = await clusterContext();
  const job = await createService(ctx, { spec: serviceSpec('migrate', { mode: 'replicatedJob' }) });
  assert.equal(job.jobIteration, 0);
  const updated = await updateService(ctx, { service: 'migrate', version: job.meta!.version, spec: job.spec, rollback: '' });
  assert.equal(updated.jobIteration, 1);
  const svc = await createService(ctx, { spec: serviceSpec('web') });
  const same = await updateService(ctx, { service: 'web', version: svc.meta!.version, spec: svc.spec, rollback: '' });
  assert.equal(same.jobIteration, 0, 'a service is not a job');
});

test('remove deletes the service and leaves its tasks to the orchestrator', async () => {
  const { ctx, service } = await withService();
  await ctx.store.update((tx) => tx.create('tasks', task('t1', service.id, 'web')));
  await removeService(ctx, 'web');
  assert.equal(ctx.store.get('services', service.id), undefined);
  assert.ok(ctx.store.get('tasks', 't1'), 'the task reaper stops and deletes tasks, not the control API');
  await rejects(removeService(ctx, 'web'), status.NOT_FOUND, /service web not found/);
});

test('list filters by id prefix, name prefix, label and mode; unknown filters are refused', async () => {
  const ctx = await clusterContext();
  const ids = ['aaa1', 'bbb2', 'ccc3', 'ddd4'];
  ctx.newId = () => ids.shift()!;
  await createService(ctx, { spec: serviceSpec('web', { labels: { tier: 'front' } }) });
  await createService(ctx, { spec: serviceSpec('web-admin', { labels: { tier: 'back' } }) });
  await createService(ctx, { spec: serviceSpec('agent', { mode: 'global', labels: { monitored: '' } }) });
  await createService(ctx, { spec: serviceSpec('backup', { mode: 'globalJob' }) });
  const names = (filters: Record<string, string>) => listServices(ctx, { filters }).services.map((s) => s.spec?.annotations?.name);
  assert.deepEqual(names({}), ['agent', 'backup', 'web', 'web-admin']);
  assert.deepEqual(names({ id: 'bb' }), ['web-admin']);
  assert.deepEqual(names({ name: 'web' }), ['web', 'web-admin']);
  assert.deepEqual(names({ label: 'tier' }), ['web', 'web-admin']);
  assert.deepEqual(names({ label: 'tier=back' }), ['web-admin']);
  assert.deepEqual(names({ label: 'monitored' }), ['agent']);
  assert.deepEqual(names({ mode: 'global' }), ['agent']);
  assert.deepEqual(names({ mode: 'global-job' }), ['backup']);
  assert.deepEqual(names({ mode: 'replicated', name: 'web-' }), ['web-admin']);
  await rejects(() => names({ colour: 'red' }), status.INVALID_ARGUMENT, /invalid filter 'colour'/);
  await rejects(() => names({ mode: 'sometimes' }), status.INVALID_ARGUMENT, /invalid filter 'mode=sometimes'/);
});

test('list reports running, desired and completed tasks as service ls shows them', async () => {
  const ctx = await clusterContext();
  const web = await createService(ctx, { spec: serviceSpec('web', { replicas: 3 }) });
  const agent = await createService(ctx, { spec: serviceSpec('agent', { mode: 'global' }) });
  const job = await createService(ctx, { spec: serviceSpec('job', { mode: 'replicatedJob' }) }); // 1 at a time, 3 completions
  await ctx.store.update((tx) => {
    tx.create('nodes', node('n1'));
    tx.create('nodes', node('n2', { state: 'DOWN' }));
    tx.create('tasks', task('w1', web.id, 'web', { slot: 1, nodeId: 'n1' }));
    tx.create('tasks', task('w2', web.id, 'web', { slot: 2, nodeId: 'n1', state: 'STARTING' }));
    tx.create('tasks', task('w3', web.id, 'web', { slot: 3, nodeId: 'n2' })); // its node is down: not counted
    tx.create('tasks', task('a1', agent.id, 'agent', { slot: 0, nodeId: 'n1' }));
    tx.create('tasks', task('a2', agent.id, 'agent', { slot: 0, nodeId: 'n2', desired: 'SHUTDOWN', state: 'SHUTDOWN' }));
    tx.create('tasks', task('j1', job.id, 'job', { slot: 1, nodeId: 'n1', state: 'COMPLETE' }));
    tx.create('tasks', task('j2', job.id, 'job', { slot: 2, nodeId: 'n1' }));
    tx.create('tasks', task('j0', job.id, 'job', { slot: 1, nodeId: 'n1', state: 'COMPLETE', jobIteration: 7 })); // another run
  });
  const { services, statuses } = listServices(ctx, { filters: {} });
  const byName = Object.fromEntries(services.map((s, i) => [s.spec?.annotations?.name, statuses[i]]));
  assert.deepEqual(byName.web, { serviceId: web.id, runningTasks: 1, desiredTasks: 3, completedTasks: 0 });
  assert.deepEqual(byName.agent, { serviceId: agent.id, runningTasks: 1, desiredTasks: 1, completedTasks: 0 });
  assert.deepEqual(byName.job, { serviceId: job.id, runningTasks: 1, desiredTasks: 1, completedTasks: 1 });
});

test('a port published in ingress mode is accepted with a warning naming it and the host-mode alternative; host mode warns nothing', () => {
  const published = (publishMode: 'INGRESS' | 'HOST', publishedPort: number) => ({ name: '', protocol: 'TCP' as const, targetPort: 80, publishedPort, publishMode });
  const withPorts = (ports: ReturnType<typeof published>[]): ServiceSpec => ({ endpoint: { mode: 'VIP', ports } });
  const [w, ...rest] = serviceWarnings(withPorts([published('INGRESS', 8080), published('HOST', 8081)]));
  assert.deepEqual(rest, []);
  assert.match(w!, /port 8080:80\/tcp is published in ingress mode, but shoal has no routing mesh yet/);
  assert.match(w!, /--publish published=8080,target=80,mode=host/);
  assert.deepEqual(serviceWarnings(withPorts([published('HOST', 0)])), []);
  assert.deepEqual(serviceWarnings(null), []);
});
