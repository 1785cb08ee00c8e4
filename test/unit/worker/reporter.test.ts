// Status delivery: many reports make one call, a task's repeated reports shrink to its latest,
// failures are retried without losing or reordering anything.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TaskStatusUpdate } from '../../../proto/gen/dispatcher.js';
import type { TaskState } from '../../../proto/gen/objects.js';
import { BatchingStatusReporter } from '../../../agent/worker/reporter.js';
import { emptyStatus } from '../../../agent/worker/states.js';

const st = (state: TaskState, ts = 1): ReturnType<typeof emptyStatus> => emptyStatus(state, ts);
const summary = (batch: TaskStatusUpdate[]): string[] => batch.map((u) => `${u.taskId}:${u.status?.state}`);

test('reports made together go out in one call, each task with its latest status', async () => {
  const calls: string[][] = [];
  const reporter = new BatchingStatusReporter(async (batch) => {
    calls.push(summary(batch));
  });
  reporter.report('a', st('ACCEPTED'));
  reporter.report('b', st('ACCEPTED'));
  reporter.report('a', st('PREPARING'));
  reporter.report('a', st('READY'));
  await reporter.flush();
  // The first report waits a moment (lingerMs) for the others: one call for all of them.
  assert.deepEqual(calls, [['b:ACCEPTED', 'a:READY']]);
  assert.equal(reporter.backlog, 0);
});

test('without lingering, the first report goes at once and what comes meanwhile shares the next call', async () => {
  const calls: string[][] = [];
  const reporter = new BatchingStatusReporter(
    async (batch) => {
      calls.push(summary(batch));
    },
    { lingerMs: 0 },
  );
  reporter.report('a', st('ACCEPTED'));
  reporter.report('b', st('ACCEPTED'));
  reporter.report('a', st('PREPARING'));
  reporter.report('a', st('READY'));
  await reporter.flush();
  // The first report starts a call at once; what came while it ran shares the next one.
  assert.deepEqual(calls, [['a:ACCEPTED'], ['b:ACCEPTED', 'a:READY']]);
  assert.equal(reporter.backlog, 0);
});

test('a failed call is retried; newer statuses reported meanwhile win over the failed ones', async () => {
  const calls: string[][] = [];
  let fail = 1;
  const errors: unknown[] = [];
  const reporter = new BatchingStatusReporter(undefined, { retryMs: 1, lingerMs: 0, onError: (err) => errors.push(err) });
  reporter.report('a', st('STARTING'));
  reporter.report('c', st('STARTING'));
  reporter.setSink(async (batch) => {
    calls.push(summary(batch));
    if (fail-- > 0) {
      reporter.report('a', st('RUNNING')); // arrives while the failing call is out
      throw new Error('manager unavailable');
    }
  });
  await reporter.flush();
  // c:STARTING is sent again; a:STARTING is not: a:RUNNING replaced it.
  assert.deepEqual(calls, [['a:STARTING', 'c:STARTING'], ['c:STARTING', 'a:RUNNING']]);
  assert.equal(errors.length, 1);
});

test('without a sink updates wait; batches are capped at maxBatch', async () => {
  const calls: string[][] = [];
  const reporter = new BatchingStatusReporter(undefined, { maxBatch: 2 });
  for (const id of ['a', 'b', 'c', 'd', 'e']) reporter.report(id, st('RUNNING'));
  assert.equal(reporter.backlog, 5);
  reporter.setSink(async (batch) => {
    calls.push(summary(batch));
  });
  await reporter.flush();
  assert.deepEqual(calls, [['a:RUNNING', 'b:RUNNING'], ['c:RUNNING', 'd:RUNNING'], ['e:RUNNING']]);
});
