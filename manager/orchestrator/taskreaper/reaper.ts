// The task reaper, after swarmkit's: deletes tasks nobody needs to see any more.
// - A removed service: its tasks are told to REMOVE and deleted once they stopped, never reached a
//   node, or sit on a node that is down or gone (no agent will report them).
// - Tasks with desired state REMOVE (their slot was scaled away): deleted on the same terms; when
//   the newest task of a slot is one, the slot is gone and its whole history goes with it.
// - History: each slot (replicated) or node (global) keeps at most the cluster's
//   task_history_retention_limit tasks, counting the live one, as swarmkit counts; the oldest
//   stopped ones go first. The newest task of a slot is always kept (it may be what holds the slot
//   for a task that must not restart), and so are the completions of a job's current iteration.
//   A negative limit keeps all history.
import type { Service, Task } from '../../../proto/gen/objects.js';
import type { ReconcileContext } from '../context.js';
import { isJob, nodeLost } from '../service.js';
import { groupBy } from '../slots.js';
import { byAge, hasEnded, isLive, neverAssigned, observedState, slotKey } from '../task.js';

/** A stopped-or-never-started task that no agent will report on again. */
function finished(ctx: ReconcileContext, t: Task): boolean {
  return hasEnded(t) || neverAssigned(t) || nodeLost(ctx.node(t.nodeId));
}

export function reapService(ctx: ReconcileContext, serviceId: string, service: Service | undefined): void {
  const tasks = ctx.tasksOfService(serviceId);
  if (!service) {
    for (const t of tasks) {
      if (finished(ctx, t)) ctx.remove(t);
      else ctx.setDesired(t, 'REMOVE');
    }
    return;
  }

  const limit = ctx.historyLimit();
  const protectedTask = (t: Task) => isJob(service) && t.jobIteration === service.jobIteration && observedState(t) === 'COMPLETE';

  // Replicated slots by number (no key string per task); global ones by node.
  for (const slot of groupBy<number | string>(tasks, (t) => (t.slot > 0 ? t.slot : slotKey(t))).values()) {
    if (slot.length === 1) {
      // The common case, cheaply: a lone task goes only when its slot was scaled away.
      const t = slot[0]!;
      if (t.desiredState === 'REMOVE' && !isLive(t) && finished(ctx, t)) ctx.remove(t);
      continue;
    }
    const ordered = [...slot].sort(byAge);
    const last = ordered.at(-1)!;
    const slotRemoved = last.desiredState === 'REMOVE' && !ordered.some(isLive);
    const deleted = new Set<string>();
    for (const t of ordered) {
      if (isLive(t) || !finished(ctx, t)) continue;
      if (t.desiredState === 'REMOVE' || (slotRemoved && !protectedTask(t))) {
        ctx.remove(t);
        deleted.add(t.id);
      }
    }
    if (slotRemoved || limit < 0) continue;
    let kept = ordered.length - deleted.size;
    for (const t of ordered) {
      if (kept <= Math.max(limit, 1)) break;
      if (t === last || deleted.has(t.id) || isLive(t) || protectedTask(t) || !finished(ctx, t)) continue;
      ctx.remove(t);
      kept--;
    }
  }
}
