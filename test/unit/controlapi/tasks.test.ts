// `service ps` / `node ps` filters over the task table, and task lookup by Docker's task names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { listTasks } from '../../../manager/controlapi/tasks.js';
import { resolve } from '../../../manager/controlapi/resolve.js';
import { createService } from '../../../manager/controlapi/services.js';
import { clusterContext, node, rejects, serviceSpec, task, type TestContext } from './fixtures.js';

async function withTasks(): Promise<TestContext> {
  const ctx = await clusterContext();
  const ids = ['web111', 'api222'];
  ctx.newId = () => ids.shift()!;
  await createService(ctx, { spec: serviceSpec('web', { replicas: 2 }) });
  await createService(ctx, { spec: serviceSpec('api') });
  await ctx.store.update((tx) => {
    tx.create('nodes', node('node-a', { hostname: 'alpha' }));
    tx.create('nodes', node('node-b', { hostname: 'beta' }));
    // The first task of slot 1, which failed, on node-a; its replacement runs on node-b.
    tx.create('tasks', task('a-old', 'web111', 'web', { slot: 1, nodeId: 'node-a', state: 'FAILED', desired: 'SHUTDOWN' }));
  });
  await ctx.store.update((tx) => {
    tx.create('tasks', task('t1', 'web111', 'web', { slot: 1, nodeId: 'node-b', labels: { canary: 'yes' } }));
    tx.create('tasks', task('t2', 'web111', 'web', { slot: 2, nodeId: 'node-a' }));
    tx.create('tasks', task('t3', 'api222', 'api', { slot: 1, state: 'PENDING' }));
  });
  return ctx;
}

const ids = (ctx: TestContext, filters: Record<string, string>) => listTasks(ctx, { filters }).tasks.map((t) => t.id);

test('all tasks, ordered by service, slot, newest first, with the names of their nodes', async () => {
  const ctx = await withTasks();
  const res = listTasks(ctx, { filters: {} });
  assert.deepEqual(
    res.tasks.map((t) => t.id),
    ['t3', 't1', 'a-old', 't2'],
  );
  assert.deepEqual(res.nodeNames, { 'node-a': 'alpha', 'node-b': 'beta' });
});

test('filters: service and node by name, id or prefix; desired state; name; id; label', async () => {
  const ctx = await withTasks();
  assert.deepEqual(ids(ctx, { service: 'web' }), ['t1', 'a-old', 't2']);
  assert.deepEqual(ids(ctx, { service: 'api2' }), ['t3']);
  assert.deepEqual(ids(ctx, { node: 'alpha' }), ['a-old', 't2']);
  assert.deepEqual(ids(ctx, { node: 'node-b' }), ['t1']);
  assert.deepEqual(ids(ctx, { service: 'web', 'desired-state': 'running' }), ['t1', 't2']);
  assert.deepEqual(ids(ctx, { 'desired-state': 'shutdown' }), ['a-old']);
  assert.deepEqual(ids(ctx, { name: 'web.1' }), ['t1', 'a-old']);
  assert.deepEqual(ids(ctx, { id: 't' }), ['t3', 't1', 't2']);
  assert.deepEqual(ids(ctx, { label: 'canary=yes' }), ['t1']);
  assert.deepEqual(ids(ctx, { service: 'web', node: 'alpha', 'desired-state': 'running' }), ['t2']);
});

test('a filter naming a service or node that does not exist is an error; so is an unknown filter', async () => {
  const ctx = await withTasks();
  await rejects(() => ids(ctx, { service: 'db' }), status.NOT_FOUND, /service db not found/);
  await rejects(() => ids(ctx, { node: 'gamma' }), status.NOT_FOUND, /node gamma not found/);
  await rejects(() => ids(ctx, { 'desired-state': 'dancing' }), status.INVALID_ARGUMENT, /invalid filter 'desired-state=dancing': expected one of new, pending/);
  await rejects(() => ids(ctx, { 'up-to-date': 'true' }), status.INVALID_ARGUMENT, /invalid filter 'up-to-date'/);
});

test('a task is found by id, unique id prefix, or its full name service.slot.id', async () => {
  const ctx = await withTasks();
  assert.equal(resolve(ctx.store, 'tasks', 't2').id, 't2');
  assert.equal(resolve(ctx.store, 'tasks', 'a-').id, 'a-old');
  assert.equal(resolve(ctx.store, 'tasks', 'web.1.t1').id, 't1');
  await rejects(() => resolve(ctx.store, 'tasks', 't'), status.INVALID_ARGUMENT, /task t is ambiguous \(3 matches found\)/);
  await rejects(() => resolve(ctx.store, 'tasks', 'web.1'), status.NOT_FOUND, /task web.1 not found/);
});
