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
import { performance } from 'node:perf_hooks';
import type { Task, TaskState, TaskStatus } from '../../proto/gen/objects.js';
import { HealthMonitor, type HealthStatus } from '../runtime/health.js';
import { NoSuchContainerError, runExec, type ContainerInfo, type Runtime } from '../runtime/runtime.js';
import { healthCheckFor, toRuntimeSpec, validateTask, type ImageInfo } from './containerspec.js';
import { configsDirBeside, removeTaskConfigs, writeTaskConfigs } from './configs.js';
import type { ImageProvider } from './images.js';
import { containerIdFor } from './naming.js';
import type { Limiter, Priority } from './limiter.js';
import type { NetworkAttacher } from './network.js';
import { needsNetwork } from './network.js';
import { atLeast, before, failureState, isTerminal } from './states.js';
import { trace } from './trace.js';

export interface ControllerDeps {
  runtime: Runtime;
  images: ImageProvider;
  network: NetworkAttacher;
  /** Where container root filesystems are mounted: `<rootfsDir>/<container id>`. */
  rootfsDir: string;
  /** Bounds how many tasks prepare or start at once on the node; none: no bound. */
  limiter?: Limiter;
  /** Persists and reports a new status; called in order, one at a time. */
  onStatus(task: Task, status: TaskStatus): Promise<void>;
  now(): number;
  log(message: string, fields: Record<string, unknown>): void;
  /** Waits while traffic to a task just withdrawn from service discovery drains; default SERVICE_DRAIN_MS. */
  drain?(): Promise<void>;
}

/**
 * How long a task withdrawn from service discovery keeps running before its stop signal: time for
 * every host to see the peer-table change (a KV watch) and drop the task from its DNS answers and
 * VIP load balancers, so no new request reaches a process about to stop. Docker waits the same way
 * (swarmkit's container controller: deactivate the service binding, then a 2 s converge delay).
 */
export const SERVICE_DRAIN_MS = 2000;

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
  /** This controller created the container and has not started it yet. */
  private createdHere = false;
  /** What this controller last told service discovery (see markServing). */
  private serving = false;
  private servingChain: Promise<void> = Promise.resolve();

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
      await this.withdraw();
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
      case 'PREPARING': {
        // The image first, outside the bound: a pull waits on the network, not on this host's CPUs.
        const image = await this.timed('image', () => this.deps.images.ensure(this.task.spec?.container?.image ?? ''));
        this.image = image;
        await this.limited('normal', () => this.prepare(image));
        await this.transition('READY', 'prepared', { container: { containerId: this.containerId, pid: 0, exitCode: 0 } });
        return true;
      }
      case 'READY':
        if (before(desired, 'RUNNING')) return false;
        await this.transition('STARTING', 'starting');
        return true;
      case 'STARTING': {
        const pid = await this.limited('high', () => this.startContainer());
        await this.transition('RUNNING', 'started', { container: { containerId: this.containerId, pid, exitCode: 0 } });
        return true;
      }
      case 'RUNNING':
        return this.whileRunning(gen);
      default:
        return false;
    }
  }

  private async prepare(image: ImageInfo): Promise<void> {
    const ref = this.task.spec?.container?.image ?? '';
    // A task on no network and publishing no host port gets the fresh namespace runc makes (with
    // loopback up): nothing for the drivers to build, and no turn to wait for behind other tasks.
    const network = needsNetwork(this.task) ? await this.timed('network', () => this.deps.network.prepare(this.task, this.containerId)) : {};
    // Reported from READY on, as Docker's PortStatus: `service ps` shows the host ports actually bound.
    this.status = { ...this.status, hostPorts: network.hostPorts ?? [] };
    const rootfs = await this.timed('rootfs', () => this.deps.images.prepareRootfs(ref, this.containerId, join(this.deps.rootfsDir, this.containerId)));
    const existing = await this.timed('inspect', () => this.inspect());
    if (existing) {
      // Prepared before an agent restart: a created (or already running) container is the one.
      if (existing.status === 'created' || existing.status === 'running') return;
      await this.deps.runtime.remove(this.containerId, { force: true });
    }
    const spec = toRuntimeSpec(this.task, { containerId: this.containerId, rootfs, image, network });
    spec.mounts = [...(spec.mounts ?? []), ...(await writeTaskConfigs(configsDirBeside(this.deps.rootfsDir), this.task))];
    await this.timed('create', () => this.deps.runtime.create(spec));
    this.createdHere = true;
  }

  private limited<T>(priority: Priority, fn: () => Promise<T>): Promise<T> {
    return this.deps.limiter ? this.deps.limiter.run(fn, priority) : fn();
  }

  /** Runs one step of the work, its duration traced (agent/worker/trace.ts). */
  private async timed<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      trace('step', { task: this.task.id, step, ms: performance.now() - t0 });
    }
  }

  /** Starts the created container (or finds it started already, after a restart); returns its pid. */
  private async startContainer(): Promise<number> {
    // Created by this controller a moment ago: it is waiting for start (if it is not, start fails
    // and says why). After an agent restart it may have been started already: look first.
    const info = this.createdHere ? { status: 'created' } : await this.timed('inspect', () => this.inspect());
    this.createdHere = false;
    if (!info) throw new Error(`container ${this.containerId} of task ${this.task.id} is gone`);
    if (info.status === 'created') await this.timed('start', () => this.deps.runtime.start(this.containerId));
    const after = await this.timed('inspect', () => this.deps.runtime.inspect(this.containerId));
    return after.pid ?? 0;
  }

  /** Waits for the container to exit, an unhealthy verdict, or a change of the task. */
  private async whileRunning(gen: number): Promise<boolean> {
    if (this.unhealthy) {
      this.stopHealth();
      await this.markServing(false);
      const exit = await this.deps.runtime.stop(this.containerId);
      await this.deps.network.release(this.task, this.containerId);
      await this.transition('FAILED', 'unhealthy container', {
        err: UNHEALTHY_ERROR,
        container: { containerId: this.containerId, pid: 0, exitCode: exit.exitCode },
      });
      return true;
    }
    await this.startHealth();
    // Without a health check a running task serves; with one, onHealth decides.
    if (!this.health && !this.serving) void this.markServing(true);
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
      else {
        await this.withdraw();
        exitCode = (await this.deps.runtime.stop(this.containerId)).exitCode;
      }
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
    await removeTaskConfigs(configsDirBeside(this.deps.rootfsDir), this.task.id);
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
    const monitor = new HealthMonitor((argv, options) => runExec(this.deps.runtime, this.containerId, argv, options), config);
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
    if (health === 'healthy') void this.markServing(true);
    if (health === 'unhealthy') {
      void this.markServing(false);
      this.unhealthy = true;
      this.wake.notify();
    }
  }

  // ---- service discovery ----

  /**
   * Tells the network attacher whether service discovery should send the task traffic. Calls run
   * one after another in the order made; a failure is logged (and resolves false).
   */
  private markServing(serving: boolean): Promise<boolean> {
    const attacher = this.deps.network;
    if (!attacher.setServing || !needsNetwork(this.task)) return Promise.resolve(false);
    this.serving = serving;
    const task = this.task;
    const run = this.servingChain.then(() => attacher.setServing!(task, this.containerId, serving));
    this.servingChain = run.then(
      () => undefined,
      (err: unknown) => this.deps.log('telling service discovery whether a task serves failed', { task: task.id, serving, err: String(err) }),
    );
    return run.catch(() => false);
  }

  /**
   * Before a running container is stopped: out of service discovery first, then, if it was
   * serving, a drain period so requests already routed to it finish and no new one arrives.
   * Asks the attacher even when this controller never said serving (an agent restart: it knows).
   */
  private async withdraw(): Promise<void> {
    if (!(await this.markServing(false))) return;
    await (this.deps.drain ? this.deps.drain() : new Promise<void>((resolve) => setTimeout(resolve, SERVICE_DRAIN_MS)));
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
    trace('state', { task: this.task.id, state });
    this.status = {
      ...this.status,
      state,
      message,
      err: extra.err ?? '',
      timestamp: this.deps.now(),
      ...(extra.container !== undefined ? { container: extra.container } : {}),
    };
    // Not awaited: the next step need not wait for the task file's fsync or the manager. Statuses
    // are still written before they are reported, in order (emit's chain), and every step is
    // idempotent, so an agent killed with its file a step behind redoes that step harmlessly.
    void this.emit();
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
