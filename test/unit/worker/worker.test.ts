// The task state machine on the node, driven through the Worker with a fake runtime: the order of
// states, what ends a task how, desired states, removal, and picking tasks up after a restart.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { containerIdFor } from '../../../agent/worker/naming.js';
import { MemoryStatusReporter } from '../../../agent/worker/reporter.js';
import { AssignmentGapError, Worker } from '../../../agent/worker/worker.js';
import { waitFor } from '../../support/wait.js';
import { FakeImages, FakeNetwork, FakeRuntime } from './fakes.js';
import { makeTask, onNetwork, withDesired } from './tasks.js';

interface Rig {
  dir: string;
  runtime: FakeRuntime;
  images: FakeImages;
  network: FakeNetwork;
  reporter: MemoryStatusReporter;
  worker: Worker;
  newWorker(): Promise<Worker>;
}

async function rig(t: TestContext): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-worker-unit-'));
  const runtime = new FakeRuntime();
  const images = new FakeImages();
  const network = new FakeNetwork();
  const reporter = new MemoryStatusReporter();
  const workers: Worker[] = [];
  const newWorker = async (): Promise<Worker> => {
    const w = new Worker({ dataDir: dir, runtime, images, network, reporter });
    workers.push(w);
    await w.init();
    return w;
  };
  t.after(async () => {
    for (const w of workers) await w.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, runtime, images, network, reporter, worker: await newWorker(), newWorker };
}

const LIFECYCLE = ['ASSIGNED', 'ACCEPTED', 'PREPARING', 'READY', 'STARTING', 'RUNNING'];

test('a task goes ASSIGNED → … → RUNNING, then COMPLETE when its container exits 0', async (t) => {
  const r = await rig(t);
  const task = onNetwork(makeTask('t1', { command: ['sh', '-c', 'exit 0'] }));
  await r.worker.assign([task]);
  const running = await r.reporter.waitForState('t1', 'RUNNING');
  assert.deepEqual(r.reporter.states('t1'), LIFECYCLE);
  const id = containerIdFor('t1');
  assert.equal(running.container?.containerId, id);
  assert.ok((running.container?.pid ?? 0) > 0, 'a running task reports its pid');
  r.runtime.exit(id, 0);
  const done = await r.reporter.waitForState('t1', 'COMPLETE');
  assert.deepEqual(r.reporter.states('t1'), [...LIFECYCLE, 'COMPLETE']);
  assert.equal(done.container?.exitCode, 0);
  assert.equal(done.err, '');
  assert.deepEqual(r.network.released, [id], 'the network goes when the container has stopped');
  const stamps = r.reporter.statuses('t1').map((s) => s.timestamp);
  assert.deepEqual(stamps, [...stamps].sort((a, b) => a - b), 'timestamps never go back');
});

test('a task on no network and publishing no port is not given to the network attacher', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('t1')]);
  await r.reporter.waitForState('t1', 'RUNNING');
  const id = containerIdFor('t1');
  assert.equal(r.network.attached.has(id), false, 'no network prepared');
  assert.equal(r.runtime.containers.get(id)?.spec.netns, undefined, 'the runtime makes the container a namespace of its own');
  await r.worker.assign([onNetwork(makeTask('t2'))]);
  await r.reporter.waitForState('t2', 'RUNNING');
  assert.ok(r.network.attached.has(containerIdFor('t2')), 'a task on a network is wired by the attacher');
});

test('a non-zero exit fails the task with Docker’s message and the exit code', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('t1')]);
  await r.reporter.waitForState('t1', 'RUNNING');
  r.runtime.exit(containerIdFor('t1'), 3);
  const failed = await r.reporter.waitForState('t1', 'FAILED');
  assert.equal(failed.err, 'task: non-zero exit (3)');
  assert.equal(failed.container?.exitCode, 3);
});

test('a missing image rejects the task before any container exists', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('t1', { image: 'nope:1' })]);
  const rejected = await r.reporter.waitForState('t1', 'REJECTED');
  assert.equal(rejected.err, 'No such image: nope:1');
  assert.deepEqual(r.reporter.states('t1'), ['ASSIGNED', 'ACCEPTED', 'PREPARING', 'REJECTED']);
  assert.equal(r.runtime.containers.size, 0);
});

test('a spec this node cannot run is rejected without preparing, naming the bad value', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('t1', { stopSignal: 'SIGNOPE' })]);
  const rejected = await r.reporter.waitForState('t1', 'REJECTED');
  assert.match(rejected.err, /SIGNOPE/);
  assert.deepEqual(r.reporter.states('t1'), ['ASSIGNED', 'REJECTED']);
});

test('desired READY prepares the container and waits; desired RUNNING then starts it', async (t) => {
  const r = await rig(t);
  const task = makeTask('t1', {}, 'READY');
  await r.worker.assign([task]);
  await r.reporter.waitForState('t1', 'READY');
  const id = containerIdFor('t1');
  assert.equal((await r.runtime.inspect(id)).status, 'created');
  // Nothing else happens while the task is only desired READY.
  await r.worker.assign([task]);
  assert.equal(r.worker.status('t1')?.state, 'READY');
  assert.ok(!r.runtime.calls.includes(`start ${id}`));
  await r.worker.assign([withDesired(task, 'RUNNING')]);
  await r.reporter.waitForState('t1', 'RUNNING');
  assert.equal((await r.runtime.inspect(id)).status, 'running');
});

test('desired SHUTDOWN stops the running container with the spec’s signal and grace and ends in SHUTDOWN', async (t) => {
  const r = await rig(t);
  const task = makeTask('t1', { stopSignal: 'SIGUSR1', stopGracePeriodMs: 1234 });
  await r.worker.assign([task]);
  await r.reporter.waitForState('t1', 'RUNNING');
  const id = containerIdFor('t1');
  assert.equal(r.runtime.containers.get(id)?.spec.stopSignal, 'SIGUSR1');
  assert.equal(r.runtime.containers.get(id)?.spec.stopGraceMs, 1234);
  await r.worker.update([{ action: 'UPDATE', task: withDesired(task, 'SHUTDOWN') }]);
  const shut = await r.reporter.waitForState('t1', 'SHUTDOWN');
  assert.equal(shut.container?.exitCode, 143);
  assert.ok(r.runtime.calls.includes(`stop ${id}`));
  assert.deepEqual(r.reporter.states('t1'), [...LIFECYCLE, 'SHUTDOWN']);
  assert.ok(r.runtime.containers.has(id), 'a shut-down task keeps its container until removed');
});

test('desired SHUTDOWN before the task started goes straight to SHUTDOWN', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('t1', {}, 'SHUTDOWN')]);
  await r.reporter.waitForState('t1', 'SHUTDOWN');
  assert.deepEqual(r.reporter.states('t1'), ['ASSIGNED', 'SHUTDOWN']);
  assert.equal(r.runtime.containers.size, 0);
});

test('desired REMOVE shuts the task down and removes its container', async (t) => {
  const r = await rig(t);
  const task = makeTask('t1');
  await r.worker.assign([task]);
  await r.reporter.waitForState('t1', 'RUNNING');
  await r.worker.assign([withDesired(task, 'REMOVE')]);
  await r.reporter.waitForState('t1', 'SHUTDOWN');
  const id = containerIdFor('t1');
  await waitFor('the container removed', () => !r.runtime.containers.has(id));
  await waitFor('the rootfs released', () => r.images.released.includes(id));
});

test('a stale copy from the manager never moves the observed state back', async (t) => {
  const r = await rig(t);
  const task = makeTask('t1');
  await r.worker.assign([task]);
  await r.reporter.waitForState('t1', 'RUNNING');
  const reports = r.reporter.history.length;
  await r.worker.assign([task]); // the manager still thinks ASSIGNED
  assert.equal(r.worker.status('t1')?.state, 'RUNNING');
  assert.equal(r.reporter.latest('t1')?.state, 'RUNNING');
  assert.ok(r.reporter.history.length > reports, 'the lagging manager is told the real state again');
});

test('a COMPLETE set without a task removes its container, rootfs, network and record', async (t) => {
  const r = await rig(t);
  await r.worker.assign([onNetwork(makeTask('t1')), onNetwork(makeTask('t2'))]);
  await r.reporter.waitForState('t1', 'RUNNING');
  await r.reporter.waitForState('t2', 'RUNNING');
  await r.worker.assign([makeTask('t2')]);
  await r.worker.settled();
  const id1 = containerIdFor('t1');
  assert.ok(!r.runtime.containers.has(id1));
  assert.ok(r.runtime.calls.indexOf(`stop ${id1}`) < r.runtime.calls.indexOf(`remove ${id1}`), 'stopped gracefully before removal');
  assert.ok(r.images.released.includes(id1));
  assert.ok(r.network.released.includes(id1));
  assert.ok(r.runtime.containers.has(containerIdFor('t2')));
  assert.deepEqual(r.worker.list().map((x) => x.task.id), ['t2']);
  const file = JSON.parse(await readFile(join(r.dir, 'tasks.json'), 'utf8')) as { tasks: Array<{ task: { id: string } }> };
  assert.deepEqual(file.tasks.map((x) => x.task.id), ['t2']);
});

test('INCREMENTAL REMOVE removes the task; an increment that does not follow the set is refused', async (t) => {
  const r = await rig(t);
  const task = makeTask('t1');
  await r.worker.applyAssignments({ type: 'COMPLETE', appliesTo: '', resultsIn: 'v1', changes: [{ action: 'UPDATE', task }] });
  await r.reporter.waitForState('t1', 'RUNNING');
  await assert.rejects(r.worker.applyAssignments({ type: 'INCREMENTAL', appliesTo: 'v7', resultsIn: 'v8', changes: [] }), AssignmentGapError);
  await r.worker.applyAssignments({ type: 'INCREMENTAL', appliesTo: 'v1', resultsIn: 'v2', changes: [{ action: 'REMOVE', task }] });
  await r.worker.settled();
  assert.equal(r.runtime.containers.size, 0);
  assert.deepEqual(r.worker.list(), []);
});

test('a container labelled as a task nobody assigns is removed by the next COMPLETE set', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('ghost')]);
  await r.reporter.waitForState('ghost', 'RUNNING');
  // The task file is lost: a fresh worker over an empty dir, the same runtime.
  const other = new Worker({ dataDir: join(r.dir, 'other'), runtime: r.runtime, images: r.images, network: r.network, reporter: r.reporter });
  t.after(() => other.close());
  await r.worker.close();
  await other.init();
  await other.assign([]);
  await other.settled();
  assert.equal(r.runtime.containers.size, 0);
  assert.ok(r.images.released.includes(containerIdFor('ghost')));
});

test('a new worker over the same data dir re-attaches to the running container and reports RUNNING', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('t1')]);
  const before = await r.reporter.waitForState('t1', 'RUNNING');
  await r.worker.close();
  const creates = r.runtime.calls.filter((c) => c.startsWith('create') || c.startsWith('start')).length;
  const reports = r.reporter.history.length;
  const again = await r.newWorker();
  assert.equal(again.status('t1')?.state, 'RUNNING');
  assert.equal(r.reporter.history.length, reports + 1);
  assert.equal(r.reporter.latest('t1')?.state, 'RUNNING');
  assert.equal(r.reporter.latest('t1')?.container?.pid, before.container?.pid);
  assert.equal(r.runtime.calls.filter((c) => c.startsWith('create') || c.startsWith('start')).length, creates, 'nothing created or started again');
  // And it still watches the container.
  r.runtime.exit(containerIdFor('t1'), 0);
  await r.reporter.waitForState('t1', 'COMPLETE');
});

test('a container that exited while no worker ran is reported with its exit after the restart', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('t1')]);
  await r.reporter.waitForState('t1', 'RUNNING');
  await r.worker.close();
  r.runtime.exit(containerIdFor('t1'), 9);
  await r.newWorker();
  const failed = await r.reporter.waitForState('t1', 'FAILED');
  assert.equal(failed.container?.exitCode, 9);
});

test('an unhealthy container is stopped and the task fails', async (t) => {
  const r = await rig(t);
  r.runtime.execResult = { exitCode: 1, stdout: 'down', stderr: '', timedOut: false };
  await r.worker.assign([makeTask('t1', { healthcheck: { test: ['CMD', 'check'], intervalMs: 10, timeoutMs: 1000, retries: 2, startPeriodMs: 0 } })]);
  const failed = await r.reporter.waitForState('t1', 'FAILED');
  assert.equal(failed.err, 'task: unhealthy container');
  assert.equal(failed.health, 'unhealthy');
  const healths = r.reporter.statuses('t1').filter((s) => s.state === 'RUNNING').map((s) => s.health);
  assert.deepEqual([...new Set(healths)], ['', 'starting', 'unhealthy']);
  assert.ok(r.runtime.calls.includes(`stop ${containerIdFor('t1')}`));
});

test('a healthy container reports healthy and keeps running; the image’s check is used when the spec has none', async (t) => {
  const r = await rig(t);
  r.images.images.set('checked:1', { id: 'sha256:checked', config: { Cmd: ['sh'], Healthcheck: { Test: ['CMD-SHELL', 'true'], Interval: 10e6, Retries: 1 } } });
  await r.worker.assign([makeTask('t1', { image: 'checked:1' }), makeTask('t2', { image: 'checked:1', healthcheck: { test: ['NONE'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0 } })]);
  await r.reporter.waitFor('t1', (s) => s.health === 'healthy');
  await r.reporter.waitForState('t2', 'RUNNING');
  assert.equal(r.worker.status('t1')?.state, 'RUNNING');
  assert.equal(r.worker.status('t2')?.health, '', 'NONE in the spec turns the image’s check off');
});

test('a crash between starting the container and recording RUNNING: the restart finds it running, starts nothing', async (t) => {
  const r = await rig(t);
  await r.worker.assign([makeTask('t1')]);
  const running = await r.reporter.waitForState('t1', 'RUNNING');
  await r.worker.close();
  // Rewind the record to STARTING, as if the agent died right after `start`.
  const path = join(r.dir, 'tasks.json');
  const file = JSON.parse(await readFile(path, 'utf8')) as { tasks: Array<{ status: { state: string } }> };
  for (const rec of file.tasks) rec.status.state = 'STARTING';
  await writeFile(path, JSON.stringify(file));
  const starts = r.runtime.calls.filter((c) => c.startsWith('start')).length;
  await r.newWorker();
  const again = await r.reporter.waitFor('t1', (s) => s.state === 'RUNNING' && s !== running);
  assert.equal(again.container?.pid, running.container?.pid);
  assert.equal(r.runtime.calls.filter((c) => c.startsWith('start')).length, starts);
});
