// How far a task of a rolling update got: running and healthy (the slot is updated), or failed.
// The states come from the store; so do the times they were reached.
//
// The store keeps only a task's latest status, so "when did it start" is gone once it fails, and
// the monitor period needs it. Each pass notes, per update task, when it ran, turned healthy and
// failed, taking the time from the task's own status timestamp (when its agent reached that
// state; health changes stamp it too), capped at the pass's clock so an agent whose clock runs
// ahead cannot date anything in the future. Not from when this leader happened to look: after a
// failover, agents reconnect and report late what happened meanwhile, and a task that ran before
// the new leader heard of it must have its monitor window counted from when it started, not from
// the report. (Agents' clocks are taken to be roughly in step, as swarmkit takes them.) A task
// first seen failed, whose start is lost, counts as failed before it started — within the monitor
// period, as swarmkit counts a failure of a task it never saw run.
import type { Task } from '../../../proto/gen/objects.js';
import { endedByItself, isLive, observedState } from '../task.js';

/** The spec asks for a health check (["NONE"] turns the image's off). */
export function hasHealthCheck(t: Task): boolean {
  const test = t.spec?.container?.healthcheck?.test ?? [];
  return test.length > 0 && test[0] !== 'NONE';
}

/**
 * Running, and healthy if it has a health check. A check the image defines is invisible here:
 * such a task counts as healthy unless its agent already reported it "starting" or "unhealthy".
 */
export function runsHealthy(t: Task): boolean {
  if (observedState(t) !== 'RUNNING') return false;
  const health = t.status?.health ?? '';
  return hasHealthCheck(t) ? health === 'healthy' : health !== 'starting' && health !== 'unhealthy';
}

/** Meant to run and not placed on a node yet: the scheduler has found none so far. */
export function unscheduled(t: Task): boolean {
  const state = observedState(t);
  return isLive(t) && (state === 'NEW' || state === 'PENDING');
}

/** Why the task counts as failed — it ended by itself, or runs unhealthy — or undefined. */
export function failure(t: Task): string | undefined {
  const state = observedState(t);
  if (state === 'RUNNING' && t.status?.health === 'unhealthy') return 'unhealthy';
  if (!endedByItself(t)) return undefined;
  const detail = t.status?.err || t.status?.message || '';
  return detail ? `${state.toLowerCase()}: ${detail}` : state.toLowerCase();
}

interface Seen {
  runningAt?: number;
  healthyAt?: number;
  failedAt?: number;
}

export class UpdateProgress {
  private readonly seen = new Map<string, Seen>();

  /** Notes the state of a service's update tasks as a pass sees them. */
  observe(tasks: readonly Task[], now: number): void {
    for (const t of tasks) {
      const at = Math.min(now, t.status?.timestamp || now);
      let s = this.seen.get(t.id);
      if (!s) this.seen.set(t.id, (s = {}));
      if (s.runningAt === undefined && observedState(t) === 'RUNNING') s.runningAt = at;
      if (s.healthyAt === undefined && runsHealthy(t)) s.healthyAt = at;
      if (s.failedAt === undefined && failure(t) !== undefined) s.failedAt = at;
    }
  }

  /** The task counts as failed from `at` on, though its state says nothing (see Updater: never scheduled). */
  markFailed(id: string, at: number): void {
    let s = this.seen.get(id);
    if (!s) this.seen.set(id, (s = {}));
    s.failedAt ??= at;
  }

  runningAt = (id: string): number | undefined => this.seen.get(id)?.runningAt;
  healthyAt = (id: string): number | undefined => this.seen.get(id)?.healthyAt;
  failedAt = (id: string): number | undefined => this.seen.get(id)?.failedAt;

  /** A failure within `monitorMs` of the task starting (or before it started). */
  failedWithin(id: string, monitorMs: number): boolean {
    const s = this.seen.get(id);
    if (s?.failedAt === undefined) return false;
    return s.runningAt === undefined || s.failedAt - s.runningAt <= monitorMs;
  }

  forgetTask(id: string): void {
    this.seen.delete(id);
  }
}
