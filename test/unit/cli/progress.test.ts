// The convergence display as a specification: each test feeds polls of the cluster (service,
// tasks, live nodes, time) to the pure step function and reads the lines Docker would print.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { initialProgressState, progressBar, progressStep, ProgressRenderer, renderLine, upToDate, type ProgressLine, type ProgressState, type Snapshot } from '../../../cli/progress.js';
import type { Service, ServiceSpec, Task, TaskState, UpdateStatus } from '../../../proto/gen/objects.js';

const T0 = 1_700_000_000_000;
const FULL = '[==================================================>]';

function service(mode: Partial<ServiceSpec>, extra: Partial<Service> = {}): Service {
  return {
    id: 'svc',
    meta: { version: 10, createdAt: T0, updatedAt: T0 },
    spec: {
      annotations: { name: 'web', labels: {} },
      task: { container: { image: 'nginx:1', labels: {}, command: [], args: [], hostname: '', env: [], dir: '', user: '', mounts: [], stopGracePeriodMs: 0, stopSignal: '', readOnly: false, capAdd: [], capDrop: [], hosts: [], tty: false, configs: [] }, networks: [], forceUpdate: 0 },
      ...mode,
    },
    previousSpec: null,
    specVersion: 2,
    endpoint: null,
    updateStatus: null,
    jobIteration: 0,
    ...extra,
  };
}

function task(slot: number, state: TaskState, extra: Partial<Task> = {}): Task {
  return {
    id: `t${slot}-${state}`,
    meta: { version: 1, createdAt: T0, updatedAt: T0 },
    spec: null,
    specVersion: 2,
    serviceId: 'svc',
    slot,
    nodeId: 'node1',
    annotations: null,
    serviceName: 'web',
    status: { timestamp: T0, state, message: '', err: '', container: null, health: '', hostPorts: [] },
    desiredState: 'RUNNING',
    networks: [],
    endpoint: null,
    jobIteration: 0,
    assignedGenericResources: [],
    ...extra,
  };
}

const text = (lines: readonly ProgressLine[]) => lines.map((l) => renderLine(l, 200));

/** Runs polls in order, returning every step's rendered lines and the final state and outcome. */
function run(polls: Omit<Snapshot, 'activeNodes'>[], state: ProgressState = initialProgressState(), nodes = ['node1', 'node2', 'node3']) {
  const out: string[][] = [];
  let outcome = 'continue';
  let message = '';
  for (const p of polls) {
    const step = progressStep(state, { ...p, activeNodes: new Set(nodes) });
    state = step.state;
    out.push(text(step.lines));
    outcome = step.outcome.kind;
    if (step.outcome.kind === 'failed') message = step.outcome.message;
    if (outcome !== 'continue') break;
  }
  return { out, state, outcome, message };
}

test('the bar is 50 columns of = for the share of the way to running', () => {
  assert.equal(progressBar(9, 9), FULL);
  assert.equal(progressBar(6, 9), `[${'='.repeat(33)}>${' '.repeat(17)}]`);
  assert.equal(progressBar(0, 3), `[>${' '.repeat(50)}]`);
  assert.equal(progressBar(12, 10), FULL);
});

test('replicated: slots are drawn, then tasks progress, then 5 seconds of stability converge the service', () => {
  const svc = service({ replicated: { replicas: 3 } });
  const r = run([
    { service: svc, tasks: [], now: T0 },
    { service: svc, tasks: [task(1, 'PREPARING'), task(2, 'PENDING'), task(3, 'RUNNING')], now: T0 + 250 },
    { service: svc, tasks: [task(1, 'RUNNING'), task(2, 'RUNNING'), task(3, 'RUNNING')], now: T0 + 500 },
    { service: svc, tasks: [task(1, 'RUNNING'), task(2, 'RUNNING'), task(3, 'RUNNING')], now: T0 + 3000 },
    { service: svc, tasks: [task(1, 'RUNNING'), task(2, 'RUNNING'), task(3, 'RUNNING')], now: T0 + 5600 },
  ]);
  assert.deepEqual(r.out[0], ['overall progress: 0 out of 3 tasks', '1/3:', '2/3:', '3/3:', 'overall progress: 0 out of 3 tasks']);
  assert.deepEqual(r.out[1], [
    `1/3: preparing [${'='.repeat(33)}>${' '.repeat(17)}]`,
    `2/3: pending   [${'='.repeat(16)}>${' '.repeat(34)}]`,
    `3/3: running   ${FULL}`,
    'overall progress: 1 out of 3 tasks',
  ]);
  assert.deepEqual(r.out[2], [`1/3: running   ${FULL}`, `2/3: running   ${FULL}`, `3/3: running   ${FULL}`, 'overall progress: 3 out of 3 tasks', 'verify: Waiting 5 seconds to verify that tasks are stable...']);
  assert.deepEqual(r.out[3], ['verify: Waiting 3 seconds to verify that tasks are stable...']);
  assert.deepEqual(r.out[4], ['verify: Service converged']);
  assert.equal(r.outcome, 'converged');
});

test('the monitor period is the update config\'s when it has one', () => {
  const svc = service({ replicated: { replicas: 1 }, update: { parallelism: 1, delayMs: 0, failureAction: 'PAUSE', monitorMs: 1000, maxFailureRatio: 0, order: 'STOP_FIRST' } });
  const running = [task(1, 'RUNNING')];
  const r = run([
    { service: svc, tasks: running, now: T0 },
    { service: svc, tasks: running, now: T0 + 1000 },
  ]);
  assert.equal(r.out[0]!.at(-1), 'verify: Waiting 1 seconds to verify that tasks are stable...');
  assert.equal(r.outcome, 'converged');
});

test('a failing task shows its error in its slot, and lost convergence is reported', () => {
  const svc = service({ replicated: { replicas: 2 } });
  const failed = task(2, 'FAILED', { desiredState: 'SHUTDOWN' });
  failed.status!.err = 'task: non-zero exit (1)';
  const r = run([
    { service: svc, tasks: [task(1, 'RUNNING'), task(2, 'RUNNING')], now: T0 },
    { service: svc, tasks: [task(1, 'RUNNING'), failed], now: T0 + 1000 },
    { service: svc, tasks: [task(1, 'RUNNING'), failed, task(2, 'STARTING', { id: 'again' })], now: T0 + 1200 },
  ]);
  assert.equal(r.out[0]!.at(-1), 'verify: Waiting 5 seconds to verify that tasks are stable...');
  assert.deepEqual(r.out[1], [`1/2: running   ${FULL}`, '2/2: task: non-zero exit (1)', 'overall progress: 1 out of 2 tasks', 'verify: Detected task failure']);
  // The replacement (lower desired state) wins the slot back.
  assert.deepEqual(r.out[2], [`1/2: running   ${FULL}`, `2/2: starting  [${'='.repeat(44)}>${' '.repeat(6)}]`, 'overall progress: 1 out of 2 tasks']);
});

test('tasks of an older spec do not count; a scale that keeps task specs does', () => {
  const svc = service({ replicated: { replicas: 1 } });
  const old = task(1, 'RUNNING', { specVersion: 1, spec: { ...svc.spec!.task!, forceUpdate: 9 } });
  assert.equal(upToDate(svc, old), false);
  assert.equal(upToDate(svc, { ...old, spec: svc.spec!.task! }), true);
  const r = run([{ service: svc, tasks: [old], now: T0 }]);
  assert.equal(r.out[0]!.at(-1), 'overall progress: 0 out of 1 tasks');
});

test('tasks on down nodes are not counted', () => {
  const svc = service({ replicated: { replicas: 1 } });
  const r = run([{ service: svc, tasks: [task(1, 'RUNNING', { nodeId: 'gone' })], now: T0 }]);
  assert.equal(r.out[0]!.at(-1), 'overall progress: 0 out of 1 tasks');
});

test('more than 20 replicas: only the overall line', () => {
  const svc = service({ replicated: { replicas: 21 } });
  const r = run([{ service: svc, tasks: [task(1, 'RUNNING')], now: T0 }]);
  assert.deepEqual(r.out[0], ['overall progress: 0 out of 21 tasks', 'overall progress: 1 out of 21 tasks']);
});

const status = (state: UpdateStatus['state'], message: string, startedAt = T0): UpdateStatus => ({ state, startedAt, completedAt: 0, message });

test('update statuses: a paused update fails the wait with its message; a stale one from before is ignored', () => {
  const paused = service({ replicated: { replicas: 1 } }, { updateStatus: status('PAUSED', 'update paused due to failure or early termination of task t1') });
  const fresh = run([{ service: paused, tasks: [], now: T0 }]);
  assert.equal(fresh.outcome, 'failed');
  assert.equal(fresh.message, 'service update paused: update paused due to failure or early termination of task t1');
  const stale = run([{ service: paused, tasks: [], now: T0 }], initialProgressState(paused));
  assert.equal(stale.outcome, 'continue');
});

test('update statuses: a completed update ends the wait; rollbacks are announced and counted as such', () => {
  const svc = service({ replicated: { replicas: 1 } });
  const done = run([{ service: { ...svc, updateStatus: status('COMPLETED', 'update completed') }, tasks: [], now: T0 }]);
  assert.equal(done.outcome, 'converged');

  const rolling = { ...svc, updateStatus: status('ROLLBACK_STARTED', 'update rolled back due to failure or early termination of task x') };
  const completed = { ...svc, updateStatus: status('ROLLBACK_COMPLETED', 'rollback completed') };
  const r = run([
    { service: rolling, tasks: [task(1, 'STARTING')], now: T0 },
    { service: completed, tasks: [task(1, 'RUNNING')], now: T0 + 100 },
    { service: completed, tasks: [task(1, 'RUNNING')], now: T0 + 5200 },
  ]);
  assert.deepEqual(r.out[0]!.slice(0, 2), ['rollback: update rolled back due to failure or early termination of task x', 'overall progress: rolling back update: 0 out of 1 tasks']);
  assert.equal(r.out[1]!.at(-2), 'overall progress: rolling back update: 1 out of 1 tasks');
  assert.deepEqual(r.out[2], ['verify: Service converged', 'rollback: rollback completed']);
  assert.equal(r.outcome, 'converged');
});

test('global: waits for tasks, draws one line per node, converges when every node runs one', () => {
  const svc = service({ global: {} });
  const onNode = (node: string, state: TaskState) => task(0, state, { nodeId: node, id: `${node}-${state}` });
  const r = run([
    { service: svc, tasks: [], now: T0 },
    { service: svc, tasks: [onNode('nodeaaaaaaaaaaaaa1', 'RUNNING'), onNode('nodebbbbbbbbbbbbb2', 'ASSIGNED')], now: T0 + 100 },
    { service: svc, tasks: [onNode('nodeaaaaaaaaaaaaa1', 'RUNNING'), onNode('nodebbbbbbbbbbbbb2', 'RUNNING')], now: T0 + 200 },
  ], initialProgressState(), ['nodeaaaaaaaaaaaaa1', 'nodebbbbbbbbbbbbb2']);
  assert.deepEqual(r.out[0], ['overall progress: waiting for new tasks']);
  assert.deepEqual(r.out[1], ['overall progress: 0 out of 2 tasks', `nodeaaaaaaaa: running   ${FULL}`, `nodebbbbbbbb: assigned  [${'='.repeat(22)}>${' '.repeat(28)}]`, 'overall progress: 1 out of 2 tasks']);
  assert.equal(r.out[2]!.at(-1), 'verify: Waiting 5 seconds to verify that tasks are stable...');
});

test('replicated job: job progress, active tasks, one line per completion, "job complete" without a monitor wait', () => {
  const svc = service({ replicatedJob: { maxConcurrent: 2, totalCompletions: 3 } }, { jobIteration: 1 });
  const j = (slot: number, state: TaskState, iteration = 1) => task(slot, state, { jobIteration: iteration, id: `j${slot}${state}${iteration}` });
  const r = run([
    { service: svc, tasks: [j(1, 'COMPLETE', 0)], now: T0 },
    { service: svc, tasks: [j(1, 'COMPLETE'), j(2, 'RUNNING')], now: T0 + 100 },
    { service: svc, tasks: [j(1, 'COMPLETE'), j(2, 'COMPLETE'), j(3, 'COMPLETE')], now: T0 + 200 },
  ]);
  const none = `job progress: 0 out of 3 complete [>${' '.repeat(50)}]`;
  assert.deepEqual(r.out[0], [none, 'active tasks: 0 out of 2 tasks', '1/3:', '2/3:', '3/3:', none, 'active tasks: 0 out of 2 tasks']);
  assert.deepEqual(r.out[1], [
    `1/3: complete  ${FULL}`,
    `2/3: running   [${'='.repeat(45)}>${' '.repeat(5)}]`,
    `job progress: 1 out of 3 complete [${'='.repeat(16)}>${' '.repeat(34)}]`,
    'active tasks: 1 out of 2 tasks',
  ]);
  assert.deepEqual(r.out[2]!.slice(-3), [`job progress: 3 out of 3 complete ${FULL}`, 'active tasks: 0 out of 0 tasks', 'job complete']);
  assert.equal(r.outcome, 'converged');
});

test('global job: the nodes of the first tasks are the ones awaited', () => {
  const svc = service({ globalJob: {} });
  const on = (node: string, state: TaskState) => task(0, state, { nodeId: node, id: `${node}${state}` });
  const r = run([
    { service: svc, tasks: [], now: T0 },
    { service: svc, tasks: [on('n1', 'RUNNING'), on('n2', 'COMPLETE')], now: T0 + 100 },
    { service: svc, tasks: [on('n1', 'COMPLETE'), on('n2', 'COMPLETE'), on('n3', 'RUNNING')], now: T0 + 200 },
  ]);
  assert.deepEqual(r.out[0], ['job progress: waiting for tasks']);
  assert.equal(r.out[1]!.at(-1), `job progress: 1 out of 2 complete [${'='.repeat(25)}>${' '.repeat(25)}]`);
  assert.deepEqual(r.out[2]!.slice(-2), [`job progress: 2 out of 2 complete ${FULL}`, 'job complete']);
});

function capture(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (b: Buffer) => chunks.push(b));
  return { stream, text: () => Buffer.concat(chunks).toString() };
}

test('plain output (not a terminal): a line is printed when its text changes, never redrawn', () => {
  const c = capture();
  const r = new ProgressRenderer(c.stream, false, 200);
  r.write([{ id: 'overall progress', text: '0 out of 1 tasks' }, { id: '1/1', text: '' }]);
  r.write([{ id: '1/1', text: 'running  ', bar: [9, 9] }, { id: 'overall progress', text: '0 out of 1 tasks' }]);
  r.write([{ id: 'verify', text: 'Service converged' }]);
  assert.equal(c.text(), ['overall progress: 0 out of 1 tasks', '1/1:', `1/1: running   ${FULL}`, 'verify: Service converged', ''].join('\n'));
});

test('terminal output: a known line is rewritten in place; bars only on terminals wider than 110 columns', () => {
  const c = capture();
  const r = new ProgressRenderer(c.stream, true, 120);
  r.write([{ id: 'overall progress', text: '0 out of 2 tasks' }, { id: '1/2', text: '' }, { id: '2/2', text: '' }]);
  r.write([{ id: '1/2', text: 'running  ', bar: [9, 9] }]);
  assert.equal(c.text(), `overall progress: 0 out of 2 tasks\n1/2:\n2/2:\n\x1b[2A\r\x1b[2K1/2: running   ${FULL}\x1b[2B\r`);
  const narrow = capture();
  new ProgressRenderer(narrow.stream, true, 80).write([{ id: '1/1', text: 'running  ', bar: [9, 9] }]);
  assert.equal(narrow.text(), '1/1: running\n');
});
