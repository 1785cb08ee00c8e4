// A leader change in the middle of a rolling update: the new leader's orchestrator reads where
// the update stands from the store and carries on, giving no slot a second replacement.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blank } from '../../../manager/store/blank.js';
import { TaskStatus, type Task } from '../../../proto/gen/objects.js';
import { state } from './harness.js';
import { image, liveBySlot, Rollout } from './rollout.js';

async function failover(h: Rollout): Promise<void> {
  await h.orch.stop();
  h.orch = h.newOrchestrator();
  await h.start();
}

for (const order of ['STOP_FIRST', 'START_FIRST'] as const) {
  for (const asyncProposer of [false, true]) {
    test(`a new leader resumes a ${order.toLowerCase()} update where it was (${asyncProposer ? 'entries applied later' : 'local proposer'})`, async () => {
      const h = new Rollout({}, asyncProposer);
      await h.start();
      for (const n of ['n1', 'n2', 'n3']) await h.addNode(n);
      await h.createService('web', { replicas: 5, healthcheck: true, update: { order } });
      h.healthyAtOnce.add('app:1');
      await h.agents();
      await h.setImage('web', 'app:2');

      // Two slots updated, the third one's replacement just made: then the leader goes.
      for (let i = 0; i < 2; i++) {
        await h.agents();
        await h.healthy('web', 'app:2');
      }
      assert.equal(h.live('web').filter((t) => image(t) === 'app:2').length, 3);
      await failover(h);
      assert.equal(h.orch.writes, 0, 'nothing left to decide until a task moves');

      await h.agents();
      assert.equal(h.updatingSlots('web', 'app:2'), 1, 'still one slot at a time');
      for (let i = 0; i < 2; i++) {
        await h.healthy('web', 'app:2');
        await h.agents();
        if (i === 0) await failover(h);
      }
      await h.healthy('web', 'app:2');
      await h.agents();
      await h.advance(5000);
      assert.equal(h.status('web'), 'COMPLETED');

      const created = h.tasks('web').filter((t) => image(t) === 'app:2');
      assert.equal(created.length, 5, 'one replacement per slot, none made twice');
      const bySlot = liveBySlot(h.tasks('web'));
      for (const [slot, live] of bySlot) assert.deepEqual(live.map(image), ['app:2'], `slot ${slot}`);
      assert.ok(created.every((t) => state(t) === 'RUNNING'));
    });
  }
}

test('a stop-first replacement made by the old leader starts as soon as the old task stops, without a restart delay', async () => {
  const h = new Rollout();
  await h.start();
  await h.addNode('n1');
  await h.createService('web', { replicas: 2 });
  await h.agents();
  await h.setImage('web', 'app:2');
  const fresh = h.live('web').find((t) => image(t) === 'app:2')!;
  assert.equal(fresh.desiredState, 'READY');
  await failover(h);
  await h.agents(); // the old task stops; no time passes
  assert.equal(h.task(fresh.id).desiredState, 'RUNNING');
  assert.equal(state(h.task(fresh.id)), 'RUNNING');
});

test('a new leader keeps counting the failures of the update it took over', async () => {
  const h = new Rollout();
  await h.start();
  for (const n of ['n1', 'n2']) await h.addNode(n);
  await h.createService('web', { replicas: 4, update: { parallelism: 2, maxFailureRatio: 0.25, failureAction: 'PAUSE' }, restart: { condition: 'NONE' } });
  await h.agents();
  h.behaviour.set('app:2', 'hang');
  await h.setImage('web', 'app:2');
  await h.agents();
  const [a, b] = h.live('web').filter((t) => image(t) === 'app:2');
  await h.report(a!.id, 'FAILED');
  assert.equal(h.status('web'), 'UPDATING', '1 of 4 slots failed: within the ratio');
  await failover(h);
  await h.report(b!.id, 'FAILED');
  assert.equal(h.status('web'), 'PAUSED', 'the failure seen by the old leader still counts');
  assert.match(h.service('web').updateStatus!.message, new RegExp(`task ${b!.id} `));
});

test('a rollback survives a leader change and completes', async () => {
  const h = new Rollout();
  await h.start();
  for (const n of ['n1', 'n2']) await h.addNode(n);
  await h.createService('web', { replicas: 3, update: { failureAction: 'ROLLBACK' } });
  await h.agents();
  h.behaviour.set('app:2', 'fail');
  await h.setImage('web', 'app:2');
  await h.agents();
  assert.equal(h.status('web'), 'ROLLBACK_STARTED');
  await failover(h);
  await h.until('web', (s) => s === 'ROLLBACK_COMPLETED');
  for (const live of liveBySlot(h.tasks('web')).values()) assert.deepEqual(live.map(image), ['app:1']);
});

/**
 * Slot 1's new task starts while no leader runs; its agent's report reaches the new leader 3 s
 * later, stamped with when the task started.
 */
async function startedDuringFailover(h: Rollout): Promise<{ fresh: Task; startedAt: number }> {
  await h.start();
  await h.addNode('n1');
  await h.createService('web', { replicas: 1, update: { monitorMs: 5000, delayMs: 3000 } });
  await h.agents();
  await h.setImage('web', 'app:2');
  const fresh = h.live('web').find((t) => image(t) === 'app:2')!;
  const old = h.tasks('web').find((t) => image(t) === 'app:1')!;
  await h.report(old.id, 'SHUTDOWN');
  assert.equal(h.task(fresh.id).desiredState, 'RUNNING');
  await h.orch.stop();
  const startedAt = h.clock.now();
  await h.advance(3000);
  h.orch = h.newOrchestrator();
  await h.start();
  await h.updateTask(fresh.id, (t) => (t.status = blank(TaskStatus, { state: 'RUNNING', timestamp: startedAt, message: 'started' })));
  return { fresh, startedAt };
}

test('a new leader counts the delay and monitor period from when a task started, not from when it heard of it', async () => {
  const h = new Rollout();
  const { startedAt } = await startedDuringFailover(h);
  assert.equal(h.status('web'), 'UPDATING');
  // The last slot done: the update completes a delay (3 s) and a monitor period (5 s) later.
  await h.advance(startedAt + 7999 - h.clock.now());
  assert.equal(h.status('web'), 'UPDATING');
  await h.advance(1);
  assert.equal(h.status('web'), 'COMPLETED');
});

test('a task reported late that fails past its monitor period (counted from its start) is no failure of the update', async () => {
  const h = new Rollout();
  const { fresh, startedAt } = await startedDuringFailover(h);
  // 6 s after it started, 3 s after the new leader heard of it.
  await h.advance(startedAt + 6000 - h.clock.now());
  await h.report(fresh.id, 'FAILED');
  assert.equal(h.status('web'), 'UPDATING', 'not paused: the task had run past its monitor period');
  await h.advance(2000);
  assert.equal(h.status('web'), 'COMPLETED');
});
