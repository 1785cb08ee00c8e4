import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blank, copy } from '../../../manager/store/blank.js';
import { Task } from '../../../proto/gen/objects.js';
import { Harness, liveSlotViolations } from './harness.js';

test('a fresh orchestrator over the same store reconciles without writing anything', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('web', { replicas: 4 });
  await h.addService('agent', { mode: 'global' });
  await h.addService('batch', { mode: 'replicatedJob', maxConcurrent: 2, totalCompletions: 4 });
  await h.cluster();
  await h.orch.stop();
  const index = h.store.appliedIndex;

  h.orch = h.newOrchestrator();
  await h.start();
  assert.equal(h.orch.writes, 0);
  assert.equal(h.store.appliedIndex, index);
  assert.deepEqual(liveSlotViolations(h.store), []);
});

test('a stopped orchestrator writes nothing; its successor picks up what changed meanwhile', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 2 });
  await h.orch.stop();
  await h.scale('web', 4);
  assert.equal(h.live('web').length, 2, 'no leader, no reconciliation');
  h.orch = h.newOrchestrator();
  await h.start();
  assert.deepEqual(h.live('web').map((t) => t.slot), [1, 2, 3, 4]);
});

test('with entries applied later than proposed (as through Raft), passes never decide on a stale view', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 }, true);
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('web', { replicas: 3 });
  // A burst of changes while passes are in flight.
  const burst = [h.scale('web', 6), h.scale('web', 2), h.scale('web', 5)];
  await Promise.all(burst);
  await h.cluster();
  const failures = h.live('web').slice(0, 3).map((t) => h.report(t.id, 'FAILED'));
  await Promise.all([...failures, h.setAvailability('n1', 'DRAIN')]);
  await h.cluster();
  await h.cluster();
  assert.deepEqual(liveSlotViolations(h.store), []);
  assert.deepEqual(h.live('web').map((t) => t.slot), [1, 2, 3, 4, 5]);
});

test('a restart delay started by the old leader is finished by the new one', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 1, restart: { condition: 'ANY', delayMs: 10_000 } });
  await h.cluster();
  await h.report(h.inSlot('web', 1).id, 'FAILED');
  const next = h.inSlot('web', 1);
  assert.equal(next.desiredState, 'READY');
  await h.advance(4000);
  await h.orch.stop();

  h.orch = h.newOrchestrator();
  await h.start();
  assert.equal(h.task(next.id).desiredState, 'READY');
  await h.advance(5999);
  assert.equal(h.task(next.id).desiredState, 'READY');
  await h.advance(1);
  assert.equal(h.task(next.id).desiredState, 'RUNNING');
});

test('a slot found holding two live tasks keeps the running one', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 1 });
  await h.cluster();
  const running = h.inSlot('web', 1);
  await h.orch.stop();
  // What a race between two leaders could have left behind.
  const dup = copy(Task, running);
  dup.id = 'duplicate';
  dup.meta = null;
  dup.status = blank(Task).status ?? null;
  await h.store.update((tx) => tx.create('tasks', dup));
  h.orch = h.newOrchestrator();
  await h.start();
  assert.deepEqual(h.live('web').map((t) => t.id), [running.id]);
  assert.equal(h.task('duplicate').desiredState, 'SHUTDOWN');
});

test('two live tasks of one slot that both fail get a single replacement', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 });
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 1 });
  await h.cluster();
  const a = h.inSlot('web', 1);
  await h.orch.stop();
  const b = copy(Task, a);
  b.id = 'duplicate';
  b.meta = null;
  await h.store.update((tx) => tx.create('tasks', b));
  await h.report(a.id, 'FAILED');
  await h.report(b.id, 'FAILED');
  h.orch = h.newOrchestrator();
  await h.start();
  const live = h.live('web');
  assert.equal(live.length, 1);
  assert.ok(![a.id, b.id].includes(live[0]!.id));
  assert.equal(h.tasks('web').length, 3, 'no second replacement was made and shut down again');
});

test('a snapshot installed under a running orchestrator is reconciled as a whole', async () => {
  const donor = new Harness();
  await donor.addNode('n1');
  await donor.addService('web', { replicas: 2 }); // no orchestrator runs there: no tasks
  const h = new Harness();
  await h.start();
  h.store.restore(donor.store.snapshot(), donor.store.appliedIndex);
  await h.settle();
  assert.deepEqual(h.live('web').map((t) => t.slot), [1, 2]);
});
