// A worker that runs nothing, for simulated nodes at scale. It takes the dispatcher's assignments
// exactly as agent/worker's Worker does (a COMPLETE set, then INCREMENTAL changes that must follow
// the set it has) and walks each task through the same states as the real task controller, but
// every step succeeds at once: desired RUNNING goes ACCEPTED → PREPARING → READY → STARTING →
// RUNNING in one turn, desired READY stops at READY, desired SHUTDOWN (or beyond) ends in SHUTDOWN,
// and a REMOVE (or a task missing from a COMPLETE set) is dropped without a report, as a removed
// container is. Every state goes to the StatusReporter, whose batching keeps only the latest of
// each task, so what the managers see is the real agent's traffic with the containers taken out.
import type { AssignmentChange, AssignmentsMessage } from '../../proto/gen/dispatcher.js';
import type { Task, TaskState, TaskStatus } from '../../proto/gen/objects.js';
import type { StatusReporter } from '../worker/reporter.js';
import { AssignmentGapError } from '../worker/worker.js';
import { atLeast, before, emptyStatus, isTerminal } from '../worker/states.js';

/** Told of every state a simulated task reaches, and of tasks leaving the node. */
export interface TaskObserver {
  state(nodeId: string, task: Task, state: TaskState): void;
  /** The task left the node (removed, or the node died): whatever it ran is gone. */
  gone(nodeId: string, task: Task): void;
}

export interface SimulatedWorkerOptions {
  nodeId: string;
  reporter: StatusReporter;
  observer?: TaskObserver;
  now?: () => number;
}

interface SimulatedTask {
  task: Task;
  status: TaskStatus;
}

/** The step the real controller takes from each state while the task is wanted. */
const NEXT: Partial<Record<TaskState, { state: TaskState; message: string }>> = {
  NEW: { state: 'ACCEPTED', message: 'accepted' },
  PENDING: { state: 'ACCEPTED', message: 'accepted' },
  ASSIGNED: { state: 'ACCEPTED', message: 'accepted' },
  ACCEPTED: { state: 'PREPARING', message: 'preparing' },
  PREPARING: { state: 'READY', message: 'prepared' },
  READY: { state: 'STARTING', message: 'starting' },
  STARTING: { state: 'RUNNING', message: 'started' },
};

export class SimulatedWorker {
  private readonly tasks = new Map<string, SimulatedTask>();
  private readonly now: () => number;
  private assignmentsVersion = '';
  private dead = false;

  constructor(private readonly options: SimulatedWorkerOptions) {
    this.now = options.now ?? Date.now;
  }

  /** One message of the Assignments stream (AgentSession's AssignmentsConsumer). */
  applyAssignments(message: AssignmentsMessage): Promise<void> {
    if (this.dead) return Promise.reject(new Error(`simulated node ${this.options.nodeId} is dead`));
    if (message.type === 'COMPLETE') {
      const wanted = new Set<string>();
      for (const c of message.changes) {
        if (c.action !== 'UPDATE' || !c.task) continue;
        wanted.add(c.task.id);
        this.adopt(c.task);
      }
      for (const id of [...this.tasks.keys()]) if (!wanted.has(id)) this.drop(id);
    } else {
      if (this.assignmentsVersion !== '' && message.appliesTo !== '' && message.appliesTo !== this.assignmentsVersion) {
        return Promise.reject(new AssignmentGapError(this.assignmentsVersion, message.appliesTo));
      }
      this.update(message.changes);
    }
    this.assignmentsVersion = message.resultsIn;
    return Promise.resolve();
  }

  /** Tasks on this node with the state it observed. */
  list(): Array<{ task: Task; status: TaskStatus }> {
    return [...this.tasks.values()].map((t) => ({ task: t.task, status: t.status }));
  }

  get size(): number {
    return this.tasks.size;
  }

  /** The node died: every task it ran is gone, nothing more is reported or accepted. */
  die(): void {
    this.dead = true;
    for (const id of [...this.tasks.keys()]) this.drop(id);
  }

  private update(changes: AssignmentChange[]): void {
    for (const c of changes) {
      if (!c.task) continue;
      if (c.action === 'REMOVE') this.drop(c.task.id);
      else this.adopt(c.task);
    }
  }

  private adopt(task: Task): void {
    const existing = this.tasks.get(task.id);
    if (existing) {
      existing.task = task; // the desired state (and spec) count, the manager's status does not
      const reported = existing.status.state;
      this.drive(existing);
      // The manager's copy lags behind (a lost report, a new session): tell it again.
      if (existing.status.state === reported && task.status && task.status.state !== reported) this.options.reporter.report(task.id, existing.status);
      return;
    }
    // A task the managers already saw further along (a new session after a failover) keeps that
    // state: this node "still runs" it.
    const given = task.status;
    const status: TaskStatus = given && !before(given.state, 'ASSIGNED') ? { ...given } : { ...emptyStatus('ASSIGNED', this.now()), message: 'assigned' };
    const t: SimulatedTask = { task, status };
    this.tasks.set(task.id, t);
    this.options.reporter.report(task.id, status);
    this.options.observer?.state(this.options.nodeId, task, status.state);
    this.drive(t);
  }

  /** Moves the task as far as its desired state asks, reporting every state on the way. */
  private drive(t: SimulatedTask): void {
    for (;;) {
      const state = t.status.state;
      if (atLeast(t.task.desiredState, 'SHUTDOWN')) {
        if (!isTerminal(state)) this.transition(t, 'SHUTDOWN', 'shutdown');
        return;
      }
      if (isTerminal(state) || state === 'RUNNING') return;
      if (state === 'READY' && before(t.task.desiredState, 'RUNNING')) return;
      const next = NEXT[state];
      if (!next) return;
      this.transition(t, next.state, next.message);
    }
  }

  private transition(t: SimulatedTask, state: TaskState, message: string): void {
    t.status = { ...emptyStatus(state, this.now()), message };
    this.options.reporter.report(t.task.id, t.status);
    this.options.observer?.state(this.options.nodeId, t.task, state);
  }

  private drop(id: string): void {
    const t = this.tasks.get(id);
    if (!t) return;
    this.tasks.delete(id);
    this.options.observer?.gone(this.options.nodeId, t.task);
  }
}
