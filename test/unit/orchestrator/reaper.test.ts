import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness } from './harness.js';

async function failRepeatedly(h: Harness, svc: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    await h.report(h.inSlot(svc, 1).id, 'FAILED');
    await h.advance(1000);
    await h.cluster();
  }
}

test('a slot keeps at most task_history_retention_limit tasks, the live one included, oldest deleted first', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 });
  await h.start();
  await h.setHistoryLimit(3);
  await h.addNode('n1');
  await h.addService('web', { replicas: 1 });
  await h.cluster();
  const first = h.inSlot('web', 1).id;
  await failRepeatedly(h, 'web', 6);
  const slot = h.tasks('web');
  assert.equal(slot.length, 3);
  assert.equal(slot.filter((t) => t.desiredState === 'RUNNING').length, 1);
  assert.ok(!slot.some((t) => t.id === first), 'the oldest went first');
});

test('the default history limit is 5 per slot', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 });
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 1 });
  await h.cluster();
  await failRepeatedly(h, 'web', 8);
  assert.equal(h.tasks('web').length, 5);
});

test('a negative limit keeps all history; lowering the limit reaps at once', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 });
  await h.start();
  await h.setHistoryLimit(-1);
  await h.addNode('n1');
  await h.addService('web', { replicas: 1 });
  await h.cluster();
  await failRepeatedly(h, 'web', 7);
  assert.equal(h.tasks('web').length, 8);
  await h.setHistoryLimit(2);
  assert.equal(h.tasks('web').length, 2);
});

test('with a limit of 0 the task holding a slot for a stopped, non-restarting task is kept', async () => {
  const h = new Harness();
  await h.start();
  await h.setHistoryLimit(0);
  await h.addNode('n1');
  await h.addService('web', { replicas: 1, restart: { condition: 'NONE' } });
  await h.cluster();
  const t = h.inSlot('web', 1);
  await h.report(t.id, 'FAILED');
  h.orch.touch();
  await h.settle();
  assert.deepEqual(h.tasks('web').map((x) => x.id), [t.id]);
  assert.deepEqual(h.live('web'), []);
});

test('global services keep history per node', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 });
  await h.start();
  await h.setHistoryLimit(2);
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('agent', { mode: 'global' });
  await h.cluster();
  for (let i = 0; i < 4; i++) {
    await h.report(h.live('agent').find((t) => t.nodeId === 'n1')!.id, 'FAILED');
    await h.advance(1000);
    await h.cluster();
  }
  assert.equal(h.tasks('agent').filter((t) => t.nodeId === 'n1').length, 2);
  assert.equal(h.tasks('agent').filter((t) => t.nodeId === 'n2').length, 1);
});

test('tasks of a removed service on a down node are deleted, since no agent will report them', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 2 });
  await h.cluster();
  await h.setNodeState('n1', 'DOWN');
  await h.removeService('web');
  assert.deepEqual(h.tasks('web'), []);
});

test('completions of the current job iteration are never reaped', async () => {
  const h = new Harness();
  await h.start();
  await h.setHistoryLimit(0);
  await h.addNode('n1');
  await h.addService('batch', { mode: 'replicatedJob', maxConcurrent: 3, totalCompletions: 3 });
  await h.cluster();
  for (const t of h.live('batch')) await h.report(t.id, 'COMPLETE');
  h.orch.touch();
  await h.settle();
  assert.equal(h.tasks('batch').length, 3);
  assert.deepEqual(h.live('batch'), []);
});
