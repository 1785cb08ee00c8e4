// Task status on its way to the managers. Controllers report every change at once; the batching
// reporter sends what has piled up in one call (the dispatcher's UpdateTaskStatus), keeping only
// the latest status of each task, and retries until the call succeeds: a status is never lost,
// only superseded by a newer one of the same task.
import { EventEmitter } from 'node:events';
import type { TaskStatusUpdate } from '../../proto/gen/dispatcher.js';
import type { TaskState, TaskStatus } from '../../proto/gen/objects.js';
import { trace } from './trace.js';

export interface StatusReporter {
  /** Queues a task's new status. Never throws: delivery (and retrying it) is the reporter's job. */
  report(taskId: string, status: TaskStatus): void;
}

/** Delivers one batch; resolving means the manager acknowledged it, rejecting means try again. */
export type StatusSink = (updates: TaskStatusUpdate[]) => Promise<void>;

export interface BatchingReporterOptions {
  /** At most this many updates per call. Default 200. */
  maxBatch?: number;
  /** First retry delay after a failed call; doubles up to maxRetryMs. Default 250 ms. */
  retryMs?: number;
  maxRetryMs?: number;
  /**
   * How long the first report of a quiet spell waits for others before it goes: tasks that move
   * together (a service's replicas starting) then travel in one call, one proposal on the
   * manager, instead of one call each. Default 10 ms.
   */
  lingerMs?: number;
  /** Called with each failed delivery (for the agent's log). */
  onError?: (err: unknown, updates: TaskStatusUpdate[]) => void;
}

export class BatchingStatusReporter implements StatusReporter {
  private readonly pending = new Map<string, TaskStatus>();
  private sending = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;
  private readonly idle = new EventEmitter();
  private readonly maxBatch: number;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly lingerMs: number;

  /** `sink` may be set later (or unset while no session is up): updates wait for one. */
  constructor(
    private sink: StatusSink | undefined,
    private readonly options: BatchingReporterOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 200;
    this.retryMs = options.retryMs ?? 250;
    this.maxRetryMs = options.maxRetryMs ?? 5000;
    this.lingerMs = options.lingerMs ?? 10;
  }

  report(taskId: string, status: TaskStatus): void {
    if (this.closed) return;
    this.pending.delete(taskId); // re-inserted at the end: batches go out in report order
    this.pending.set(taskId, status);
    this.kick();
  }

  /** Plugs in (or out, with undefined) the delivery call, e.g. when a session starts or ends. */
  setSink(sink: StatusSink | undefined): void {
    this.sink = sink;
    this.failures = 0;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.kick();
  }

  /** Updates not yet acknowledged. */
  get backlog(): number {
    return this.pending.size;
  }

  /** Resolves once everything reported so far has been acknowledged (or the reporter is closed). */
  async flush(): Promise<void> {
    while (!this.closed && (this.pending.size > 0 || this.sending)) {
      await new Promise<void>((resolve) => this.idle.once('change', resolve));
    }
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.lingerTimer) clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    this.idle.emit('change');
  }

  private kick(): void {
    if (this.sending || this.retryTimer || this.lingerTimer || !this.sink || this.pending.size === 0 || this.closed) return;
    if (this.lingerMs <= 0 || this.pending.size >= this.maxBatch) return void this.sendBatch(this.sink);
    this.lingerTimer = setTimeout(() => {
      this.lingerTimer = undefined;
      if (this.sink && !this.sending && !this.closed && this.pending.size > 0) void this.sendBatch(this.sink);
    }, this.lingerMs);
  }

  private async sendBatch(sink: StatusSink): Promise<void> {
    this.sending = true;
    const batch: TaskStatusUpdate[] = [];
    for (const [taskId, status] of this.pending) {
      if (batch.length >= this.maxBatch) break;
      batch.push({ taskId, status });
    }
    for (const u of batch) this.pending.delete(u.taskId);
    try {
      trace('report-send', { updates: batch.length });
      await sink(batch);
      trace('report-ack', { updates: batch.length, running: batch.filter((u) => u.status?.state === 'RUNNING').length });
      this.failures = 0;
    } catch (err) {
      // Put back what was not superseded meanwhile, ahead of newer updates.
      const newer = new Map(this.pending);
      this.pending.clear();
      for (const u of batch) if (!newer.has(u.taskId)) this.pending.set(u.taskId, u.status as TaskStatus);
      for (const [id, s] of newer) this.pending.set(id, s);
      this.failures++;
      this.options.onError?.(err, batch);
      if (!this.closed) {
        const delay = Math.min(this.maxRetryMs, this.retryMs * 2 ** (this.failures - 1));
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.kick();
        }, delay);
      }
    } finally {
      this.sending = false;
      this.idle.emit('change');
      this.kick();
    }
  }
}

/** Keeps every report, in order: for tests, and for anything that wants to watch statuses locally. */
export class MemoryStatusReporter implements StatusReporter {
  readonly history: TaskStatusUpdate[] = [];
  private readonly events = new EventEmitter().setMaxListeners(0); // one waiter per task is normal

  report(taskId: string, status: TaskStatus): void {
    this.history.push({ taskId, status: structuredClone(status) });
    this.events.emit('report');
  }

  /** Every status reported for the task, oldest first. */
  statuses(taskId: string): TaskStatus[] {
    return this.history.filter((u) => u.taskId === taskId).map((u) => u.status as TaskStatus);
  }

  /** The task's states as reported, with consecutive repeats (health changes, re-reports) folded. */
  states(taskId: string): TaskState[] {
    const out: TaskState[] = [];
    for (const s of this.statuses(taskId)) if (out[out.length - 1] !== s.state) out.push(s.state);
    return out;
  }

  latest(taskId: string): TaskStatus | undefined {
    return this.statuses(taskId).at(-1);
  }

  /** Resolves with the first status of the task (already reported or to come) that matches. */
  async waitFor(taskId: string, match: (s: TaskStatus) => boolean, timeoutMs = 30_000): Promise<TaskStatus> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.statuses(taskId).find(match);
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`timed out waiting for a status of task ${taskId}; got: ${this.states(taskId).join(' → ') || 'nothing'}`);
      }
      await new Promise<void>((resolve) => {
        const onReport = (): void => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          this.events.off('report', onReport);
          resolve();
        }, left);
        this.events.once('report', onReport);
      });
    }
  }

  /** waitFor the first report of `state`. */
  waitForState(taskId: string, state: TaskState, timeoutMs?: number): Promise<TaskStatus> {
    return this.waitFor(taskId, (s) => s.state === state, timeoutMs);
  }
}
