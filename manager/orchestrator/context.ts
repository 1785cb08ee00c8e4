// One reconciliation pass: the transaction it writes through, the time it runs at, and what it
// leaves to do once it commits (restart history, delayed starts, wake-ups). Every reconciler
// writes through here so that a task is written at most once per transaction: the store checks
// each update against the version read, and a second update of the same task in one transaction
// would conflict with the first.
import { Service, Task, type Node, type TaskState } from '../../proto/gen/objects.js';
import { copy } from '../store/blank.js';
import type { Tx } from '../store/memory.js';
import { admitNewTask, newTask, slotKey, type Placement } from './task.js';

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
}

export interface ContextOptions {
  newId: () => string;
  allocatorRuns: boolean;
  /** Writes per transaction (one Raft entry); the rest waits for the next pass. */
  maxWrites: number;
}

export const DEFAULT_TASK_HISTORY = 5;

export class ReconcileContext {
  readonly effects: Effects = { restarts: [], promoted: [] };
  private readonly written = new Map<string, Task>();
  private writtenService: Service | undefined;

  constructor(
    readonly tx: Tx,
    readonly now: number,
    private readonly opts: ContextOptions,
  ) {}

  node(id: string): Node | undefined {
    return id ? this.tx.get('nodes', id) : undefined;
  }

  tasksOfService(serviceId: string): Task[] {
    return this.tx.find('tasks', 'service', serviceId);
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
    if (this.tx.actions.length + n <= this.opts.maxWrites) return true;
    this.effects.more = true;
    return false;
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
    const t = newTask(service, where, this.opts.newId(), this.now);
    t.desiredState = desiredState;
    admitNewTask(t, this.now, this.opts.allocatorRuns);
    this.tx.create('tasks', t);
    this.written.set(t.id, t);
    return t;
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
