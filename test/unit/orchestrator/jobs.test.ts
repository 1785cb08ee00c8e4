import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, state } from './harness.js';

const completions = (h: Harness, svc: string, iteration = 0) => h.tasks(svc).filter((t) => t.jobIteration === iteration && state(t) === 'COMPLETE').length;

test('a replicated job runs at most maxConcurrent tasks until totalCompletions have completed', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('batch', { mode: 'replicatedJob', maxConcurrent: 2, totalCompletions: 5 });
  await h.cluster();
  let peak = 0;
  for (let step = 0; step < 10 && completions(h, 'batch') < 5; step++) {
    const live = h.live('batch');
    peak = Math.max(peak, live.length);
    assert.ok(live.length <= 2, `at most 2 at once, saw ${live.length}`);
    await h.report(live[0]!.id, 'COMPLETE');
    await h.cluster();
  }
  assert.equal(peak, 2);
  assert.equal(completions(h, 'batch'), 5);
  assert.deepEqual(h.live('batch'), [], 'nothing runs once the job is done');
  assert.deepEqual(
    h
      .tasks('batch')
      .map((t) => t.slot)
      .sort(),
    [1, 2, 3, 4, 5],
    'one slot per completion',
  );
  // Done stays done.
  h.orch.touch();
  await h.settle();
  assert.deepEqual(h.live('batch'), []);
});

test('a failed job task is restarted in its slot; a completed one never is', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 });
  await h.start();
  await h.addNode('n1');
  await h.addService('once', { mode: 'replicatedJob', totalCompletions: 1 });
  await h.cluster();
  const first = h.inSlot('once', 1);
  await h.report(first.id, 'FAILED');
  const second = h.inSlot('once', 1);
  assert.notEqual(second.id, first.id);
  await h.cluster();
  await h.report(second.id, 'COMPLETE');
  assert.deepEqual(h.live('once'), []);
  assert.equal(completions(h, 'once'), 1);
});

test('bumping jobIteration runs the job again and stops what the old run still runs', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('batch', { mode: 'replicatedJob', maxConcurrent: 1, totalCompletions: 2 });
  await h.cluster();
  await h.report(h.live('batch')[0]!.id, 'COMPLETE');
  await h.cluster();
  const stillRunning = h.live('batch')[0]!;
  await h.updateService('batch', (s) => (s.jobIteration = 1));
  assert.equal(h.task(stillRunning.id).desiredState, 'SHUTDOWN');
  const live = h.live('batch');
  assert.equal(live.length, 1);
  assert.equal(live[0]!.jobIteration, 1);
  assert.equal(live[0]!.slot, 1);
});

test('a global job runs once to completion on every node, including nodes that join later', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('setup', { mode: 'globalJob' });
  await h.cluster();
  assert.deepEqual(h.live('setup').map((t) => t.nodeId).sort(), ['n1', 'n2']);
  for (const t of h.live('setup')) await h.report(t.id, 'COMPLETE');
  assert.deepEqual(h.live('setup'), [], 'completed tasks are not restarted');
  await h.addNode('n3');
  assert.deepEqual(h.live('setup').map((t) => t.nodeId), ['n3']);
  await h.cluster();
  await h.updateService('setup', (s) => (s.jobIteration = 1));
  // n3 was still running iteration 0: that task is stopped, and every node runs iteration 1.
  assert.deepEqual(
    h
      .live('setup')
      .map((t) => [t.nodeId, t.jobIteration])
      .sort(),
    [
      ['n1', 1],
      ['n2', 1],
      ['n3', 1],
    ],
  );
});

test('a global job task that fails is restarted on its node', async () => {
  const h = new Harness({ defaultRestartDelayMs: 0 });
  await h.start();
  await h.addNode('n1');
  await h.addService('setup', { mode: 'globalJob' });
  await h.cluster();
  const first = h.live('setup')[0]!;
  await h.report(first.id, 'FAILED');
  const again = h.live('setup')[0]!;
  assert.notEqual(again.id, first.id);
  assert.equal(again.nodeId, 'n1');
});
