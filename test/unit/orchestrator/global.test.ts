import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness } from './harness.js';

const perNode = (h: Harness, svc: string) =>
  h
    .live(svc)
    .map((t) => t.nodeId)
    .sort();

test('a global service runs one task on every ready node, with the node set', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addNode('n3', { state: 'DOWN' });
  await h.addService('agent', { mode: 'global' });
  assert.deepEqual(perNode(h, 'agent'), ['n1', 'n2']);
  for (const t of h.live('agent')) {
    assert.equal(t.slot, 0);
    assert.equal(t.annotations?.name, `agent.${t.nodeId}`);
    assert.equal(t.status?.state, 'PENDING');
  }
});

test('global tasks follow nodes joining, draining, pausing, going down and leaving', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('agent', { mode: 'global' });
  await h.cluster();
  await h.addNode('n2');
  assert.deepEqual(perNode(h, 'agent'), ['n1', 'n2'], 'a joining node gets a task');

  const onN2 = h.live('agent').find((t) => t.nodeId === 'n2')!;
  await h.setAvailability('n2', 'DRAIN');
  assert.deepEqual(perNode(h, 'agent'), ['n1'], 'drain shuts the task down');
  assert.equal(h.task(onN2.id).desiredState, 'SHUTDOWN');
  await h.cluster();
  await h.setAvailability('n2', 'ACTIVE');
  assert.deepEqual(perNode(h, 'agent'), ['n1', 'n2'], 'back to active: a new task');

  await h.setAvailability('n2', 'PAUSE');
  assert.deepEqual(perNode(h, 'agent'), ['n1', 'n2'], 'a paused node keeps its task');

  await h.setNodeState('n1', 'DOWN');
  assert.deepEqual(perNode(h, 'agent'), ['n2'], 'a down node loses its task');
  await h.setNodeState('n1', 'READY');
  assert.deepEqual(perNode(h, 'agent'), ['n1', 'n2'], 'and gets a new one when it is back');

  await h.cluster();
  await h.removeNode('n1');
  assert.deepEqual(perNode(h, 'agent'), ['n2']);
  assert.ok(!h.tasks('agent').some((t) => t.nodeId === 'n1'), 'tasks of a node that left are deleted');
});

test('a paused node gets no new global task', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1', { availability: 'PAUSE' });
  await h.addNode('n2');
  await h.addService('agent', { mode: 'global' });
  assert.deepEqual(perNode(h, 'agent'), ['n2']);
});

test('global placement constraints follow node label changes', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1', { labels: { zone: 'east' } });
  await h.addNode('n2', { labels: { zone: 'west' } });
  await h.addNode('n3');
  await h.addService('east', { mode: 'global', constraints: ['node.labels.zone==EAST'] });
  await h.addService('notwest', { mode: 'global', constraints: ['node.labels.zone!=west', 'node.role==worker'] });
  assert.deepEqual(perNode(h, 'east'), ['n1']);
  assert.deepEqual(perNode(h, 'notwest'), ['n1', 'n3']);
  await h.cluster();

  await h.updateNode('n2', (n) => (n.spec!.annotations!.labels = { zone: 'east' }));
  await h.updateNode('n1', (n) => (n.spec!.annotations!.labels = {}));
  assert.deepEqual(perNode(h, 'east'), ['n2']);
  assert.deepEqual(perNode(h, 'notwest'), ['n1', 'n2', 'n3']);
});

test('a global task that fails is restarted on the same node, but not on a paused node', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 });
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('agent', { mode: 'global' });
  await h.cluster();
  const [a, b] = h.live('agent');
  await h.report(a!.id, 'FAILED');
  const again = h.live('agent').find((t) => t.nodeId === a!.nodeId)!;
  assert.notEqual(again.id, a!.id);
  assert.equal(again.desiredState, 'RUNNING');

  await h.setAvailability(b!.nodeId, 'PAUSE');
  await h.report(b!.id, 'FAILED');
  assert.deepEqual(perNode(h, 'agent'), [a!.nodeId]);
});

test('a service whose constraint does not parse runs nowhere', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('bad', { mode: 'global', constraints: ['node.labels.zone'] });
  assert.deepEqual(h.tasks('bad'), []);
});

test('a node removed while its global task was told to shut down takes the task with it', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('agent', { mode: 'global' });
  await h.cluster();
  // The node leaves (its task told to shut down), then dies before reporting it stopped, then is removed.
  const onN2 = h.live('agent').find((t) => t.nodeId === 'n2')!;
  await h.setNodeState('n2', 'DOWN');
  await h.setAvailability('n2', 'DRAIN');
  assert.equal(h.task(onN2.id).desiredState, 'SHUTDOWN');
  assert.equal(h.task(onN2.id).status?.state, 'RUNNING', 'nobody reported it stopped');
  await h.removeNode('n2');
  await h.settle();
  assert.ok(!h.tasks('agent').some((t) => t.nodeId === 'n2'), 'no task of the removed node is left');
});
