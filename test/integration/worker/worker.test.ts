// The worker with real containers: runc + conmon, the image store's overlay root filesystems,
// a network namespace per task. Each test drives tasks the way the dispatcher's assignments would.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NoSuchContainerError } from '../../../agent/runtime/runtime.js';
import { containerIdFor } from '../../../agent/worker/naming.js';
import type { Task, TaskState } from '../../../proto/gen/objects.js';
import { logLines } from '../runtime/harness.js';
import { makeTask, onNetwork, withDesired } from '../../unit/worker/tasks.js';
import { waitFor } from '../../support/wait.js';
import type { WorkerProcessRequest } from './fixtures/worker-process.js';
import { disposeImageStore, mountsUnder, netnsWithPrefix, setupWorker } from './harness.js';

const WORKER_PROCESS = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'worker-process.js');

after(disposeImageStore);

const LIFECYCLE: TaskState[] = ['ASSIGNED', 'ACCEPTED', 'PREPARING', 'READY', 'STARTING', 'RUNNING'];

function shellTask(id: string, script: string, extra: Parameters<typeof makeTask>[1] = {}): Task {
  return makeTask(id, { command: ['sh', '-c', script], ...extra });
}

test('a task that exits 0 goes ASSIGNED → … → RUNNING → COMPLETE, in its own netns with loopback up', async (t) => {
  const f = await setupWorker(t);
  // On no network: the namespace is the one runc makes (no named one from the attacher).
  await f.worker.assign([shellTask('ok1', 'echo hi; ip -o link show lo; readlink /proc/self/ns/net; exit 0')]);
  const done = await f.reporter.waitForState('ok1', 'COMPLETE');
  assert.deepEqual(f.reporter.states('ok1'), [...LIFECYCLE, 'COMPLETE']);
  assert.equal(done.container?.exitCode, 0);
  const id = containerIdFor('ok1');
  assert.equal(done.container?.containerId, id);
  const lines = await logLines(f.runtime, id);
  assert.equal(lines[0], 'hi');
  assert.match(lines[1] ?? '', /lo: <LOOPBACK,UP/);
  assert.match(lines[2] ?? '', /^net:\[\d+\]$/);
  assert.notEqual(lines[2], readlinkSync('/proc/self/ns/net'), 'not the host namespace');
  assert.deepEqual(await netnsWithPrefix(f.netnsPrefix), [], 'no named namespace for a task on no network');
  const info = await f.runtime.inspect(id);
  assert.equal(info.name, 'web.1.ok1');
  assert.equal(info.labels['shoal.task.id'], 'ok1');
});

test('a non-zero exit: FAILED with the exit code', async (t) => {
  const f = await setupWorker(t);
  await f.worker.assign([shellTask('bad1', 'exit 3')]);
  const failed = await f.reporter.waitForState('bad1', 'FAILED');
  assert.equal(failed.container?.exitCode, 3);
  assert.equal(failed.err, 'task: non-zero exit (3)');
  assert.deepEqual(f.reporter.states('bad1'), [...LIFECYCLE, 'FAILED']);
});

test('an image the node does not have: REJECTED with "No such image"', async (t) => {
  const f = await setupWorker(t);
  await f.worker.assign([makeTask('img1', { image: 'nosuch:1.0' })]);
  const rejected = await f.reporter.waitForState('img1', 'REJECTED');
  assert.equal(rejected.err, 'No such image: nosuch:1.0');
});

test('desired SHUTDOWN stops a long-running task with its stop signal → SHUTDOWN', async (t) => {
  const f = await setupWorker(t);
  // pid 1 ignores signals it has no handler for: the trap proves SIGUSR1 (the spec's) arrived.
  const task = onNetwork(shellTask('stop1', "trap 'exit 7' USR1; sleep 1000 & wait", { stopSignal: 'USR1' }));
  await f.worker.assign([task]);
  await f.reporter.waitForState('stop1', 'RUNNING');
  await f.worker.assign([withDesired(task, 'SHUTDOWN')]);
  const shut = await f.reporter.waitForState('stop1', 'SHUTDOWN');
  assert.equal(shut.container?.exitCode, 7);
  assert.equal((await f.runtime.inspect(containerIdFor('stop1'))).status, 'exited');
  assert.deepEqual(await netnsWithPrefix(f.netnsPrefix), [], 'the network namespace is released');
});

test('a COMPLETE set without the task removes its container, rootfs mount and netns', async (t) => {
  const f = await setupWorker(t);
  await f.worker.assign([onNetwork(shellTask('gone1', 'sleep 1000', { stopGracePeriodMs: 200 }))]);
  await f.reporter.waitForState('gone1', 'RUNNING');
  const id = containerIdFor('gone1');
  assert.equal((await mountsUnder(f.dataDir)).length, 1, 'the rootfs is mounted');
  assert.equal((await netnsWithPrefix(f.netnsPrefix)).length, 1);
  await f.worker.assign([]);
  await f.worker.settled();
  await assert.rejects(f.runtime.inspect(id), NoSuchContainerError);
  assert.deepEqual(await mountsUnder(f.dataDir), []);
  assert.deepEqual(await netnsWithPrefix(f.netnsPrefix), []);
  assert.deepEqual(f.worker.list(), []);
});

test('a restarted worker re-attaches to the running container (same pid) and reports RUNNING', async (t) => {
  const f = await setupWorker(t);
  await f.worker.assign([shellTask('live1', "trap 'exit 0' TERM; sleep 1000 & wait")]);
  const running = await f.reporter.waitForState('live1', 'RUNNING');
  const id = containerIdFor('live1');
  const pid = (await f.runtime.inspect(id)).pid;
  assert.ok(pid !== undefined && pid > 0);
  assert.equal(running.container?.pid, pid);
  await f.worker.close();
  const reports = f.reporter.history.length;

  const again = await f.restart();
  assert.equal(again.status('live1')?.state, 'RUNNING');
  const after = f.reporter.history.slice(reports);
  assert.deepEqual(after.map((u) => `${u.taskId}:${u.status?.state}`), ['live1:RUNNING']);
  const info = await f.runtime.inspect(id);
  assert.equal(info.status, 'running');
  assert.equal(info.pid, pid, 'the same process: nothing was restarted');
  // The new worker is really watching: shutting the task down goes through it.
  await again.assign([withDesired(makeTask('live1', { command: ['sh', '-c', "trap 'exit 0' TERM; sleep 1000 & wait"] }), 'SHUTDOWN')]);
  const shut = await f.reporter.waitForState('live1', 'SHUTDOWN');
  assert.equal(shut.container?.exitCode, 0);
});

test('an unhealthy container is stopped and its task FAILED', async (t) => {
  const f = await setupWorker(t);
  await f.worker.assign([
    shellTask('sick1', "trap 'exit 0' TERM; sleep 1000 & wait", {
      healthcheck: { test: ['CMD-SHELL', 'test -e /tmp/never'], intervalMs: 100, timeoutMs: 5000, retries: 2, startPeriodMs: 0 },
    }),
  ]);
  const failed = await f.reporter.waitForState('sick1', 'FAILED');
  assert.equal(failed.err, 'task: unhealthy container');
  assert.equal(failed.health, 'unhealthy');
  assert.equal(failed.container?.exitCode, 0, 'stopped with its stop signal, not killed');
  assert.equal((await f.runtime.inspect(containerIdFor('sick1'))).status, 'exited');
});

test('after the agent process is SIGKILLed, a new worker finds the task running in the same process', async (t) => {
  const f = await setupWorker(t);
  await f.worker.close(); // the crashing process owns the data dir until it dies
  const task = shellTask('crash1', "trap 'exit 0' TERM; sleep 1000 & wait");
  const request: WorkerProcessRequest = { root: f.root, cgroupParent: f.cgroupParent, dataDir: f.dataDir, storeRoot: f.storeRoot, netnsPrefix: f.netnsPrefix, task };
  const child = spawn(process.execPath, [WORKER_PROCESS, JSON.stringify(request)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<string | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const runningLine = await waitFor('the worker process to report RUNNING', () => {
    if (child.exitCode !== null) throw new Error(`worker process exited: ${err}`);
    return out.split('\n').find((l) => l.includes('"RUNNING"'));
  });
  const reportedPid = (JSON.parse(runningLine) as { pid: number }).pid;
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');

  const id = containerIdFor('crash1');
  assert.equal((await f.runtime.inspect(id)).pid, reportedPid, 'the container outlived its agent');
  const again = await f.restart();
  assert.equal(again.status('crash1')?.state, 'RUNNING');
  assert.equal(f.reporter.latest('crash1')?.state, 'RUNNING');
  assert.equal(f.reporter.latest('crash1')?.container?.pid, reportedPid);
  assert.equal((await f.runtime.inspect(id)).pid, reportedPid, 'not restarted');
  // Removing it through the new worker cleans up what the dead one made.
  await again.assign([]);
  await again.settled();
  await assert.rejects(f.runtime.inspect(id), NoSuchContainerError);
  assert.deepEqual(await mountsUnder(f.dataDir), []);
  assert.deepEqual(await netnsWithPrefix(f.netnsPrefix), []);
});

test('desired READY: prepared, container created but not started, until desired RUNNING', async (t) => {
  const f = await setupWorker(t);
  const task = withDesired(shellTask('later1', 'exit 0'), 'READY');
  await f.worker.assign([task]);
  await f.reporter.waitForState('later1', 'READY');
  const id = containerIdFor('later1');
  assert.equal((await f.runtime.inspect(id)).status, 'created');
  await f.worker.assign([task]);
  assert.equal(f.worker.status('later1')?.state, 'READY');
  await f.worker.assign([withDesired(task, 'RUNNING')]);
  await f.reporter.waitForState('later1', 'COMPLETE');
  assert.deepEqual(f.reporter.states('later1'), [...LIFECYCLE, 'COMPLETE']);
});
