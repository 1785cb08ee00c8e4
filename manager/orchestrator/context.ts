// One reconciliation pass: the transaction it writes through, the time it runs at, and what it
// leaves to do once it commits (restart history, delayed starts, wake-ups). Every reconciler
// writes through here so that a task is written at most once per transaction: the store checks
// each update against the version read, and a second update of the same task in one transaction
// would conflict with the first.
import { Service, Task, type Node, type TaskState } from '../../proto/gen/objects.js';
import { copy } from '../store/blank.js';
import type { Tx } from '../store/memory.js';
import type { StoreAction } from '../../proto/gen/objects.js';
import { isServiceAllocated } from '../allocator/service.js';
import { taskAttachmentConfigs } from '../allocator/task.js';
import { admitNewTask, newTask, slotKey, taskTemplate, type Placement, type TaskTemplate } from './task.js';

/** A restart made by this pass, recorded by the supervisor once the transaction commits. */
export interface RestartRecord {
  /** The restart-history key: slot key, plus the job iteration for jobs. */
  key: string;
  specVersion: number;
  at: number;
  newTaskId: string;
  /** When the replacement may start (READY until then). */
  dueAt: number;
  /** Counted against the restart policy's max attempts (node failures are not). */
  counted: boolean;
  /** Created READY, to be promoted at dueAt. */
  startsReady: boolean;
}

export interface Effects {
  restarts: RestartRecord[];
  /** Tasks promoted READY -> RUNNING. */
  promoted: string[];
  /** Earliest time this service must be looked at again (a delay ends), or undefined. */
  wakeAt?: number;
  /** The pass ran out of room: look at the service again at once. */
  more?: boolean;
  /**
   * Slots of a replicated service left to fill once this pass commits: a scale-up past the
   * pass's room is created in transactions of its own, a chunk at a time (see `createLater`).
   */
  creates?: { service: Service; slots: number[] };
}

export interface ContextOptions {
  newId: () => string;
  allocatorRuns: boolean;
  /** Writes per pass; the rest waits for the next pass. */
  maxWrites: number;
  /**
   * Writes per transaction (one Raft entry): a pass's writes are committed as several
   * transactions of at most this many, proposed together (see `transactions()`). Default: all in one.
   */
  maxWritesPerTransaction?: number;
}

export const DEFAULT_TASK_HISTORY = 5;

export class ReconcileContext {
  readonly effects: Effects = { restarts: [], promoted: [] };
  private readonly written = new Map<string, Task>();
  private writtenService: Service | undefined;
  /** Positions in tx.actions where the writes may be cut into separate transactions. */
  private readonly cuts: number[] = [];
  /** Writes up to here belong to a group asked for with hasRoom(n > 1): no cut before it. */
  private groupEnd = 0;
  private slotCache: { serviceId: string; writes: number; slots: ReadonlyMap<number, Task[]> } | undefined;
  /** The spec and endpoint new tasks of a service copy, copied once per pass (read-only). */
  private readonly taskTemplates = new WeakMap<Service, TaskTemplate>();
  /** Whether the service this pass creates tasks for has its endpoint allocated. */
  private allocated: { service: Service; ingressId: string | undefined; done: boolean } | undefined;
  /** The last tasksOfService answer, valid while no write was added (in-place changes show through). */
  private serviceTasks: { serviceId: string; writes: number; tasks: readonly Task[] } | undefined;
  /** Restarts of this pass by replacement task id. */
  private readonly plannedStarts = new Map<string, number>();

  constructor(
    readonly tx: Tx,
    readonly now: number,
    private readonly opts: ContextOptions,
  ) {}

  node(id: string): Node | undefined {
    return id ? this.tx.get('nodes', id) : undefined;
  }

  /**
   * The service's tasks as this pass sees them (its own writes included). Read-only: the list is
   * shared until the pass writes again, since reading a big service is what a pass costs most.
   */
  tasksOfService(serviceId: string): readonly Task[] {
    const c = this.serviceTasks;
    if (c && c.serviceId === serviceId && c.writes === this.tx.actions.length) return c.tasks;
    const tasks = this.tx.find('tasks', 'service', serviceId);
    this.serviceTasks = { serviceId, writes: this.tx.actions.length, tasks };
    return tasks;
  }

  /**
   * The service's replicated tasks by slot (read-only, shared like tasksOfService): a pass over a
   * service of 100,000 replicas looks at its slots several times between writes.
   */
  slotsOf(serviceId: string): ReadonlyMap<number, Task[]> {
    const c = this.slotCache;
    if (c && c.serviceId === serviceId && c.writes === this.tx.actions.length) return c.slots;
    const slots = new Map<number, Task[]>();
    for (const t of this.tasksOfService(serviceId)) {
      if (t.slot <= 0) continue;
      const list = slots.get(t.slot);
      if (list) list.push(t);
      else slots.set(t.slot, [t]);
    }
    this.slotCache = { serviceId, writes: this.tx.actions.length, slots };
    return slots;
  }

  tasksInSlot(t: Pick<Task, 'serviceId' | 'slot' | 'nodeId'>): Task[] {
    return this.tx.find('tasks', 'slot', slotKey(t));
  }

  /** The cluster's task history retention limit (swarmkit's default 5 when there is no cluster). */
  historyLimit(): number {
    const cluster = this.tx.all('clusters')[0];
    return cluster ? (cluster.spec?.taskHistoryRetentionLimit ?? DEFAULT_TASK_HISTORY) : DEFAULT_TASK_HISTORY;
  }

  /**
   * Whether `n` more writes fit in this pass's transaction. Once it is full, further writes are
   * dropped and the service is looked at again at once: every reconciler decides from the store
   * afresh, so what was dropped is decided again. Writes that only make sense together (a restart:
   * shut down the old task, create its replacement) ask for room first.
   */
  hasRoom(n = 1): boolean {
    const at = this.tx.actions.length;
    if (at + n > this.opts.maxWrites) {
      this.effects.more = true;
      return false;
    }
    // Writes that only make sense together stay in one transaction.
    if (at >= this.groupEnd && at > 0 && this.cuts.at(-1) !== at) this.cuts.push(at);
    this.groupEnd = Math.max(this.groupEnd, at + n);
    return true;
  }

  /**
   * The pass's writes as transactions of at most maxWritesPerTransaction writes, cut only between
   * groups. One big transaction would make one big Raft entry that every manager decodes and
   * applies in one go, blocking its event loop; several proposed together commit in the same
   * Raft round. Each commits or fails alone: a pass re-run decides what failed afresh.
   */
  transactions(): StoreAction[][] {
    const actions = this.tx.actions;
    const max = this.opts.maxWritesPerTransaction ?? Number.POSITIVE_INFINITY;
    if (actions.length <= max) return actions.length > 0 ? [actions] : [];
    const out: StoreAction[][] = [];
    let start = 0;
    let lastCut = 0;
    for (const cut of [...this.cuts, actions.length]) {
      if (cut - start > max && lastCut > start) {
        out.push(actions.slice(start, lastCut));
        start = lastCut;
      }
      lastCut = cut;
    }
    if (start < actions.length) out.push(actions.slice(start));
    return out;
  }

  /** Writes this pass may still add. */
  roomLeft(): number {
    return Math.max(0, this.opts.maxWrites - this.tx.actions.length);
  }

  /**
   * New tasks for these slots, made after this pass commits rather than in it. A scale-up of
   * 100,000 replicas would otherwise take one pass per few thousand tasks, each pass reading the
   * whole service again (and blocking the event loop while it does): filling the slots needs no
   * decision beyond their numbers, so the orchestrator writes them in bounded transactions and
   * gives the event loop a turn between them.
   */
  createLater(service: Service, slots: number[]): void {
    if (slots.length > 0) this.effects.creates = { service, slots };
  }

  /** Records a restart made by this pass. */
  planRestart(r: RestartRecord): void {
    this.effects.restarts.push(r);
    this.plannedStarts.set(r.newTaskId, r.dueAt);
  }

  /** When a replacement created by this pass may start, if this pass created it. */
  plannedStart(taskId: string): number | undefined {
    return this.plannedStarts.get(taskId);
  }

  /** Changes a task; repeated changes in one pass land in one write. */
  mutate(task: Task, change: (t: Task) => void): void {
    let t = this.written.get(task.id);
    if (!t) {
      if (!this.hasRoom()) return;
      t = copy(Task, task);
      change(t);
      this.tx.update('tasks', t);
      this.written.set(t.id, t);
    } else {
      // Already in this transaction: the object the transaction holds is changed in place.
      change(t);
    }
  }

  /**
   * Changes the service this pass is about (its update status, a rollback's spec); repeated
   * changes in one pass land in one write. Returns the service as this pass now sees it.
   */
  mutateService(service: Service, change: (s: Service) => void): Service {
    if (!this.writtenService) {
      if (!this.hasRoom()) return service;
      this.writtenService = copy(Service, service);
      change(this.writtenService);
      this.tx.update('services', this.writtenService);
    } else {
      change(this.writtenService);
    }
    return this.writtenService;
  }

  setDesired(task: Task, state: TaskState): void {
    if ((this.written.get(task.id) ?? task).desiredState === state) return;
    this.mutate(task, (t) => (t.desiredState = state));
  }

  /** Creates a task (desired RUNNING unless told otherwise) and admits it towards scheduling. */
  createTask(service: Service, where: Placement, desiredState: TaskState = 'RUNNING'): Task | undefined {
    if (!this.hasRoom()) return undefined;
    // The service this pass changes may change again: only a committed one's copy is kept.
    let template = this.taskTemplates.get(service);
    if (!template || service === this.writtenService) {
      template = taskTemplate(service);
      if (service !== this.writtenService) this.taskTemplates.set(service, template);
    }
    const t = newTask(service, where, this.opts.newId(), this.now, template);
    t.desiredState = desiredState;
    admitNewTask(t, this.now, this.opts.allocatorRuns && this.needsAllocator(service, t));
    this.tx.create('tasks', t);
    this.written.set(t.id, t);
    return t;
  }

  /**
   * Whether the allocator has anything to give this new task. A task that joins no network, of a
   * service whose endpoint is allocated, would only be moved NEW -> PENDING by it with nothing
   * else changed: it is created PENDING instead, which saves every such task one Raft write.
   */
  private needsAllocator(service: Service, t: Task): boolean {
    if (this.allocated?.service !== service) {
      const ingressId = this.tx.all('networks').find((n) => n.spec?.ingress)?.id;
      this.allocated = { service, ingressId, done: isServiceAllocated(service, ingressId) };
    }
    return !this.allocated.done || taskAttachmentConfigs(t, service, this.allocated.ingressId).length > 0;
  }

  remove(task: Task): void {
    if (!this.hasRoom()) return;
    this.tx.remove('tasks', task.id);
    this.written.delete(task.id);
  }

  wake(at: number): void {
    if (this.effects.wakeAt === undefined || at < this.effects.wakeAt) this.effects.wakeAt = at;
  }
}
