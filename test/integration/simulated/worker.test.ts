// The simulated worker follows the real worker's protocol and state machine with nothing behind
// it: assignments in (COMPLETE, then INCREMENTAL that must follow), states out through the
// reporter, in the order the real task controller reports them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blank } from '../../../manager/store/blank.js';
import { Task, TaskStatus, type TaskState } from '../../../proto/gen/objects.js';
import type { AssignmentChange, AssignmentsMessage } from '../../../proto/gen/dispatcher.js';
import { MemoryStatusReporter } from '../../../agent/worker/reporter.js';
import { AssignmentGapError } from '../../../agent/worker/worker.js';
import { SimulatedWorker } from '../../../agent/simulated/worker.js';
import { SlotWatch } from '../../../agent/simulated/fleet.js';

function task(id: string, o: { desired?: TaskState; state?: TaskState; slot?: number; serviceId?: string } = {}): Task {
  return blank(Task, {
    id,
    serviceId: o.serviceId ?? 'svc',
    slot: o.slot ?? 1,
    desiredState: o.desired ?? 'RUNNING',
    status: blank(TaskStatus, { state: o.state ?? 'ASSIGNED' }),
  });
}

let version = 0;
function complete(...tasks: Task[]): AssignmentsMessage {
  return { type: 'COMPLETE', appliesTo: '', resultsIn: `v${++version}`, changes: tasks.map((t) => ({ action: 'UPDATE', task: t })) };
}
function incremental(appliesTo: string, ...changes: AssignmentChange[]): AssignmentsMessage {
  return { type: 'INCREMENTAL', appliesTo, resultsIn: `v${++version}`, changes };
}

function setup(nodeId = 'n1', slots = new SlotWatch()) {
  const reporter = new MemoryStatusReporter();
  const worker = new SimulatedWorker({ nodeId, reporter, observer: slots });
  return { reporter, worker, slots };
}

test('a task desired RUNNING walks every state to RUNNING at once', async () => {
  const { reporter, worker } = setup();
  await worker.applyAssignments(complete(task('t1')));
  assert.deepEqual(reporter.states('t1'), ['ASSIGNED', 'ACCEPTED', 'PREPARING', 'READY', 'STARTING', 'RUNNING']);
  assert.equal(worker.list()[0]!.status.state, 'RUNNING');
});

test('desired READY stops at READY; desired RUNNING later starts it', async () => {
  const { reporter, worker } = setup();
  const first = complete(task('t1', { desired: 'READY' }));
  await worker.applyAssignments(first);
  assert.equal(reporter.latest('t1')!.state, 'READY');
  await worker.applyAssignments(incremental(first.resultsIn, { action: 'UPDATE', task: task('t1', { desired: 'RUNNING', state: 'READY' }) }));
  assert.deepEqual(reporter.states('t1').slice(-3), ['READY', 'STARTING', 'RUNNING']);
});

test('desired SHUTDOWN ends in SHUTDOWN; REMOVE drops the task without a report', async () => {
  const { reporter, worker } = setup();
  const first = complete(task('t1'), task('t2', { slot: 2 }));
  await worker.applyAssignments(first);
  const second = incremental(first.resultsIn, { action: 'UPDATE', task: task('t1', { desired: 'SHUTDOWN', state: 'RUNNING' }) });
  await worker.applyAssignments(second);
  assert.equal(reporter.latest('t1')!.state, 'SHUTDOWN');
  const reports = reporter.history.length;
  await worker.applyAssignments(incremental(second.resultsIn, { action: 'REMOVE', task: task('t2', { slot: 2 }) }));
  assert.equal(reporter.history.length, reports);
  assert.deepEqual(worker.list().map((t) => t.task.id), ['t1']);
});

test('an increment that does not follow the set it has is refused; a COMPLETE set replaces everything', async () => {
  const { worker } = setup();
  await worker.applyAssignments(complete(task('t1'), task('t2', { slot: 2 })));
  await assert.rejects(worker.applyAssignments(incremental('v-unknown', { action: 'UPDATE', task: task('t3', { slot: 3 }) })), AssignmentGapError);
  await worker.applyAssignments(complete(task('t2', { slot: 2, state: 'RUNNING' })));
  assert.deepEqual(worker.list().map((t) => t.task.id), ['t2']);
});

test('a task the managers already saw RUNNING (a new session) stays RUNNING without walking again', async () => {
  const { reporter, worker } = setup();
  await worker.applyAssignments(complete(task('t1', { state: 'RUNNING' })));
  assert.deepEqual(reporter.states('t1'), ['RUNNING']);
});

test('the slot watch sees a slot running on two nodes at once, and a dead node running nothing', async () => {
  const slots = new SlotWatch();
  const a = setup('n1', slots);
  const b = setup('n2', slots);
  await a.worker.applyAssignments(complete(task('t1', { slot: 7 })));
  assert.equal(slots.copies('svc/7'), 1);
  assert.equal(slots.overlaps.length, 0);
  await b.worker.applyAssignments(complete(task('t2', { slot: 7 })));
  assert.equal(slots.copies('svc/7'), 2);
  assert.equal(slots.overlaps.length, 1);
  assert.deepEqual(slots.overlaps[0]!.copies.sort(), ['n1/t1', 'n2/t2']);
  a.worker.die();
  assert.equal(slots.copies('svc/7'), 1);
  assert.equal(slots.total, 1);
  await assert.rejects(a.worker.applyAssignments(complete()), /dead/);
});
