// How far a task of a rolling update got: running and healthy (the slot is updated), or failed.
// The states come from the store; the times they were reached come from what this leader saw.
//
// The store keeps only a task's latest status, so "when did it start" is gone once it fails, and
// the monitor period needs it. This leader notes the time it first saw each update task running,
// healthy and failed (every such change of an updating service brings a pass at once). A new
// leader has seen nothing: its first pass over a service takes each task's status timestamp as
// the time of its current state, and a task it only ever saw failed counts as failed before it
// started — within the monitor period, as swarmkit counts a failure of a task it never saw run.
import type { Task } from '../../../proto/gen/objects.js';
import { endedByItself, observedState } from '../task.js';

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
  /** Services this leader has looked at: after that, a change is seen when it happens. */
  private readonly known = new Set<string>();

  /** Notes the state of a service's update tasks as a pass sees them. */
  observe(serviceId: string, tasks: readonly Task[], now: number): void {
    const first = !this.known.has(serviceId);
    this.known.add(serviceId);
    for (const t of tasks) {
      const at = first ? Math.min(now, t.status?.timestamp || now) : now;
      let s = this.seen.get(t.id);
      if (!s) this.seen.set(t.id, (s = {}));
      if (s.runningAt === undefined && observedState(t) === 'RUNNING') s.runningAt = at;
      if (s.healthyAt === undefined && runsHealthy(t)) s.healthyAt = at;
      if (s.failedAt === undefined && failure(t) !== undefined) s.failedAt = at;
    }
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

  /** Leadership regained: changes made meanwhile were not seen as they happened. */
  lookAfresh(): void {
    this.known.clear();
  }

  forgetTask(id: string): void {
    this.seen.delete(id);
  }

  forgetService(serviceId: string): void {
    this.known.delete(serviceId);
  }
}
