// A task and service discovery, driven through one TaskController with fakes: a task serves (gets
// traffic by its service's name and VIP) once it runs, or once healthy when it has a health check;
// before its container is stopped it is withdrawn, then traffic drains, and only then the stop.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { TaskController } from '../../../agent/worker/controller.js';
import { containerIdFor } from '../../../agent/worker/naming.js';
import type { Task, TaskStatus } from '../../../proto/gen/objects.js';
import { waitFor } from '../../support/wait.js';
import { FakeImages, FakeNetwork, FakeRuntime } from './fakes.js';
import { makeTask, onNetwork, withDesired } from './tasks.js';

/** A network attacher with service discovery: records each change in the runtime's call log. */
class ServingNetwork extends FakeNetwork {
  private readonly serving = new Map<string, boolean>();

  constructor(private readonly log: string[]) {
    super();
  }

  async setServing(_task: Task, containerId: string, serving: boolean): Promise<boolean> {
    const was = this.serving.get(containerId) ?? false;
    if (was === serving) return false;
    this.serving.set(containerId, serving);
    this.log.push(`serving ${serving} ${containerId}`);
    return was;
  }
}

interface Rig {
  runtime: FakeRuntime;
  controller: TaskController;
  states: string[];
  /** Drains begun; each waits until the test calls the function. */
  drains: Array<() => void>;
}

async function rig(t: TestContext, task: Task): Promise<Rig> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-serving-unit-'));
  const runtime = new FakeRuntime();
  const network = new ServingNetwork(runtime.calls);
  const states: string[] = [];
  const drains: Array<() => void> = [];
  const controller = new TaskController(
    {
      runtime,
      images: new FakeImages(),
      network,
      rootfsDir: join(dir, 'rootfs'),
      onStatus: async (_task: Task, status: TaskStatus) => {
        states.push(status.health ? `${status.state}/${status.health}` : status.state);
      },
      now: () => Date.now(),
      log: () => {},
      drain: () =>
        new Promise<void>((resolve) => {
          runtime.calls.push('drain');
          drains.push(resolve);
        }),
    },
    task,
    task.status!,
  );
  t.after(async () => {
    for (const release of drains) release();
    await controller.close();
    await rm(dir, { recursive: true, force: true });
  });
  controller.start();
  return { runtime, controller, states, drains };
}

const cid = containerIdFor('t1');
/** Checked every 10 ms, unhealthy after one failure. */
const HEALTH = { test: ['CMD', 'check'], intervalMs: 10, timeoutMs: 1000, retries: 1, startPeriodMs: 0 };

test('a running task serves; on shutdown it is withdrawn, traffic drains, and only then is its container stopped', async (t) => {
  const task = onNetwork(makeTask('t1'));
  const r = await rig(t, task);
  await waitFor('the task to serve', () => r.runtime.calls.includes(`serving true ${cid}`));
  assert.ok(r.states.includes('RUNNING'));
  assert.ok(r.runtime.calls.indexOf(`start ${cid}`) < r.runtime.calls.indexOf(`serving true ${cid}`), 'served only once started');

  r.controller.update(withDesired(task, 'SHUTDOWN'));
  await waitFor('the drain to begin', () => r.drains.length === 1);
  assert.equal(r.runtime.calls.includes(`stop ${cid}`), false, 'no stop signal while traffic drains');
  r.drains[0]!();
  await waitFor('the task to shut down', () => r.states.includes('SHUTDOWN'));
  assert.deepEqual(r.runtime.calls.filter((c) => !c.startsWith('create') && !c.startsWith('start')), [`serving true ${cid}`, `serving false ${cid}`, 'drain', `stop ${cid}`]);
});

test('a task that never served is stopped without a drain', async (t) => {
  const task = onNetwork(makeTask('t1', {}, 'READY'));
  const r = await rig(t, task);
  await waitFor('the task prepared', () => r.states.includes('READY'));
  r.controller.update(withDesired(task, 'SHUTDOWN'));
  await waitFor('the task to shut down', () => r.states.includes('SHUTDOWN'));
  assert.equal(r.drains.length, 0);
  assert.equal(r.runtime.calls.some((c) => c.startsWith('serving true')), false);
});

test('with a health check a task serves once healthy, and is withdrawn when unhealthy before its stop', async (t) => {
  const task = onNetwork(makeTask('t1', { healthcheck: HEALTH }));
  const r = await rig(t, task);
  await waitFor('the task healthy and serving', () => r.states.includes('RUNNING/healthy') && r.runtime.calls.includes(`serving true ${cid}`));
  r.runtime.execResult = { exitCode: 1, stdout: '', stderr: 'down', timedOut: false };
  await waitFor('the task failed as unhealthy', () => r.states.includes('FAILED/unhealthy'));
  const calls = r.runtime.calls;
  assert.ok(calls.indexOf(`serving false ${cid}`) >= 0 && calls.indexOf(`serving false ${cid}`) < calls.indexOf(`stop ${cid}`), `withdrawn before the stop: ${calls.join(', ')}`);
});

test('a task whose health check never passes never serves', async (t) => {
  const task = onNetwork(makeTask('t1', { healthcheck: HEALTH }));
  const r = await rig(t, task);
  r.runtime.execResult = { exitCode: 1, stdout: '', stderr: 'down', timedOut: false };
  await waitFor('the task failed as unhealthy', () => r.states.includes('FAILED/unhealthy'));
  assert.equal(r.runtime.calls.some((c) => c.startsWith('serving true')), false, r.runtime.calls.join(', '));
});
