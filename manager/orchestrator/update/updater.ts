// Rolling updates and rollbacks, with swarmkit's semantics and Docker's defaults (parallelism 1,
// delay 0, monitor 5 s, failure action pause, max failure ratio 0, order stop-first).
//
// THE CONTRACT WITH THE CONTROL API (and anything else that writes services)
// - A spec change (`service update`, `--force` bumping task.forceUpdate): previousSpec := spec,
//   spec := the new spec, specVersion := a version never used before for this service (controlapi
//   uses the store version it read), updateStatus := null. A null status with dirty slots starts
//   a new update: this is also how a paused update is resumed (`service update` with no change).
//   A spec change during an update supersedes it: the slots are compared with the newest spec.
// - `service rollback`: spec := previousSpec, previousSpec := the spec rolled back from, a new
//   specVersion, updateStatus := { state ROLLBACK_STARTED, startedAt: now, message "manually
//   requested rollback" }. ROLLBACK_STARTED makes the updater use `spec.rollback` (Docker's
//   defaults when unset) instead of `spec.update`; a rollback that fails pauses (ROLLBACK_PAUSED)
//   and is never rolled back itself.
// - The orchestrator writes updateStatus as Docker shows it: UPDATING ("update in progress",
//   startedAt) when it starts; PAUSED / ROLLBACK_PAUSED ("update paused due to failure or early
//   termination of task <id> (<why>)"); COMPLETED / ROLLBACK_COMPLETED ("update completed",
//   "rollback completed", completedAt). A failed update whose failure action is rollback does what
//   `service rollback` does, but as swarmkit: previousSpec := null, specVersion := the store
//   version it read (controlapi's rule), and the message says "update rolled back due to failure
//   or early termination of task <id> (<why>)".
// - A finished update (COMPLETED, ROLLBACK_COMPLETED) is started again by the orchestrator only
//   for slots that never had a task of the current spec: a global node that was paused or not
//   ready when the update ran.
// - Config: `spec.update` / `spec.rollback` as written; null means Docker's defaults; monitor 0
//   means the default 5 s (as Docker's API conversion reads it); parallelism 0 means all at once.
//
// LEVEL-TRIGGERED: nothing here lives only in memory except the times update tasks started,
// turned healthy and failed, read from their statuses as passes see them (./progress.ts). Every
// pass over a service derives the update's state from the store: the update's tasks are those of
// the service's spec version created since updateStatus.startedAt, and a slot is
//   pending    a live task is dirty, no clean task is live, the slot has no task of this update;
//   in flight  it has tasks of this update, none of which has run healthy or failed yet;
//   done       one of its update tasks ran healthy or failed (swarmkit's worker moves on then),
//              or waited a monitor period unscheduled (see noteUnscheduled).
// At most `parallelism` slots are in flight or in their `delay` after being done. A new leader
// therefore resumes where the old one was, and never gives a slot a second replacement.
//
// Per slot: stop-first shuts the old task down and creates the new one READY, promoted to RUNNING
// once the old one has stopped (or its node stays silent for the restart supervisor's old-task
// timeout); start-first creates the new one RUNNING and shuts the old one down once the new one
// runs healthy, so running capacity never drops below the replica count. A slot's new task that
// fails is the restart supervisor's to restart, as any task; its failure within `monitor` of
// starting counts once per slot against max-failure-ratio (failed slots / slots of the update).
// After the last slot, the update stays running for one more delay and monitor period before it
// completes, so late failures still count. A new task no node can take fails its slot after one
// monitor period (see noteUnscheduled; swarmkit waits for it forever).
//
// Health: a task counts as updated once RUNNING and, when its spec has a health check, healthy. A
// health check that only the image defines is invisible to the managers: such a task counts once
// RUNNING unless its agent already reported it "starting".
//
// Draining a node under a start-first service follows the same order (./drain.ts).
import { UpdateStatus, type Service, type Task } from '../../../proto/gen/objects.js';
import { blank } from '../../store/blank.js';
import type { ReconcileContext } from '../context.js';
import { stillRunning } from '../restart/supervisor.js';
import { isJob } from '../service.js';
import { byAge, endedByItself, isLive, observedState, type Placement } from '../task.js';
import { rollingBack, updateConfigOf, updatePaused, updateRunning } from './config.js';
import { isTaskDirty } from './dirty.js';
import { failure, runsHealthy, unscheduled, UpdateProgress } from './progress.js';

/** A slot (replicated) or node (global) of a service, as the reconciler hands it over. */
export interface UpdateSlot {
  /** Every task of the slot, history included. */
  tasks: Task[];
  /** Where its replacement goes. */
  where: Placement;
  /** A replacement may be started now (a global slot's node takes new tasks). */
  canStart: boolean;
  /** Orders slots (slot number, node id). */
  order: number | string;
}

interface SlotView {
  slot: UpdateSlot;
  dirtyLive: Task[];
  cleanLive: Task[];
  /** Tasks of this update in the slot, oldest first. */
  attempts: Task[];
  /** Never had a task of the current spec. */
  neverTried: boolean;
}

const createdAt = (t: Task, now: number): number => t.meta?.createdAt ?? now;

export class Updater {
  readonly progress = new UpdateProgress();

  constructor(private readonly oldTaskTimeoutMs: number) {}

  /** One step of the service's update, in the pass `ctx`. */
  run(ctx: ReconcileContext, service: Service, slots: UpdateSlot[]): void {
    if (!service.spec || isJob(service) || updatePaused(service)) return;
    const dirty = (t: Task) => isTaskDirty(service, t, ctx.node(t.nodeId));
    let running = updateRunning(service);
    let startedAt = running ? service.updateStatus!.startedAt : 0;
    if (running && !startedAt) {
      // Written without a start time by someone else: start counting now.
      startedAt = ctx.now;
      ctx.mutateService(service, (s) => (s.updateStatus!.startedAt = ctx.now));
    }

    // Tasks of this update: made from this very spec version since the update started. (An
    // update resumed by a spec write gets a new version: what the paused one made is not its own.)
    const ofThisUpdate = (t: Task) => t.specVersion === service.specVersion && createdAt(t, ctx.now) >= startedAt;
    const view = (slot: UpdateSlot): SlotView => {
      const tasks = [...slot.tasks].sort(byAge);
      const live = tasks.filter(isLive);
      return {
        slot: { ...slot, tasks },
        dirtyLive: live.filter(dirty),
        cleanLive: live.filter((t) => !dirty(t)),
        attempts: running ? tasks.filter((t) => ofThisUpdate(t)) : [],
        neverTried: tasks.every(dirty),
      };
    };
    // With no update running, most passes only ask whether one should start: answered without
    // building a view of every slot (a service of 100,000 replicas has as many).
    if (!running && !this.updateWanted(service, slots, dirty)) return;
    let views = slots.map(view);

    if (!running) {
      // A new spec (status reset) starts an update; after a finished one, only slots that never
      // had a task of this spec do (a global task on a node that was paused meanwhile).
      const fresh = !service.updateStatus || service.updateStatus.state === 'UNKNOWN';
      const wanted = views.some((v) => v.slot.canStart && v.dirtyLive.length > 0 && (fresh || v.neverTried));
      if (!wanted || !ctx.hasRoom(2)) return;
      ctx.mutateService(service, (s) => {
        s.updateStatus = blank(UpdateStatus, { state: 'UPDATING', startedAt: ctx.now, message: 'update in progress' });
      });
      running = true;
      startedAt = ctx.now;
      views = slots.map(view);
    }

    const config = updateConfigOf(service);
    this.progress.observe(
      views.flatMap((v) => v.attempts),
      ctx.now,
    );
    for (const v of views) for (const t of v.attempts) this.noteUnscheduled(ctx, v.slot.tasks, t, config.monitorMs);

    // Start-first slots whose new task runs healthy: the old one goes.
    for (const v of views) {
      if (v.dirtyLive.length > 0 && v.cleanLive.some(runsHealthy)) for (const t of v.dirtyLive) ctx.setDesired(t, 'SHUTDOWN');
    }

    if (this.failureAction(ctx, service, views, config)) return;

    // Slots busy: in flight, or done less than `delay` ago.
    const finishedAt = (v: SlotView): number | undefined => {
      const times = v.attempts.map((t) => this.progress.healthyAt(t.id) ?? this.progress.failedAt(t.id)).filter((x): x is number => x !== undefined);
      return times.length > 0 ? Math.min(...times) : undefined;
    };
    let busy = 0;
    let lastFinish: number | undefined;
    let inFlight = 0;
    for (const v of views) {
      if (v.attempts.length === 0) continue;
      const done = finishedAt(v);
      if (done === undefined) {
        busy++;
        inFlight++;
        continue;
      }
      lastFinish = Math.max(lastFinish ?? done, done);
      if (done + config.delayMs > ctx.now) {
        busy++;
        ctx.wake(done + config.delayMs);
      }
    }

    const pending = views
      .filter((v) => v.slot.canStart && v.dirtyLive.length > 0 && v.cleanLive.length === 0 && v.attempts.length === 0)
      .sort((a, b) => Number(runsAny(a)) - Number(runsAny(b)) || compareOrder(a.slot.order, b.slot.order));
    const parallelism = config.parallelism > 0 ? config.parallelism : Number.POSITIVE_INFINITY;
    let started = 0;
    for (const v of pending) {
      if (busy >= parallelism) break;
      if (!this.startSlot(ctx, service, v, config.order === 'START_FIRST')) break;
      busy++;
      started++;
    }

    // Stop-first replacements start once the task they replace has stopped.
    for (const v of views) this.promote(ctx, dirty, ofThisUpdate, v.slot);

    if (started === 0 && inFlight === 0 && pending.length === 0) {
      const completeAt = lastFinish === undefined ? ctx.now : lastFinish + config.delayMs + config.monitorMs;
      if (ctx.now < completeAt) ctx.wake(completeAt);
      else this.finish(ctx, service);
    }
  }

  /** Whether some slot that may start has a live task of an old spec to replace (see run()). */
  private updateWanted(service: Service, slots: UpdateSlot[], dirty: (t: Task) => boolean): boolean {
    const fresh = !service.updateStatus || service.updateStatus.state === 'UNKNOWN';
    return slots.some((s) => s.canStart && s.tasks.some((t) => isLive(t) && dirty(t)) && (fresh || s.tasks.every(dirty)));
  }

  /** Counts failed slots; past max-failure-ratio, pauses or rolls back. True when it acted. */
  private failureAction(ctx: ReconcileContext, service: Service, views: SlotView[], config: ReturnType<typeof updateConfigOf>): boolean {
    if (config.failureAction === 'CONTINUE') return false;
    const failed: { task: Task; at: number }[] = [];
    for (const v of views) {
      const first = v.attempts.find((t) => this.progress.failedWithin(t.id, config.monitorMs));
      if (first) failed.push({ task: first, at: this.progress.failedAt(first.id)! });
    }
    if (failed.length === 0) return false;
    const total = views.filter((v) => v.attempts.length > 0 || v.dirtyLive.length > 0).length;
    if (Math.fround(failed.length / Math.max(total, 1)) <= Math.fround(config.maxFailureRatio)) return false;

    const last = failed.sort((a, b) => a.at - b.at || (a.task.id < b.task.id ? -1 : 1)).at(-1)!.task;
    const why = `failure or early termination of task ${last.id} (${failureReason(last)})`;
    if (rollingBack(service)) {
      this.pause(ctx, service, 'ROLLBACK_PAUSED', `rollback paused due to ${why}`);
    } else if (config.failureAction === 'ROLLBACK' && service.previousSpec) {
      ctx.mutateService(service, (s) => {
        s.spec = s.previousSpec;
        s.previousSpec = null;
        // A version never used for this service, as controlapi makes them: the store version read.
        s.specVersion = s.meta?.version ?? s.specVersion + 1;
        s.updateStatus = blank(UpdateStatus, { state: 'ROLLBACK_STARTED', startedAt: ctx.now, message: `update rolled back due to ${why}` });
      });
    } else {
      const noPrevious = config.failureAction === 'ROLLBACK' ? '; there is no previous spec to roll back to' : '';
      this.pause(ctx, service, 'PAUSED', `update paused due to ${why}${noPrevious}`);
    }
    return true;
  }

  /**
   * An update task no node can take. Docker leaves such a task PENDING with the scheduler's reason
   * and its update "in progress" for ever (swarmkit's updater waits for the task to run without a
   * deadline). The task itself stays PENDING here too, as in Docker: the scheduler keeps trying
   * it, and it runs as soon as a node fits. But the update counts its slot as failed once the task
   * has waited a monitor period with the scheduler's reason on it, so the failure action applies —
   * pause with that reason, continue, or roll back — instead of an update that never ends (a
   * constraint no node matches, a reservation no node has left). A task the scheduler has not
   * decided on yet (no reason: a busy manager) is not counted, however long it waits. The wait
   * starts at the latest of: the reason written, and the slot's old task stopped (a stop-first
   * replacement may need what the old one held). All of it is read from the store, so a new
   * leader agrees.
   */
  private noteUnscheduled(ctx: ReconcileContext, slotTasks: readonly Task[], t: Task, monitorMs: number): void {
    if (!unscheduled(t) || !t.status?.err || this.progress.failedAt(t.id) !== undefined) return;
    const before = slotTasks.filter((o) => o.id !== t.id && !isLive(o));
    if (before.some((o) => stillRunning(ctx, o))) return; // its end is reported, with a new pass
    const since = [t.status.timestamp, ...before.map((o) => o.status?.timestamp ?? 0)].map((at) => Math.min(ctx.now, at));
    const due = Math.max(createdAt(t, ctx.now), ...since) + monitorMs;
    if (ctx.now >= due) this.progress.markFailed(t.id, due);
    else ctx.wake(due);
  }

  private pause(ctx: ReconcileContext, service: Service, state: 'PAUSED' | 'ROLLBACK_PAUSED', message: string): void {
    ctx.mutateService(service, (s) => {
      s.updateStatus = blank(UpdateStatus, { ...s.updateStatus, state, message });
    });
  }

  private finish(ctx: ReconcileContext, service: Service): void {
    const back = rollingBack(service);
    ctx.mutateService(service, (s) => {
      s.updateStatus = blank(UpdateStatus, {
        ...s.updateStatus,
        state: back ? 'ROLLBACK_COMPLETED' : 'COMPLETED',
        message: back ? 'rollback completed' : 'update completed',
        completedAt: ctx.now,
      });
    });
  }

  /** Starts a pending slot's replacement; false when the pass has no room left. */
  private startSlot(ctx: ReconcileContext, service: Service, v: SlotView, startFirst: boolean): boolean {
    if (!ctx.hasRoom(1 + (startFirst ? 0 : v.dirtyLive.length))) return false;
    if (!startFirst) for (const t of v.dirtyLive) ctx.setDesired(t, 'SHUTDOWN');
    return ctx.createTask(service, v.slot.where, startFirst ? 'RUNNING' : 'READY') !== undefined;
  }

  /**
   * Promotes the slot's stop-first replacement (the update's first task there, READY, following a
   * dirty task the orchestrator stopped) once no old task of the slot may still be running. A
   * READY task that follows a task that failed by itself is a restart: its delay is the restart
   * supervisor's.
   */
  private promote(ctx: ReconcileContext, dirty: (t: Task) => boolean, ofThisUpdate: (t: Task) => boolean, slot: UpdateSlot): void {
    const anchor = slot.tasks[0];
    if (!anchor) return;
    const tasks = ctx.tasksInSlot(anchor).sort(byAge);
    const i = tasks.findIndex(ofThisUpdate);
    const t = tasks[i];
    if (!t || t.desiredState !== 'READY' || i === 0) return;
    const predecessor = tasks[i - 1]!;
    if (!dirty(predecessor) || endedByItself(predecessor)) return;
    const deadline = createdAt(t, ctx.now) + this.oldTaskTimeoutMs;
    if (tasks.some((o) => o !== t && !isLive(o) && stillRunning(ctx, o)) && ctx.now < deadline) {
      ctx.wake(deadline);
      return;
    }
    ctx.setDesired(t, 'RUNNING');
  }
}

/** Why a failed update task counts as failed, for the update's message. */
function failureReason(t: Task): string {
  const why = failure(t);
  if (why !== undefined) return why;
  if (unscheduled(t) && t.status?.err) return `not scheduled within the monitor period: ${t.status.err}`;
  return observedState(t).toLowerCase();
}

const runsAny = (v: SlotView): boolean => v.dirtyLive.some((t) => observedState(t) === 'RUNNING');

function compareOrder(a: number | string, b: number | string): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}
