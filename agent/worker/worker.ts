// The node's task executor: takes the assignments the managers stream (a COMPLETE set, then
// INCREMENTAL changes), keeps one TaskController per assigned task, records every task and its
// observed status in <dataDir>/tasks.json, and reports status through a StatusReporter.
//
// After an agent restart a new Worker over the same data dir picks its tasks up from that file:
// controllers re-attach to the containers that still run (same process, nothing restarted) and
// report the state they find, including exits that happened while no agent was watching.
//
// The session drives it:
//   const worker = new Worker({ dataDir, runtime, images, reporter });
//   await worker.init();                       // before the first assignments arrive
//   for await (const msg of assignmentsStream) await worker.applyAssignments(msg);
//   await worker.close();                      // on shutdown: containers keep running
import { mkdir } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type { AssignmentChange, AssignmentsMessage } from '../../proto/gen/dispatcher.js';
import type { Task, TaskStatus } from '../../proto/gen/objects.js';
import { NoSuchContainerError, type Runtime } from '../runtime/runtime.js';
import { TaskController } from './controller.js';
import { Limiter } from './limiter.js';
import type { ImageProvider } from './images.js';
import { containerIdFor, LABEL_TASK_ID } from './naming.js';
import { NetnsNetworkAttacher, type NetworkAttacher } from './network.js';
import type { StatusReporter } from './reporter.js';
import { before, emptyStatus } from './states.js';
import { TaskDb } from './taskdb.js';
import { trace } from './trace.js';

export interface WorkerOptions {
  /** Holds tasks.json and the containers' root filesystem mount points (rootfs/<container id>). */
  dataDir: string;
  runtime: Runtime;
  images: ImageProvider;
  reporter: StatusReporter;
  /** Default: a named netns with loopback only per task (NetnsNetworkAttacher). */
  network?: NetworkAttacher;
  /** Tasks preparing or starting their containers at once; default four per CPU, at least 8. */
  maxConcurrentStarts?: number;
  now?: () => number;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

/** An INCREMENTAL assignment that does not follow the set this worker has: the stream must restart. */
export class AssignmentGapError extends Error {
  constructor(
    readonly have: string,
    readonly appliesTo: string,
  ) {
    super(`assignments out of order: this node has set "${have}", the increment applies to "${appliesTo}"; a COMPLETE set is needed`);
    this.name = 'AssignmentGapError';
  }
}

export class Worker {
  private readonly controllers = new Map<string, TaskController>();
  private readonly removing = new Map<string, Promise<void>>();
  private readonly db: TaskDb;
  private readonly network: NetworkAttacher;
  private readonly limiter: Limiter;
  private readonly now: () => number;
  private readonly log: (message: string, fields: Record<string, unknown>) => void;
  private lock: Promise<void> = Promise.resolve();
  private assignmentsVersion = '';
  private initialized = false;
  private closed = false;

  constructor(private readonly options: WorkerOptions) {
    this.db = new TaskDb(join(options.dataDir, 'tasks.json'));
    this.network = options.network ?? new NetnsNetworkAttacher();
    this.limiter = new Limiter(options.maxConcurrentStarts ?? Math.max(8, 4 * availableParallelism()));
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => undefined);
  }

  /** Loads the recorded tasks and resumes driving them; reports each one's last known status. */
  init(): Promise<void> {
    return this.serialized(async () => {
      if (this.initialized) return;
      this.initialized = true;
      await mkdir(join(this.options.dataDir, 'rootfs'), { recursive: true });
      for (const record of await this.db.load()) {
        this.options.reporter.report(record.task.id, record.status);
        this.startController(record.task, record.status);
      }
    });
  }

  /** Applies one message of the dispatcher's Assignments stream. */
  applyAssignments(message: AssignmentsMessage): Promise<void> {
    trace('assignments', { type: message.type, changes: message.changes.length });
    if (message.type === 'COMPLETE') {
      const tasks = message.changes.filter((c) => c.action === 'UPDATE' && c.task).map((c) => c.task as Task);
      return this.assign(tasks).then(() => {
        this.assignmentsVersion = message.resultsIn;
      });
    }
    if (this.assignmentsVersion !== '' && message.appliesTo !== '' && message.appliesTo !== this.assignmentsVersion) {
      return Promise.reject(new AssignmentGapError(this.assignmentsVersion, message.appliesTo));
    }
    return this.update(message.changes).then(() => {
      this.assignmentsVersion = message.resultsIn;
    });
  }

  /** The complete set of this node's tasks: anything else this node runs is shut down and removed. */
  assign(tasks: Task[]): Promise<void> {
    return this.serialized(async () => {
      this.checkOpen();
      const wanted = new Set(tasks.map((t) => t.id));
      const saved: Array<Promise<void>> = [];
      for (const task of tasks) await this.adopt(task, saved);
      await Promise.all(saved); // one file write for the whole set, not one per task
      for (const id of [...this.controllers.keys()]) if (!wanted.has(id)) this.startRemoval(id);
      await this.removeStrayContainers(wanted);
    });
  }

  /** Changes to the set: UPDATE adds or updates a task, REMOVE takes it away. */
  update(changes: AssignmentChange[]): Promise<void> {
    return this.serialized(async () => {
      this.checkOpen();
      const saved: Array<Promise<void>> = [];
      for (const change of changes) {
        if (!change.task) continue;
        if (change.action === 'REMOVE') this.startRemoval(change.task.id);
        else await this.adopt(change.task, saved);
      }
      await Promise.all(saved);
    });
  }

  /** Every assigned task with the status this node observed. */
  list(): Array<{ task: Task; status: TaskStatus }> {
    return [...this.controllers.values()].map((c) => c.snapshot());
  }

  status(taskId: string): TaskStatus | undefined {
    return this.controllers.get(taskId)?.snapshot().status;
  }

  /** Resolves once the removals started so far (containers, root filesystems, networks) are done. */
  async settled(): Promise<void> {
    while (this.removing.size > 0) await Promise.all(this.removing.values());
  }

  /** Stops every controller; containers keep running for the next Worker to re-attach to. */
  close(): Promise<void> {
    return this.serialized(async () => {
      if (this.closed) return;
      this.closed = true;
      await Promise.all([...this.controllers.values()].map((c) => c.close()));
      this.controllers.clear();
      await this.settled();
      await this.db.flush();
    });
  }

  // ---- internals ----

  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn);
    this.lock = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private checkOpen(): void {
    if (this.closed) throw new Error('the worker is closed');
    if (!this.initialized) throw new Error('the worker must be initialized (init()) before it takes assignments');
  }

  /** Takes a task into the set; the write of a new task's record is added to `saved`. */
  private async adopt(task: Task, saved: Array<Promise<void>>): Promise<void> {
    const existing = this.controllers.get(task.id);
    if (existing) {
      existing.update(task);
      const ours = existing.snapshot().status;
      // The manager's copy lags behind (a lost report, a new session): tell it again.
      if (task.status && task.status.state !== ours.state) this.options.reporter.report(task.id, ours);
      return;
    }
    // The same task back while its removal still runs: let the removal finish first.
    await this.removing.get(task.id);
    const given = task.status;
    const status: TaskStatus =
      given && !before(given.state, 'ASSIGNED') ? { ...given, timestamp: given.timestamp || this.now() } : { ...emptyStatus('ASSIGNED', this.now()), message: 'assigned' };
    saved.push(this.db.put({ task, status }));
    this.options.reporter.report(task.id, status);
    this.startController(task, status);
  }

  private startController(task: Task, status: TaskStatus): void {
    const controller = new TaskController(
      {
        runtime: this.options.runtime,
        images: this.options.images,
        network: this.network,
        limiter: this.limiter,
        rootfsDir: join(this.options.dataDir, 'rootfs'),
        now: this.now,
        log: this.log,
        onStatus: async (t, s) => {
          // Recorded before it is reported: a status the manager has seen is never forgotten here.
          if (this.controllers.get(t.id) === controller) await this.db.put({ task: t, status: s });
          this.options.reporter.report(t.id, s);
        },
      },
      task,
      status,
    );
    this.controllers.set(task.id, controller);
    controller.start();
  }

  private startRemoval(taskId: string): void {
    const controller = this.controllers.get(taskId);
    if (!controller) return;
    this.controllers.delete(taskId);
    const done = controller
      .remove()
      .then(() => this.db.delete(taskId))
      .catch((err: unknown) => this.log('removing a task failed', { task: taskId, err: String(err) }))
      .finally(() => this.removing.delete(taskId));
    this.removing.set(taskId, done);
  }

  /** Containers labelled as tasks this node no longer has (a lost task file, a crash mid-removal). */
  private async removeStrayContainers(wanted: Set<string>): Promise<void> {
    const containers = await this.options.runtime.list().catch((err: unknown) => {
      this.log('listing containers failed', { err: String(err) });
      return [];
    });
    for (const info of containers) {
      const taskId = info.labels[LABEL_TASK_ID];
      if (taskId === undefined || wanted.has(taskId) || this.controllers.has(taskId) || this.removing.has(taskId)) continue;
      if (info.id !== containerIdFor(taskId)) continue; // not made by a worker
      const done = this.removeStray(info.id)
        .catch((err: unknown) => this.log('removing a stray task container failed', { container: info.id, task: taskId, err: String(err) }))
        .finally(() => this.removing.delete(taskId));
      this.removing.set(taskId, done);
    }
  }

  private async removeStray(containerId: string): Promise<void> {
    try {
      await this.options.runtime.remove(containerId, { force: true });
    } catch (err) {
      if (!(err instanceof NoSuchContainerError)) throw err;
    }
    await this.options.images.releaseRootfs(containerId);
  }
}
