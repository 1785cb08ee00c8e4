// Nodes through the control API: list with filters, inspect, update (availability, labels, role)
// against the version read, and removal with swarmkit's safeguards.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { copy } from '../../../manager/store/blank.js';
import { NodeSpec, type Node } from '../../../proto/gen/objects.js';
import { getNode, listNodes, removeNode, updateNode } from '../../../manager/controlapi/nodes.js';
import { newContext, node, rejects, type NodeOptions, type TestContext } from './fixtures.js';

async function cluster(nodes: [string, NodeOptions][]): Promise<TestContext> {
  const ctx = newContext();
  await ctx.store.update((tx) => {
    for (const [id, o] of nodes) tx.create('nodes', node(id, o));
  });
  ctx.raft.members = nodes.map(([, o]) => o.raftId ?? 0).filter((id) => id > 0);
  return ctx;
}

const threeManagers = (): Promise<TestContext> =>
  cluster([
    ['m1', { hostname: 'alpha', role: 'MANAGER', raftId: 11 }],
    ['m2', { hostname: 'beta', role: 'MANAGER', raftId: 12 }],
    ['m3', { hostname: 'gamma', role: 'MANAGER', raftId: 13 }],
    ['w1', { hostname: 'delta', labels: { zone: 'a' }, engineLabels: { disk: 'ssd' } }],
    ['w2', { hostname: 'epsilon', state: 'DOWN' }],
  ]);

function spec(n: Node, change: (s: NodeSpec) => void): NodeSpec {
  const s = copy(NodeSpec, n.spec!);
  change(s);
  return s;
}

const update = (ctx: TestContext, ref: string, change: (s: NodeSpec) => void, version?: number) => {
  const n = getNode(ctx, ref);
  return updateNode(ctx, { node: ref, version: version ?? n.meta!.version, spec: spec(n, change) });
};

test('list filters by id, name, role, engine and node labels, membership; the leader is marked', async () => {
  const ctx = await threeManagers();
  ctx.raft.leaderId = 12;
  const hosts = (filters: Record<string, string>) => listNodes(ctx, { filters }).map((n) => n.description?.hostname);
  assert.deepEqual(hosts({}), ['alpha', 'beta', 'delta', 'epsilon', 'gamma']);
  assert.deepEqual(hosts({ role: 'manager' }), ['alpha', 'beta', 'gamma']);
  assert.deepEqual(hosts({ role: 'worker' }), ['delta', 'epsilon']);
  assert.deepEqual(hosts({ name: 'de' }), ['delta']);
  assert.deepEqual(hosts({ name: 'lt' }), []);
  assert.deepEqual(hosts({ id: 'w' }), ['delta', 'epsilon']);
  assert.deepEqual(hosts({ 'node.label': 'zone=a' }), ['delta']);
  assert.deepEqual(hosts({ label: 'disk' }), ['delta']);
  assert.deepEqual(hosts({ membership: 'pending' }), []);
  assert.deepEqual(
    listNodes(ctx, { filters: { role: 'manager' } }).map((n) => n.managerStatus?.leader),
    [false, true, false],
  );
  assert.equal(getNode(ctx, 'beta').managerStatus?.leader, true);
  await rejects(() => hosts({ role: 'boss' }), status.INVALID_ARGUMENT, /invalid filter 'role=boss': expected manager or worker/);
  await rejects(() => hosts({ colour: 'x' }), status.INVALID_ARGUMENT, /invalid filter 'colour'/);
});

test('get finds a node by id, hostname or unique id prefix', async () => {
  const ctx = await threeManagers();
  assert.equal(getNode(ctx, 'w1').id, 'w1');
  assert.equal(getNode(ctx, 'gamma').id, 'm3');
  await rejects(() => getNode(ctx, 'm'), status.INVALID_ARGUMENT, /node m is ambiguous \(3 matches found\)/);
  await rejects(() => getNode(ctx, 'zeta'), status.NOT_FOUND, /node zeta not found/);
});

test('update sets availability and labels against the version read', async () => {
  const ctx = await threeManagers();
  const before = getNode(ctx, 'delta');
  const drained = await update(ctx, 'delta', (s) => {
    s.availability = 'DRAIN';
    s.annotations!.labels = { zone: 'b', ssd: 'true' };
  });
  assert.equal(drained.spec?.availability, 'DRAIN');
  assert.deepEqual(drained.spec?.annotations?.labels, { zone: 'b', ssd: 'true' });
  assert.ok(drained.meta!.version > before.meta!.version);
  await rejects(
    update(ctx, 'delta', (s) => (s.availability = 'ACTIVE'), before.meta!.version),
    status.FAILED_PRECONDITION,
    new RegExp(`node delta was changed since it was read \\(update out of sequence: version ${before.meta!.version} was read`),
  );
  assert.equal(getNode(ctx, 'delta').spec?.availability, 'DRAIN');
  await rejects(update(ctx, 'delta', (s) => (s.availability = 'SLEEP' as never)), status.INVALID_ARGUMENT, /invalid availability "SLEEP": expected active, pause or drain/);
  await rejects(update(ctx, 'delta', (s) => (s.desiredRole = 'BOSS' as never)), status.INVALID_ARGUMENT, /invalid role "BOSS"/);
  await rejects(update(ctx, 'delta', (s) => (s.annotations!.labels = { '': 'x' })), status.INVALID_ARGUMENT, /a label needs a name/);
  await rejects(updateNode(ctx, { node: 'delta', version: 0, spec: before.spec }), status.INVALID_ARGUMENT, /needs the version of the node that was read/);
  await rejects(updateNode(ctx, { node: 'delta', version: 1, spec: null }), status.INVALID_ARGUMENT, /needs the new node spec/);
});

test('promote sets the desired role; demote keeps a manager and the Raft quorum', async () => {
  const ctx = await threeManagers();
  const promoted = await update(ctx, 'delta', (s) => (s.desiredRole = 'MANAGER'));
  assert.equal(promoted.spec?.desiredRole, 'MANAGER');
  // Two of the three other voters unreachable: removing gamma leaves {alpha, beta} with beta down.
  ctx.raft.unreachable.add(12);
  await rejects(update(ctx, 'gamma', (s) => (s.desiredRole = 'WORKER')), status.FAILED_PRECONDITION, /can't demote node gamma: removing it from the raft would lose the quorum \(1 of the 2 other managers are reachable\)/);
  ctx.raft.unreachable.clear();
  const demoted = await update(ctx, 'gamma', (s) => (s.desiredRole = 'WORKER'));
  assert.equal(demoted.spec?.desiredRole, 'WORKER');
});

test('the last manager cannot be demoted', async () => {
  const ctx = await cluster([
    ['m1', { hostname: 'alpha', role: 'MANAGER', raftId: 11 }],
    ['w1', { hostname: 'delta' }],
  ]);
  await rejects(update(ctx, 'alpha', (s) => (s.desiredRole = 'WORKER')), status.FAILED_PRECONDITION, /attempting to demote the last manager of the swarm \(node alpha\)/);
  assert.equal(getNode(ctx, 'alpha').spec?.desiredRole, 'MANAGER');
});

test('remove: a node that is up needs force; a down one goes; the node record is deleted', async () => {
  const ctx = await threeManagers();
  await rejects(removeNode(ctx, { node: 'delta', force: false }), status.FAILED_PRECONDITION, /node delta is not down and can't be removed/);
  await removeNode(ctx, { node: 'delta', force: true });
  assert.equal(ctx.store.get('nodes', 'w1'), undefined);
  await removeNode(ctx, { node: 'epsilon', force: false });
  assert.equal(ctx.store.get('nodes', 'w2'), undefined);
  await rejects(removeNode(ctx, { node: 'epsilon', force: false }), status.NOT_FOUND, /node epsilon not found/);
});

test('remove: a manager must be demoted and out of Raft first, even with force', async () => {
  const ctx = await threeManagers();
  await rejects(removeNode(ctx, { node: 'gamma', force: true }), status.FAILED_PRECONDITION, /node gamma is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal/);
  await update(ctx, 'gamma', (s) => (s.desiredRole = 'WORKER'));
  await rejects(removeNode(ctx, { node: 'gamma', force: true }), status.FAILED_PRECONDITION, /node gamma was demoted but is still a member of the raft cluster/);
  ctx.raft.members = [11, 12];
  await removeNode(ctx, { node: 'gamma', force: true });
  assert.equal(ctx.store.get('nodes', 'm3'), undefined);
});
