// One task's life on this node, swarmkit's agent/exec design: a loop that looks at the task's
// observed state and desired state, performs the one step that moves it forward, records the new
// status, and sleeps when there is nothing to do until the task changes, its container exits or
// its health check says something.
//
//   ASSIGNED → ACCEPTED (spec validated) → PREPARING → READY (image, network, rootfs, container
//   created) → STARTING → RUNNING → COMPLETE (exit 0) | FAILED (non-zero exit, unhealthy)
//
// Any error before STARTING rejects the task (REJECTED), after it fails it (FAILED). A desired
// state of SHUTDOWN or beyond stops the container (stop signal, grace period, SIGKILL) and ends
// in SHUTDOWN; desired REMOVE also removes the container. A task desired READY is prepared and
// then waits, container created but not started, until it is desired RUNNING.
import { join } from 'node:path';
import type { Task, TaskState, TaskStatus } from '../../proto/gen/objects.js';
import { HealthMonitor, type HealthStatus } from '../runtime/health.js';
import { NoSuchContainerError, type ContainerInfo, type Runtime } from '../runtime/runtime.js';
import { healthCheckFor, toRuntimeSpec, validateTask, type ImageInfo } from './containerspec.js';
import type { ImageProvider } from './images.js';
import { containerIdFor } from './naming.js';
import type { NetworkAttacher } from './network.js';
import { atLeast, before, failureState, isTerminal } from './states.js';

export interface ControllerDeps {
  runtime: Runtime;
  images: ImageProvider;
  network: NetworkAttacher;
  /** Where container root filesystems are mounted: `<rootfsDir>/<container id>`. */
  rootfsDir: string;
  /** Persists and reports a new status; called in order, one at a time. */
  onStatus(task: Task, status: TaskStatus): Promise<void>;
  now(): number;
  log(message: string, fields: Record<string, unknown>): void;
}

/** Resolves waiters once something has changed since the generation they saw. */
class Wakeup {
  private gen = 0;
  private waiters: Array<() => void> = [];

  get generation(): number {
    return this.gen;
  }

  notify(): void {
    this.gen++;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  wait(since: number): Promise<void> {
    if (this.gen !== since) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

export const UNHEALTHY_ERROR = 'task: unhealthy container';

export function exitError(exitCode: number, oomKilled: boolean | undefined): string {
  return `task: non-zero exit (${exitCode})${oomKilled ? ': the container was killed for running out of memory' : ''}`;
}

export class TaskController {
  readonly containerId: string;
  private task: Task;
  private status: TaskStatus;
  private readonly wake = new Wakeup();
  private closed = false;
  private loop: Promise<void> | undefined;
  private emitting: Promise<void> = Promise.resolve();
  private image: ImageInfo | undefined;
  private health: HealthMonitor | undefined;
  private healthResolved = false;
  private unhealthy = false;
  private containerRemoved = false;

  constructor(
    private readonly deps: ControllerDeps,
    task: Task,
    status: TaskStatus,
  ) {
    this.task = task;
    this.status = status;
    this.containerId = containerIdFor(task.id);
  }

  get taskId(): string {
    return this.task.id;
  }

  snapshot(): { task: Task; status: TaskStatus } {
    return { task: this.task, status: this.status };
  }

  /** Starts driving the task. */
  start(): void {
    this.loop ??= this.run();
  }

  /** A newer copy of the task from the manager: its desired state (and spec) count, its status does not. */
  update(task: Task): void {
    if (task.id !== this.task.id) throw new Error(`controller of task ${this.task.id} cannot take task ${task.id}`);
    this.task = task;
    this.wake.notify();
  }

  /** Stops driving the task; its container is left as it is (an agent shutting down or restarting). */
  async close(): Promise<void> {
    this.closed = true;
    this.stopHealth();
    this.wake.notify();
    await this.loop;
    await this.emitting;
  }

  /**
   * The task left this node's assignments: stop its container gracefully if it still runs, then
   * remove the container, its root filesystem and its network. Nothing more is reported.
   */
  async remove(): Promise<void> {
    await this.close();
    const info = await this.inspect();
    if (info && (info.status === 'running' || info.status === 'paused' || info.status === 'created')) {
      await this.deps.runtime.stop(this.containerId).catch((err: unknown) => this.deps.log('stopping the container of a removed task failed', { task: this.task.id, err: String(err) }));
    }
    await this.removeContainer();
  }

  // ---- the loop ----

  private async run(): Promise<void> {
    while (!this.closed) {
      const gen = this.wake.generation;
      let acted: boolean;
      try {
        acted = await this.step(gen);
      } catch (err) {
        acted = await this.fail(err);
      }
      if (!acted && !this.closed) await this.wake.wait(gen);
    }
  }

  /** Performs one step; false when there is nothing to do until something changes. */
  private async step(gen: number): Promise<boolean> {
    const state = this.status.state;
    const desired = this.task.desiredState;
    if (atLeast(desired, 'SHUTDOWN')) {
      if (!isTerminal(state)) {
        await this.shutdown();
        return true;
      }
      if (atLeast(desired, 'REMOVE') && !this.containerRemoved) await this.removeContainer();
      return false;
    }
    if (isTerminal(state)) return false;
    switch (state) {
      case 'NEW':
      case 'PENDING':
      case 'ASSIGNED':
        validateTask(this.task);
        await this.transition('ACCEPTED', 'accepted');
        return true;
      case 'ACCEPTED':
        await this.transition('PREPARING', 'preparing');
        return true;
      case 'PREPARING':
        await this.prepare();
        await this.transition('READY', 'prepared', { container: { containerId: this.containerId, pid: 0, exitCode: 0 } });
        return true;
      case 'READY':
        if (before(desired, 'RUNNING')) return false;
        await this.transition('STARTING', 'starting');
        return true;
      case 'STARTING': {
        const pid = await this.startContainer();
        await this.transition('RUNNING', 'started', { container: { containerId: this.containerId, pid, exitCode: 0 } });
        return true;
      }
      case 'RUNNING':
        return this.whileRunning(gen);
      default:
        return false;
    }
  }

  private async prepare(): Promise<void> {
    const ref = this.task.spec?.container?.image ?? '';
    this.image = await this.deps.images.ensure(ref);
    const network = await this.deps.network.prepare(this.task, this.containerId);
    const rootfs = await this.deps.images.prepareRootfs(ref, this.containerId, join(this.deps.rootfsDir, this.containerId));
    const existing = await this.inspect();
    if (existing) {
      // Prepared before an agent restart: a created (or already running) container is the one.
      if (existing.status === 'created' || existing.status === 'running') return;
      await this.deps.runtime.remove(this.containerId, { force: true });
    }
    await this.deps.runtime.create(toRuntimeSpec(this.task, { containerId: this.containerId, rootfs, image: this.image, network }));
  }

  /** Starts the created container (or finds it started already, after a restart); returns its pid. */
  private async startContainer(): Promise<number> {
    const info = await this.inspect();
    if (!info) throw new Error(`container ${this.containerId} of task ${this.task.id} is gone`);
    if (info.status === 'created') await this.deps.runtime.start(this.containerId);
    const after = await this.deps.runtime.inspect(this.containerId);
    return after.pid ?? 0;
  }

  /** Waits for the container to exit, an unhealthy verdict, or a change of the task. */
  private async whileRunning(gen: number): Promise<boolean> {
    if (this.unhealthy) {
      this.stopHealth();
      const exit = await this.deps.runtime.stop(this.containerId);
      await this.deps.network.release(this.task, this.containerId);
      await this.transition('FAILED', 'unhealthy container', {
        err: UNHEALTHY_ERROR,
        container: { containerId: this.containerId, pid: 0, exitCode: exit.exitCode },
      });
      return true;
    }
    await this.startHealth();
    const woken = new AbortController();
    void this.wake.wait(gen).then(() => woken.abort());
    let exitCode: number;
    try {
      exitCode = (await this.deps.runtime.wait(this.containerId, { signal: woken.signal })).exitCode;
    } catch (err) {
      if (woken.signal.aborted) return true; // something changed: look again
      if (err instanceof NoSuchContainerError) throw new Error(`container ${this.containerId} of task ${this.task.id} is gone`);
      throw err;
    }
    woken.abort();
    this.stopHealth();
    const info = await this.inspect();
    await this.deps.network.release(this.task, this.containerId);
    const container = { containerId: this.containerId, pid: 0, exitCode };
    if (exitCode === 0) await this.transition('COMPLETE', 'finished', { container });
    else await this.transition('FAILED', 'failed', { err: exitError(exitCode, info?.oomKilled), container });
    return true;
  }

  private async shutdown(): Promise<void> {
    this.stopHealth();
    const info = await this.inspect();
    let exitCode = this.status.container?.exitCode ?? 0;
    if (info) {
      if (info.status === 'exited') exitCode = info.exitCode ?? exitCode;
      else exitCode = (await this.deps.runtime.stop(this.containerId)).exitCode;
    }
    await this.deps.network.release(this.task, this.containerId);
    await this.transition('SHUTDOWN', 'shutdown', info ? { container: { containerId: this.containerId, pid: 0, exitCode } } : {});
  }

  private async removeContainer(): Promise<void> {
    this.containerRemoved = true;
    try {
      await this.deps.runtime.remove(this.containerId, { force: true });
    } catch (err) {
      if (!(err instanceof NoSuchContainerError)) throw err;
    }
    await this.deps.images.releaseRootfs(this.containerId);
    await this.deps.network.release(this.task, this.containerId);
  }

  /** A step failed: the task is REJECTED (before STARTING) or FAILED, with the error as its err. */
  private async fail(err: unknown): Promise<boolean> {
    if (this.closed) return false;
    const state = this.status.state;
    const message = err instanceof Error ? err.message : String(err);
    this.deps.log('task step failed', { task: this.task.id, state, err: message });
    if (isTerminal(state)) {
      // A failed removal or shutdown of a finished task: nothing left to report; try again on the next change.
      return false;
    }
    this.stopHealth();
    await this.deps.network.release(this.task, this.containerId).catch(() => undefined);
    const next = failureState(state);
    await this.transition(next, next === 'REJECTED' ? 'rejected' : 'failed', { err: message });
    return true;
  }

  // ---- health ----

  private async startHealth(): Promise<void> {
    if (this.healthResolved) return;
    this.healthResolved = true;
    if (!this.image && !this.task.spec?.container?.healthcheck?.test.length) {
      // After an agent restart: the image's own health check needs the image's config again.
      this.image = await this.deps.images.ensure(this.task.spec?.container?.image ?? '').catch(() => undefined);
    }
    const config = healthCheckFor(this.task, this.image);
    if (!config || this.closed) return;
    const monitor = new HealthMonitor((argv, options) => this.deps.runtime.exec(this.containerId, argv, options), config);
    monitor.on('status', (h) => this.onHealth(monitor, h));
    this.health = monitor;
    monitor.start();
  }

  private stopHealth(): void {
    this.health?.stop();
    this.health = undefined;
  }

  private onHealth(monitor: HealthMonitor, health: HealthStatus): void {
    if (monitor !== this.health || this.closed || this.status.state !== 'RUNNING') return;
    this.status = { ...this.status, health, timestamp: this.deps.now() };
    void this.emit();
    if (health === 'unhealthy') {
      this.unhealthy = true;
      this.wake.notify();
    }
  }

  // ---- status ----

  private async inspect(): Promise<ContainerInfo | undefined> {
    try {
      return await this.deps.runtime.inspect(this.containerId);
    } catch (err) {
      if (err instanceof NoSuchContainerError) return undefined;
      throw err;
    }
  }

  private async transition(state: TaskState, message: string, extra: Partial<Pick<TaskStatus, 'err' | 'container'>> = {}): Promise<void> {
    if (before(state, this.status.state)) {
      // Observed state never moves back; a step that would do so is a bug worth seeing in the log.
      this.deps.log('refused a backward task state change', { task: this.task.id, from: this.status.state, to: state });
      return;
    }
    this.status = {
      ...this.status,
      state,
      message,
      err: extra.err ?? '',
      timestamp: this.deps.now(),
      ...(extra.container !== undefined ? { container: extra.container } : {}),
    };
    await this.emit();
  }

  private emit(): Promise<void> {
    const task = this.task;
    const status = this.status;
    this.emitting = this.emitting
      .then(() => this.deps.onStatus(task, status))
      .catch((err: unknown) => this.deps.log('recording a task status failed', { task: task.id, state: status.state, err: String(err) }));
    return this.emitting;
  }
}
