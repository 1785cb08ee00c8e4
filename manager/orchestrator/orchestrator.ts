// The orchestrators, run on the leader only. One runner drives every mode (replicated, global,
// replicated-job, global-job), the restart supervisor, the rolling updater and the task reaper,
// because they all write the same slots: their passes run one at a time, each pass over one
// service in one transaction that re-reads the committed state, so nothing decides on a view an
// earlier write made stale.
//
// Level-triggered: a pass looks at the whole service and makes the store match its spec, so
// running it twice changes nothing, and a new leader that starts over the same store converges
// to the same tasks without duplicates. Store change events only say which services to look at
// again; they are gathered until the event loop is free (one batch per burst of applied entries).
//
// Start it once the store has applied everything the new leader committed (Raft's no-op entry of
// the new term), so it never reconciles a state older than what an earlier leader wrote.
import { TaskStateNumber, type Cluster, type Node, type Service, type StoreAction, type Task } from '../../proto/gen/objects.js';
import { ConflictError, Tx, type MemoryStore, type StoreEvent } from '../store/memory.js';
import { silentLogger, type Logger } from '../../util/log.js';
import { systemClock, type Clock } from './clock.js';
import { ReconcileContext, type Effects } from './context.js';
import { reconcileGlobal } from './global/reconcile.js';
import { reconcileGlobalJob, reconcileReplicatedJob } from './jobs/reconcile.js';
import { reconcileReplicated } from './replicated/reconcile.js';
import { RestartSupervisor, type SupervisorOptions } from './restart/supervisor.js';
import { isGlobal, serviceMode } from './service.js';
import { reapService } from './taskreaper/reaper.js';
import { newTaskId, observedState } from './task.js';
import { watchesTaskProgress } from './update/config.js';
import { Updater } from './update/updater.js';

export interface OrchestratorOptions extends SupervisorOptions {
  clock?: Clock;
  logger?: Logger;
  /** Task ids; Docker-style random ones by default. */
  newId?: () => string;
  /** True once the allocator runs: new tasks then stay NEW for it instead of going PENDING. */
  allocatorRuns?: boolean;
  /** Wait before retrying a service whose transaction failed. */
  retryDelayMs?: number;
  /** Writes per transaction, so one Raft entry stays small (a service of 10,000 replicas). */
  maxWritesPerPass?: number;
  /**
   * Transactions one pass may write, proposed together. A pass reads the whole service, so
   * a service of 100,000 replicas created 500 tasks at a time would be read 200 times.
   */
  transactionsPerPass?: number;
}

export class Orchestrator {
  readonly supervisor: RestartSupervisor;
  readonly updater: Updater;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly newId: () => string;
  private readonly allocatorRuns: boolean;
  private readonly retryDelayMs: number;
  private readonly maxWrites: number;
  private readonly transactionsPerPass: number;

  private running = false;
  private readonly dirty = new Set<string>();
  private everything = false;
  private scheduled = false;
  private loop: Promise<void> | null = null;
  private readonly wakeups = new Map<string, { at: number; cancel: () => void }>();
  private idleWaiters: (() => void)[] = [];
  /** Consecutive passes per service that wrote something: a guard against a pass that never settles. */
  private readonly streaks = new Map<string, number>();
  /** Passes that wrote something, for tests and metrics. */
  writes = 0;

  constructor(
    private readonly store: MemoryStore,
    opts: OrchestratorOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger ?? silentLogger;
    this.newId = opts.newId ?? newTaskId;
    this.allocatorRuns = opts.allocatorRuns ?? false;
    this.retryDelayMs = opts.retryDelayMs ?? 1000;
    this.maxWrites = Math.max(2, opts.maxWritesPerPass ?? 500); // a restart needs two
    this.transactionsPerPass = Math.max(1, opts.transactionsPerPass ?? 8);
    this.supervisor = new RestartSupervisor(opts);
    this.updater = new Updater(this.supervisor.oldTaskTimeoutMs);
  }

  /** Begins on leadership: reconciles every service from the store, then follows changes. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.store.on('change', this.onChange);
    this.store.on('restore', this.onRestore);
    this.everything = true;
    this.kick();
  }

  /**
   * Ends on losing leadership; resolves once the pass in progress (if any) has finished. A pass
   * waits for its entry to apply: fail pending writes (store.abortPending) so it cannot hang.
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.store.off('change', this.onChange);
    this.store.off('restore', this.onRestore);
    for (const w of this.wakeups.values()) w.cancel();
    this.wakeups.clear();
    this.dirty.clear();
    this.filling.clear();
    this.everything = false;
    await this.loop;
    this.notifyIdle();
  }

  /** Resolves when no pass is running or due (timers aside): for tests and orderly shutdown. */
  idle(): Promise<void> {
    if (!this.busy()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Asks for a pass over one service (or every service). */
  touch(serviceId?: string): void {
    if (serviceId === undefined) this.everything = true;
    else this.dirty.add(serviceId);
    this.kick();
  }

  private busy(): boolean {
    return this.running && (this.scheduled || this.loop !== null || this.everything || this.dirty.size > 0);
  }

  private notifyIdle(): void {
    if (this.busy()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private kick(): void {
    if (!this.running || this.scheduled || this.loop) return;
    this.scheduled = true;
    // Gather every event of the current burst before looking at anything.
    setImmediate(() => {
      this.scheduled = false;
      if (!this.running) return this.notifyIdle();
      // A write applied before drain() first yielded kicked before `loop` was set: the loop in
      // progress looks at what it marked dirty when it ends.
      if (this.loop) return;
      this.loop = this.drain().finally(() => {
        this.loop = null;
        if (this.everything || this.dirty.size > 0) this.kick();
        else this.notifyIdle();
      });
    });
  }

  private async drain(): Promise<void> {
    while (this.running && (this.everything || this.dirty.size > 0)) {
      if (this.everything) {
        this.everything = false;
        for (const s of this.store.all('services')) this.dirty.add(s.id);
        // Tasks whose service is gone still need reaping.
        for (const t of this.store.all('tasks')) if (t.serviceId) this.dirty.add(t.serviceId);
      }
      const batch = [...this.dirty].sort();
      this.dirty.clear();
      for (const id of batch) {
        if (!this.running) return;
        await this.reconcileService(id);
      }
    }
  }

  private async reconcileService(serviceId: string): Promise<void> {
    let wrote = false;
    try {
      const tx = new Tx(this.store);
      const ctx = new ReconcileContext(tx, this.clock.now(), {
        newId: this.newId,
        allocatorRuns: this.allocatorRuns,
        maxWrites: this.maxWrites * this.transactionsPerPass,
        maxWritesPerTransaction: this.maxWrites,
      });
      reconcile(ctx, serviceId, this.supervisor, this.updater);
      const transactions = ctx.transactions();
      wrote = transactions.length > 0;
      // Proposed together, they commit in one Raft round and apply in order; each stands alone.
      // Each is encoded when proposed: the event loop gets a turn between them (heartbeats, Raft).
      const settling: Promise<PromiseSettledResult<void>>[] = [];
      for (const actions of transactions) {
        if (settling.length > 0) await new Promise((r) => setImmediate(r));
        settling.push(this.store.commitActions(actions).then(
          (value): PromiseSettledResult<void> => ({ status: 'fulfilled', value }),
          (reason: unknown): PromiseSettledResult<void> => ({ status: 'rejected', reason }),
        ));
      }
      const outcomes = await Promise.all(settling);
      const failed = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as Error] : []));
      const effects = failed.length === 0 ? ctx.effects : committedEffects(ctx.effects, transactions, outcomes);
      if (failed.some((e) => !(e instanceof ConflictError))) {
        // Not the leader any more, most likely: no pass at once (it would fail at once, and again).
        this.afterCommit(serviceId, { ...effects, more: false });
        throw failed[0]!;
      }
      this.afterCommit(serviceId, effects);
      if (failed.length === 0 && effects.creates) await this.fillSlots(effects.creates.service, effects.creates.slots);
      if (failed.length > 0) {
        // A write that lost a race (a status report changed a task meanwhile) is decided again at
        // once on fresh state, as store.update would retry it, a few times.
        if (!this.running) return;
        if (outcomes.length > failed.length || this.conflictRetry(serviceId)) this.dirty.add(serviceId);
        else throw failed[0]!;
      } else {
        this.conflicts.delete(serviceId);
      }
      if (!wrote) {
        this.streaks.delete(serviceId);
        return;
      }
      this.writes++;
      const streak = (this.streaks.get(serviceId) ?? 0) + 1;
      this.streaks.set(serviceId, streak);
      // A pass re-run on its own writes changes nothing; one that keeps writing is a bug, and
      // must not flood the Raft log: look again later instead of at once.
      if (streak > MAX_WRITE_STREAK) {
        this.log.error('service does not settle; backing off', { service: serviceId, passes: streak });
        this.streaks.delete(serviceId);
        this.dirty.delete(serviceId);
        this.wakeAt(serviceId, this.clock.now() + this.retryDelayMs);
      }
    } catch (e) {
      if (!this.running) return;
      this.conflicts.delete(serviceId);
      this.dirty.delete(serviceId); // looked at again after the delay, not at once
      this.log.warn('reconciling a service failed; retrying', { service: serviceId, err: e as Error, retryMs: this.retryDelayMs });
      this.wakeAt(serviceId, this.clock.now() + this.retryDelayMs);
    }
  }

  /**
   * Creates the tasks of slots a pass left to fill (ReconcileContext.createLater), in
   * transactions of maxWrites tasks, a few in flight at once, with a turn of the event loop
   * between them. Stops if the service changed meanwhile: a pass then decides afresh.
   */
  private async fillSlots(service: Service, slots: number[]): Promise<void> {
    const inFlight: Promise<void>[] = [];
    let filled = 0;
    try {
      for (; filled < slots.length && this.running; filled += this.maxWrites) {
        await new Promise((r) => setImmediate(r));
        if (this.store.get('services', service.id)?.meta?.version !== service.meta?.version) break;
        const ctx = new ReconcileContext(new Tx(this.store), this.clock.now(), { newId: this.newId, allocatorRuns: this.allocatorRuns, maxWrites: this.maxWrites });
        for (const slot of slots.slice(filled, filled + this.maxWrites)) this.filling.add(ctx.createTask(service, { slot })!.id);
        const commit = this.store.commitActions(ctx.tx.actions);
        commit.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
        inFlight.push(commit);
        if (inFlight.length >= this.transactionsPerPass) await inFlight.shift();
      }
      await Promise.all(inFlight);
    } catch (e) {
      this.filling.clear();
      throw e;
    } finally {
      // What was not filled (the service changed, leadership went) is decided by a new pass.
      if (filled < slots.length) this.dirty.add(service.id);
    }
  }

  /**
   * Tasks fillSlots created and whose creation has not been seen applied yet. Their creation is
   * no news to this orchestrator: a pass over a service of 100,000 replicas after each batch
   * would cost a read of the whole service each time, to decide nothing.
   */
  private readonly filling = new Set<string>();

  /** Consecutive passes per service that wrote nothing but conflicts. */
  private readonly conflicts = new Map<string, number>();

  /** Whether a pass that only conflicted may run again at once (as store.update retries 5 times). */
  private conflictRetry(serviceId: string): boolean {
    const n = (this.conflicts.get(serviceId) ?? 0) + 1;
    this.conflicts.set(serviceId, n);
    return n <= MAX_CONFLICT_RETRIES;
  }

  private afterCommit(serviceId: string, effects: Effects): void {
    this.supervisor.commit(effects);
    if (!this.store.get('services', serviceId)) {
      this.supervisor.forgetService(serviceId);
    }
    if (effects.wakeAt !== undefined) this.wakeAt(serviceId, effects.wakeAt);
    if (effects.more) this.dirty.add(serviceId);
  }

  private wakeAt(serviceId: string, at: number): void {
    if (!this.running) return;
    const existing = this.wakeups.get(serviceId);
    if (existing && existing.at <= at) return;
    existing?.cancel();
    const cancel = this.clock.setTimer(at - this.clock.now(), () => {
      this.wakeups.delete(serviceId);
      this.touch(serviceId);
    });
    this.wakeups.set(serviceId, { at, cancel });
  }

  private readonly onRestore = (): void => this.touch();

  private taskChangeMatters(kind: StoreEvent['kind'], t: Task, old: Task | undefined): boolean {
    if (taskChangeMatters(kind, t, old)) return true;
    if (!progressChanged(t, old)) return false;
    const service = this.store.get('services', t.serviceId);
    return !!service && watchesTaskProgress(service);
  }

  private readonly onChange = (ev: StoreEvent): void => {
    switch (ev.table) {
      case 'services':
        this.dirty.add(ev.object.id);
        break;
      case 'tasks': {
        const t = ev.object as Task;
        if (ev.kind === 'remove' || t.desiredState !== 'READY') this.supervisor.forgetTask(t.id);
        if (ev.kind === 'remove') this.updater.progress.forgetTask(t.id);
        if (ev.kind === 'create' && this.filling.delete(t.id)) break;
        if (t.serviceId && this.taskChangeMatters(ev.kind, t, ev.old as Task | undefined)) this.dirty.add(t.serviceId);
        break;
      }
      case 'nodes': {
        const n = ev.object as Node;
        if (!nodeChangeMatters(ev.kind, n, ev.old as Node | undefined)) return;
        // Replicated tasks on the node may need replacing; global services may gain or lose it.
        for (const t of this.store.find('tasks', 'node', n.id)) this.dirty.add(t.serviceId);
        for (const s of this.store.all('services')) if (isGlobal(s)) this.dirty.add(s.id);
        break;
      }
      case 'clusters': {
        const limit = (c: Cluster | undefined) => c?.spec?.taskHistoryRetentionLimit;
        if (ev.kind !== 'update' || limit(ev.object as Cluster) !== limit(ev.old as Cluster | undefined)) this.everything = true;
        break;
      }
      default:
        return;
    }
    this.kick();
  };
}

/** One pass over one service: its mode's reconciler, then the reaper. */
export function reconcile(ctx: ReconcileContext, serviceId: string, supervisor: RestartSupervisor, updater: Updater): void {
  const service: Service | undefined = ctx.tx.get('services', serviceId);
  if (service) {
    switch (serviceMode(service)) {
      case 'replicated':
        reconcileReplicated(ctx, service, supervisor, updater);
        break;
      case 'global':
        reconcileGlobal(ctx, service, supervisor, updater);
        break;
      case 'replicatedJob':
        reconcileReplicatedJob(ctx, service, supervisor);
        break;
      case 'globalJob':
        reconcileGlobalJob(ctx, service, supervisor);
        break;
      case undefined:
        break;
    }
  }
  reapService(ctx, serviceId, service);
}

const RUNNING = TaskStateNumber.RUNNING;
const MAX_WRITE_STREAK = 100;
const MAX_CONFLICT_RETRIES = 5;

/** What a pass did, keeping only what its committed transactions wrote. */
function committedEffects(effects: Effects, transactions: StoreAction[][], outcomes: PromiseSettledResult<void>[]): Effects {
  const committed = new Set<string>();
  transactions.forEach((actions, i) => {
    if (outcomes[i]!.status !== 'fulfilled') return;
    for (const a of actions) if (a.task) committed.add(a.task.id);
  });
  return {
    restarts: effects.restarts.filter((r) => committed.has(r.newTaskId)),
    promoted: effects.promoted.filter((id) => committed.has(id)),
    ...(effects.wakeAt !== undefined ? { wakeAt: effects.wakeAt } : {}),
    ...(effects.more ? { more: true } : {}),
  };
}

/**
 * Changes any pass must see: new or deleted tasks, desired state, a task moved off its node, or
 * the task stopping. A task placed by the scheduler (no node before) is not news: it went where
 * its service allows, and a pass over a big service after every batch of placements would cost
 * the leader a read of the whole service each time.
 */
function taskChangeMatters(kind: StoreEvent['kind'], t: Task, old: Task | undefined): boolean {
  if (kind !== 'update' || !old) return true;
  if (t.desiredState !== old.desiredState || (t.nodeId !== old.nodeId && old.nodeId !== '')) return true;
  const now = observedState(t);
  return now !== observedState(old) && TaskStateNumber[now] > RUNNING;
}

/** A task started, or its health changed: what a rolling update (or a start-first drain) waits for. */
function progressChanged(t: Task, old: Task | undefined): boolean {
  if (!old) return false;
  return (observedState(t) === 'RUNNING' && observedState(old) !== 'RUNNING') || (t.status?.health ?? '') !== (old.status?.health ?? '');
}

/** Changes to what decides where tasks may run. */
function nodeChangeMatters(kind: StoreEvent['kind'], n: Node, old: Node | undefined): boolean {
  if (kind !== 'update' || !old) return true;
  const facts = (x: Node) =>
    JSON.stringify([x.status?.state, x.spec?.availability, x.spec?.annotations?.labels, x.role, x.description?.hostname, x.description?.platform, x.description?.engineLabels]);
  return facts(n) !== facts(old);
}
