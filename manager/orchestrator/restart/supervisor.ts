// The restart supervisor, after swarmkit's: when a task stops while it is still wanted, the old
// task is told to shut down and, if the restart policy allows, a replacement takes its slot (or,
// for global services, its node).
//
// Delays are swarmkit's: the replacement is created at once with desired state READY, so the
// scheduler places it and the agent prepares it, and it is promoted to RUNNING when the delay has
// passed and the old task has stopped (or after `oldTaskTimeoutMs` if the old one never reports).
// Because the replacement exists from the first moment, the slot is never empty and no
// reconciliation can fill it twice. Promotion is level-triggered: any pass over the slot checks
// its READY tasks, so a new leader resumes delays from the tasks' creation times.
//
// Restart history (for max attempts within a window) is kept in memory, as in swarmkit: a new
// leader starts with a clean count.
import { TaskStateNumber, type Service, type Task } from '../../../proto/gen/objects.js';
import type { ReconcileContext, Effects } from '../context.js';
import { isGlobal, isJob, nodeInvalid, nodeLost } from '../service.js';
import { isTaskDirty } from '../update/dirty.js';
import { endedByItself, isLive, slotKey, succeeded } from '../task.js';

export const DEFAULT_RESTART_DELAY_MS = 5000;
export const DEFAULT_OLD_TASK_TIMEOUT_MS = 60_000;

/** Why a wanted task is being replaced. */
export type RestartCause = 'stopped' | 'node-down' | 'node-drained';

interface History {
  specVersion: number;
  total: number;
  /** Times of the latest restarts (at most max-attempts of them matter). */
  times: number[];
}

export interface SupervisorOptions {
  defaultRestartDelayMs?: number;
  oldTaskTimeoutMs?: number;
}

export class RestartSupervisor {
  private readonly history = new Map<string, History>();
  /** Start times of replacements made by this leader (after a failover: creation + delay). */
  private readonly due = new Map<string, number>();
  readonly defaultDelayMs: number;
  readonly oldTaskTimeoutMs: number;

  constructor(opts: SupervisorOptions = {}) {
    this.defaultDelayMs = opts.defaultRestartDelayMs ?? DEFAULT_RESTART_DELAY_MS;
    this.oldTaskTimeoutMs = opts.oldTaskTimeoutMs ?? DEFAULT_OLD_TASK_TIMEOUT_MS;
  }

  private historyKey(t: Task, service: Service): string {
    return isJob(service) ? `${slotKey(t)}@${t.jobIteration}` : slotKey(t);
  }

  /** The policy's delay: 5 s when the task has no restart policy; as written when it has one. */
  delayOf(t: Task): number {
    const r = t.spec?.restart;
    return r ? Math.max(0, r.delayMs) : this.defaultDelayMs;
  }

  /**
   * Whether a task that stopped by itself should be replaced: condition any (the default; for jobs
   * it means "until success"), on-failure (anything but a clean exit), none; and fewer than
   * max-attempts restarts within the window before the task stopped (0 = unlimited).
   */
  shouldRestart(t: Task, service: Service, now: number): boolean {
    const policy = t.spec?.restart;
    let condition = policy?.condition ?? 'ANY';
    if (condition === 'ANY' && isJob(service)) condition = 'ON_FAILURE';
    if (condition === 'NONE') return false;
    if (condition === 'ON_FAILURE' && succeeded(t)) return false;
    const max = policy?.maxAttempts ?? 0;
    if (max === 0) return true;
    const h = this.history.get(this.historyKey(t, service));
    if (!h || h.specVersion !== t.specVersion) return true;
    const window = policy?.windowMs ?? 0;
    if (window <= 0) return h.total < max;
    const stoppedAt = t.status?.timestamp || now;
    return h.times.filter((at) => at > stoppedAt - window).length < max;
  }

  /**
   * Shuts `t` down and, if it should be replaced, creates the replacement in the same slot (or on
   * the same node for global services). Only the first live task of a slot is ever replaced: if
   * another live task is already there, none is created — unless that one is on its way out: an
   * old-spec task a start-first update keeps running until its successor runs, or a task a
   * start-first service keeps on a drained node until then.
   */
  restart(ctx: ReconcileContext, service: Service, t: Task, cause: RestartCause): Task | undefined {
    // Both writes or neither: an old task shut down without its replacement would leave the slot
    // to be refilled without the restart delay.
    if (!ctx.hasRoom(2)) return undefined;
    ctx.setDesired(t, 'SHUTDOWN');
    const job = isJob(service);
    const others = ctx.tasksInSlot(t).filter((o) => isLive(o) && (job ? o.jobIteration === service.jobIteration : !leaving(ctx, service, o)));
    if (others.length > 0) return undefined;
    if (job && t.jobIteration !== service.jobIteration) return undefined;
    if (cause === 'stopped' && !this.shouldRestart(t, service, ctx.now)) return undefined;
    // Moving off a drained node starts at once (swarmkit), but only after the old task stopped.
    const delay = cause === 'node-drained' ? 0 : this.delayOf(t);
    const waitStop = cause === 'node-drained' && !nodeLost(ctx.node(t.nodeId));
    const where = isGlobal(service) ? { nodeId: t.nodeId } : { slot: t.slot };
    const replacement = ctx.createTask(service, { ...where, jobIteration: job ? service.jobIteration : 0 }, delay > 0 || waitStop ? 'READY' : 'RUNNING');
    if (!replacement) return undefined;
    ctx.planRestart({
      key: this.historyKey(replacement, service),
      specVersion: service.specVersion,
      at: ctx.now,
      newTaskId: replacement.id,
      dueAt: ctx.now + delay,
      counted: cause === 'stopped',
      startsReady: replacement.desiredState === 'READY',
    });
    if (replacement.desiredState === 'READY') ctx.wake(ctx.now + delay);
    return replacement;
  }

  /**
   * A slot whose latest task stopped by itself and must not be restarted still counts as filled
   * (Docker shows such a service as 0/1 rather than starting a new task).
   */
  heldByStoppedTask(last: Task | undefined, service: Service, now: number): boolean {
    return !!last && last.desiredState === 'SHUTDOWN' && endedByItself(last) && !this.shouldRestart(last, service, now);
  }

  /** Promotes the slot's READY tasks whose delay is over and whose predecessor has stopped. */
  promoteReady(ctx: ReconcileContext, slotTasks: Task[]): void {
    for (const t of slotTasks) {
      if (t.desiredState !== 'READY') continue;
      const planned = ctx.plannedStart(t.id);
      const dueAt = planned ?? this.due.get(t.id) ?? (t.meta?.createdAt ?? ctx.now) + this.delayOf(t);
      if (ctx.now < dueAt) {
        ctx.wake(dueAt);
        continue;
      }
      const oldStillRunning = slotTasks.some((o) => o.id !== t.id && !isLive(o) && stillRunning(ctx, o));
      if (oldStillRunning && ctx.now < dueAt + this.oldTaskTimeoutMs) {
        ctx.wake(dueAt + this.oldTaskTimeoutMs);
        continue;
      }
      ctx.setDesired(t, 'RUNNING');
      ctx.effects.promoted.push(t.id);
    }
  }

  /** Records what a committed pass did. */
  commit(effects: Effects): void {
    for (const r of effects.restarts) {
      if (r.startsReady) this.due.set(r.newTaskId, r.dueAt);
      if (!r.counted) continue;
      let h = this.history.get(r.key);
      if (!h || h.specVersion !== r.specVersion) {
        h = { specVersion: r.specVersion, total: 0, times: [] };
        this.history.set(r.key, h);
      }
      h.total++;
      h.times.push(r.at);
      if (h.times.length > 1024) h.times.shift();
    }
    for (const id of effects.promoted) this.due.delete(id);
  }

  /** Forgets a task that left READY (promoted, stopped, deleted). */
  forgetTask(taskId: string): void {
    this.due.delete(taskId);
  }

  /** Forgets a removed service's history. */
  forgetService(serviceId: string): void {
    for (const key of this.history.keys()) if (key.startsWith(serviceId + '/')) this.history.delete(key);
  }
}

/** A task that its node may still be running (and will report on): assigned up to running, on a node not lost. */
export function stillRunning(ctx: ReconcileContext, t: Task): boolean {
  const s = TaskStateNumber[t.status?.state ?? 'NEW'];
  return s >= TaskStateNumber.ASSIGNED && s <= TaskStateNumber.RUNNING && !nodeLost(ctx.node(t.nodeId));
}

/** A live task that stays only until its successor in the slot runs (see `restart`). */
function leaving(ctx: ReconcileContext, service: Service, t: Task): boolean {
  const node = t.nodeId ? ctx.node(t.nodeId) : undefined;
  return (!!t.nodeId && nodeInvalid(node)) || isTaskDirty(service, t, node);
}
