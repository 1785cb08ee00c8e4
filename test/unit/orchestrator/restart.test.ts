import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness } from './harness.js';
import type { RestartPolicy } from '../../../proto/gen/objects.js';

async function oneReplica(restart?: Partial<RestartPolicy>, opts = {}) {
  const h = new Harness(opts);
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 1, ...(restart ? { restart } : {}) });
  await h.cluster();
  return h;
}

/** Fails the slot's task and lets any restart delay pass; returns whether a new task runs. */
async function failAndWait(h: Harness, how: 'FAILED' | 'COMPLETE' = 'FAILED'): Promise<boolean> {
  const before = h.inSlot('web', 1).id;
  await h.report(before, how);
  assert.equal(h.task(before).desiredState, 'SHUTDOWN', 'the stopped task is shut down');
  await h.advance(60_000);
  await h.cluster();
  const live = h.live('web');
  return live.length === 1 && live[0]!.id !== before;
}

test('restart condition any (the default) restarts tasks that complete and tasks that fail', async () => {
  const h = await oneReplica();
  assert.equal(await failAndWait(h, 'COMPLETE'), true);
  assert.equal(await failAndWait(h, 'FAILED'), true);
});

test('restart condition on-failure restarts failures and non-zero exits, not clean exits', async () => {
  const h = await oneReplica({ condition: 'ON_FAILURE', delayMs: 0 });
  assert.equal(await failAndWait(h, 'FAILED'), true);
  assert.equal(await failAndWait(h, 'COMPLETE'), false);
  assert.deepEqual(h.live('web'), []);
});

test('a rejected task is restarted under on-failure', async () => {
  const h = await oneReplica({ condition: 'ON_FAILURE', delayMs: 0 });
  const t = h.inSlot('web', 1);
  await h.report(t.id, 'REJECTED');
  assert.notEqual(h.inSlot('web', 1).id, t.id);
});

test('restart condition none never restarts, and the stopped task keeps holding its slot', async () => {
  const h = await oneReplica({ condition: 'NONE' });
  assert.equal(await failAndWait(h, 'FAILED'), false);
  h.orch.touch();
  await h.settle();
  assert.deepEqual(h.live('web'), [], 'a later pass does not refill the slot either');
  // Scaling up adds slot 2 only.
  await h.scale('web', 2);
  assert.deepEqual(h.live('web').map((t) => t.slot), [2]);
});

test('the restart delay is honoured: the replacement waits READY, then starts', async () => {
  const h = await oneReplica({ condition: 'ANY', delayMs: 3000 });
  const old = h.inSlot('web', 1);
  await h.report(old.id, 'FAILED');
  const next = h.inSlot('web', 1);
  assert.equal(next.desiredState, 'READY');
  await h.cluster(); // the scheduler may place it meanwhile
  await h.advance(2999);
  assert.equal(h.task(next.id).desiredState, 'READY');
  await h.advance(1);
  assert.equal(h.task(next.id).desiredState, 'RUNNING');
});

test('without a restart policy the delay is 5 s', async () => {
  const h = await oneReplica();
  await h.report(h.inSlot('web', 1).id, 'FAILED');
  const next = h.inSlot('web', 1);
  await h.advance(4999);
  assert.equal(h.task(next.id).desiredState, 'READY');
  await h.advance(1);
  assert.equal(h.task(next.id).desiredState, 'RUNNING');
});

test('max attempts without a window caps the restarts of a slot', async () => {
  const h = await oneReplica({ condition: 'ANY', delayMs: 0, maxAttempts: 2 });
  assert.equal(await failAndWait(h), true);
  assert.equal(await failAndWait(h), true);
  assert.equal(await failAndWait(h), false);
  h.orch.touch();
  await h.settle();
  assert.deepEqual(h.live('web'), []);
});

test('max attempts counts only the restarts within the window before the failure', async () => {
  const h = await oneReplica({ condition: 'ANY', delayMs: 0, maxAttempts: 2, windowMs: 10_000 });
  // Two quick failures are restarted and use up the attempts of their window...
  await h.report(h.inSlot('web', 1).id, 'FAILED');
  await h.cluster();
  await h.advance(1000);
  await h.report(h.inSlot('web', 1).id, 'FAILED');
  await h.cluster();
  // ...a failure more than a window later is restarted again...
  await h.advance(11_000);
  await h.report(h.inSlot('web', 1).id, 'FAILED');
  assert.equal(h.live('web').length, 1);
  await h.cluster();
  // ...and so is the next one, but a third within 10 s is not.
  await h.advance(1000);
  await h.report(h.inSlot('web', 1).id, 'FAILED');
  await h.cluster();
  await h.advance(1000);
  await h.report(h.inSlot('web', 1).id, 'FAILED');
  assert.deepEqual(h.live('web'), []);
});

test('restart history starts over for tasks of a new spec version', async () => {
  const h = await oneReplica({ condition: 'ANY', delayMs: 0, maxAttempts: 1 });
  assert.equal(await failAndWait(h), true);
  // What the rolling updater will do: the slot's task now runs spec version 2.
  await h.updateService('web', (s) => (s.specVersion = 2));
  await h.updateTask(h.inSlot('web', 1).id, (t) => (t.specVersion = 2));
  assert.equal(await failAndWait(h), true, 'version 2 has its own attempts');
  assert.equal(h.inSlot('web', 1).specVersion, 2, 'a replacement is made from the current spec');
  assert.equal(await failAndWait(h), false);
});
