// The scheduler on the leader: it follows the store, keeps a NodeInfo per node current from the
// change events, and when tasks wait for a node it runs `schedule()` and writes the outcome back:
// assigned tasks get their node and state ASSIGNED, tasks that fit nowhere keep PENDING with the
// reason in `status.err`. A burst of changes (a service of 1,000 replicas arriving, nodes joining)
// makes one pass after a short quiet time, bounded by a maximum delay, and a pass commits its
// decisions many tasks to a transaction.
//
// Placements are counted on the NodeInfos as soon as they are decided, so the next pass sees them
// even before the commit is applied; a decision the commit could not make (the task changed
// meanwhile, leadership was lost) is undone by re-reading the task from the store.
import { Task as TaskCodec, TaskStatus, type Task } from '../../proto/gen/objects.js';
import { blank } from '../store/blank.js';
import type { MemoryStore, StoreEvent, Tx } from '../store/memory.js';
import { silentLogger, type Logger } from '../../util/log.js';
import type { Filter } from './filters/filter.js';
import { holdsNode, isPreassigned, isUnassigned, NodeInfo } from './nodeinfo.js';
import { schedule, type Assignment, type Unplaced } from './schedule.js';

export const ASSIGNED_MESSAGE = 'scheduler assigned task to node';
export const CONFIRMED_MESSAGE = 'scheduler confirmed task can run on preassigned node';
export const PENDING_MESSAGE = 'pending task scheduling';

export interface SchedulerOptions {
  /** Quiet time after a change before a pass, so a burst of changes makes one pass. */
  debounceMs?: number;
  /** However busy the store, a pass starts at most this long after the first change waiting. */
  maxDelayMs?: number;
  /** Task writes per store transaction (swarmkit uses 200: Raft entries stay well under the message size limit). */
  batchSize?: number;
  /**
   * Tasks one pass decides on. A pass runs in one go on the event loop: 100,000 tasks at once
   * would block it for seconds (a leader that stops answering Raft loses its leadership); the
   * rest follow in the next pass, as soon as this one's writes are proposed.
   */
  maxTasksPerPass?: number;
  /** Time stamped on task statuses. */
  clock?: () => number;
  logger?: Logger;
  filters?: readonly Filter[];
}

export interface SchedulerStats {
  passes: number;
  assigned: number;
  /** Tasks a pass could not place (counted once per pass). */
  unplaced: number;
  /** Decisions dropped because the task changed before the commit. */
  skipped: number;
  transactions: number;
  failedCommits: number;
}

type Write = { kind: 'assign'; decision: Assignment } | { kind: 'reason'; decision: Unplaced };

export class Scheduler {
  private readonly nodes = new Map<string, NodeInfo>();
  /** Tasks waiting for the scheduler (unassigned or preassigned and PENDING), by id. */
  private readonly pending = new Map<string, Task>();
  /** The node each task is counted on. */
  private readonly placedOn = new Map<string, string>();
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private readonly batchSize: number;
  private readonly maxTasksPerPass: number;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly filters: readonly Filter[] | undefined;
  private timer: NodeJS.Timeout | undefined;
  private firstChangeAt: number | undefined;
  /** After a failed commit, no pass before this time (a manager that lost leadership must not spin). */
  private notBefore = 0;
  private running: Promise<void> | undefined;
  /** Tasks looked at by passes in a row that placed nothing. */
  private sweptInVain = 0;
  private started = false;
  private idleWaiters: (() => void)[] = [];
  readonly stats: SchedulerStats = { passes: 0, assigned: 0, unplaced: 0, skipped: 0, transactions: 0, failedCommits: 0 };

  constructor(
    private readonly store: MemoryStore,
    options: SchedulerOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 50;
    this.maxDelayMs = options.maxDelayMs ?? 1000;
    this.batchSize = options.batchSize ?? 200;
    this.maxTasksPerPass = options.maxTasksPerPass ?? 2000;
    this.clock = options.clock ?? Date.now;
    this.log = options.logger ?? silentLogger;
    this.filters = options.filters;
  }

  /** Reads the store's state and follows its changes; a first pass follows at once. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.load();
    this.store.on('change', this.onChange);
    this.store.on('restore', this.onRestore);
    this.kick();
  }

  /** Stops following the store; resolves once a pass in progress has finished. */
  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.store.off('change', this.onChange);
    this.store.off('restore', this.onRestore);
    clearTimeout(this.timer);
    this.timer = undefined;
    this.firstChangeAt = undefined;
    await this.running;
    this.notifyIdle();
  }

  /** Resolves when no pass is queued or running. */
  idle(): Promise<void> {
    if (!this.timer && !this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Tasks waiting for a node, for `service ps`-style introspection and tests. */
  pendingTasks(): Task[] {
    return [...this.pending.values()];
  }

  nodeInfo(id: string): NodeInfo | undefined {
    return this.nodes.get(id);
  }

  // ---- following the store -----------------------------------------------------------------

  private load(): void {
    this.nodes.clear();
    this.pending.clear();
    this.placedOn.clear();
    for (const n of this.store.all('nodes')) this.nodes.set(n.id, new NodeInfo(n));
    for (const t of this.store.all('tasks')) this.track(t);
  }

  private readonly onRestore = (): void => {
    this.load();
    this.kick();
  };

  private readonly onChange = (ev: StoreEvent): void => {
    if (ev.table === 'nodes') {
      const node = (ev as StoreEvent<'nodes'>).object;
      if (ev.kind === 'remove') {
        this.nodes.delete(node.id);
        return;
      }
      const info = this.nodes.get(node.id);
      if (info) info.setNode(node);
      else this.nodes.set(node.id, new NodeInfo(node));
      // A node that joined, became READY or ACTIVE, or got new labels may take waiting tasks.
      if (this.pending.size > 0) this.kick();
    } else if (ev.table === 'tasks') {
      const task = (ev as StoreEvent<'tasks'>).object;
      const mayHelp = ev.kind === 'remove' ? this.untrack(task.id) : this.track(task);
      if (mayHelp && this.pending.size > 0) this.kick();
    }
  };

  /** Counts a task where it belongs. Returns whether the change could let waiting tasks move. */
  private track(t: Task): boolean {
    const before = this.pending.get(t.id);
    const released = this.untrack(t.id);
    if (isUnassigned(t) || isPreassigned(t)) {
      this.pending.set(t.id, t);
      // Our own reason updates change only the status: no need for another pass for those.
      return !before || !sameForScheduling(before, t) || released;
    }
    if (holdsNode(t)) {
      const info = this.nodes.get(t.nodeId);
      if (info) {
        info.addTask(t);
        this.placedOn.set(t.id, t.nodeId);
        return false;
      }
    }
    return released;
  }

  /** Forgets a task; returns whether it released a place on a node. */
  private untrack(id: string): boolean {
    this.pending.delete(id);
    const nodeId = this.placedOn.get(id);
    if (nodeId === undefined) return false;
    this.placedOn.delete(id);
    return this.nodes.get(nodeId)?.removeTask(id) ?? false;
  }

  // ---- passes ------------------------------------------------------------------------------

  private kick(): void {
    if (!this.started) return;
    const now = Date.now();
    this.firstChangeAt ??= now;
    if (this.running) return; // the pass in progress kicks again when it ends
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstChangeAt + this.maxDelayMs - now), this.notBefore - now);
    this.timer = setTimeout(() => this.runPass(), wait);
  }

  private runPass(): void {
    this.timer = undefined;
    this.firstChangeAt = undefined;
    this.running = this.pass()
      .catch((e: unknown) => this.log.error('scheduling pass failed', { error: e as Error }))
      .finally(() => {
        this.running = undefined;
        // Changes that came during the pass set firstChangeAt: they get a pass of their own.
        if (this.firstChangeAt !== undefined && this.started) {
          this.firstChangeAt = undefined;
          this.kick();
        }
        if (!this.timer) this.notifyIdle();
      });
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async pass(): Promise<void> {
    if (this.pending.size === 0) return;
    this.stats.passes++;
    const tasks: Task[] = [];
    for (const t of this.pending.values()) {
      if (tasks.length >= this.maxTasksPerPass) break;
      tasks.push(t);
    }
    const result = schedule(this.nodes.values(), tasks, this.filters ? { filters: this.filters } : {});
    // Tasks that fit nowhere go to the back, so that those behind them get their turn; the rest
    // get another pass at once, until a round over every waiting task placed nothing.
    for (const u of result.unplaced) {
      this.pending.delete(u.task.id);
      this.pending.set(u.task.id, u.task);
    }
    this.sweptInVain = result.assigned.length > 0 ? 0 : this.sweptInVain + tasks.length;
    if (this.pending.size > tasks.length && this.sweptInVain < this.pending.size) this.firstChangeAt ??= Date.now();
    // schedule() counted the placements on the node infos: record them as placed right away.
    for (const a of result.assigned) {
      this.pending.delete(a.task.id);
      this.placedOn.set(a.task.id, a.nodeId);
    }
    this.stats.assigned += result.assigned.length;
    this.stats.unplaced += result.unplaced.length;
    const writes: Write[] = result.assigned.map((decision) => ({ kind: 'assign', decision }) as Write);
    for (const u of result.unplaced) if (u.task.status?.err !== u.reason) writes.push({ kind: 'reason', decision: u });
    if (result.assigned.length > 0 || result.unplaced.length > 0) {
      this.log.debug('scheduling pass', { assigned: result.assigned.length, unplaced: result.unplaced.length });
    }
    if (!this.started) return this.resync(writes);
    // The batches are proposed together: they commit in the same Raft round(s) rather than one
    // round each, and each stands alone (a refused batch is resynced by itself).
    // Each is encoded when proposed: the event loop gets a turn between them (Raft heartbeats).
    const commits: Promise<void>[] = [];
    for (let i = 0; i < writes.length; i += this.batchSize) {
      if (commits.length > 0) await new Promise((r) => setImmediate(r));
      commits.push(this.commit(writes.slice(i, i + this.batchSize)));
    }
    await Promise.all(commits);
  }

  private async commit(batch: Write[]): Promise<void> {
    const skipped: Write[] = [];
    const now = this.clock();
    try {
      this.stats.transactions++;
      await this.store.update((tx) => {
        skipped.length = 0; // the function runs again when the transaction lost a race
        for (const w of batch) if (!this.write(tx, w, now)) skipped.push(w);
      });
    } catch (e) {
      this.stats.failedCommits++;
      this.log.warn('could not commit scheduling decisions', { error: e as Error, tasks: batch.length });
      this.resync(batch);
      // Try again later (a new leader's scheduler takes over if this manager lost leadership).
      this.notBefore = Date.now() + this.maxDelayMs;
      this.kick();
      return;
    }
    this.stats.skipped += skipped.filter((w) => w.kind === 'assign').length;
    this.resync(skipped);
  }

  /** Writes one decision if the task is still as it was decided on; returns whether it did. */
  private write(tx: Tx, w: Write, now: number): boolean {
    const decided = w.decision.task;
    const current = tx.get('tasks', decided.id);
    if (!current || current.specVersion !== decided.specVersion) return false;
    if (w.kind === 'assign') {
      const { nodeId, preassigned } = w.decision;
      if (preassigned ? !isPreassigned(current) || current.nodeId !== nodeId : !isUnassigned(current)) return false;
      const status = blank(TaskStatus, { timestamp: now, state: 'ASSIGNED', message: preassigned ? CONFIRMED_MESSAGE : ASSIGNED_MESSAGE });
      tx.update('tasks', { ...current, nodeId, status });
      return true;
    }
    if (!isUnassigned(current) && !isPreassigned(current)) return false;
    if (current.status?.err === w.decision.reason) return true;
    const status = { ...blank(TaskStatus), ...current.status, timestamp: now, state: 'PENDING' as const, message: PENDING_MESSAGE, err: w.decision.reason };
    tx.update('tasks', { ...current, status });
    return true;
  }

  /** Recounts tasks from the store after decisions that did not take effect. */
  private resync(writes: Write[]): void {
    let again = false;
    for (const w of writes) {
      if (w.kind !== 'assign') continue;
      const id = w.decision.task.id;
      this.untrack(id);
      const current = this.store.get('tasks', id);
      if (current && this.track(current)) again = true;
    }
    if (again && this.pending.size > 0) this.kick();
  }
}

/** Equal but for status and meta: a change the scheduler itself made, or none that matters. */
function sameForScheduling(a: Task, b: Task): boolean {
  const strip = (t: Task): Uint8Array => TaskCodec.encode({ ...t, status: null, meta: null });
  return Buffer.compare(strip(a), strip(b)) === 0;
}
