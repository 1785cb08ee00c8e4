// Jobs: tasks that run to completion. A replicated job runs until `totalCompletions` tasks have
// completed, at most `maxConcurrent` at a time, each completion in its own slot (1..total); a
// global job runs one task to completion on every node that takes new tasks. A task that fails
// is restarted per its restart policy ("any" means "until it succeeds" for jobs); a completed one
// never is. Bumping the service's jobIteration runs the job again: tasks of earlier iterations
// still running are shut down and the count starts over.
//
// swarmkit gives job tasks desired state COMPLETE; shoal keeps RUNNING so agents follow a single
// rule, and the restart supervisor marks a finished job task SHUTDOWN like any stopped task.
import type { Service, Task } from '../../../proto/gen/objects.js';
import type { ReconcileContext } from '../context.js';
import type { RestartSupervisor } from '../restart/supervisor.js';
import { tendNodeTasks } from '../global/reconcile.js';
import { constraintsOf, nodeTakesNew } from '../service.js';
import { groupBy, keepOneLive, tendReplicatedSlot } from '../slots.js';
import { isLive, newest, observedState } from '../task.js';

const completed = (tasks: Task[]) => tasks.some((t) => observedState(t) === 'COMPLETE');

/** Stops what earlier iterations still run; returns the current iteration's tasks. */
function currentIteration(ctx: ReconcileContext, service: Service): Task[] {
  const all = ctx.tasksOfService(service.id);
  for (const t of all) if (t.jobIteration !== service.jobIteration && isLive(t)) ctx.setDesired(t, 'SHUTDOWN');
  return ctx.tasksOfService(service.id).filter((t) => t.jobIteration === service.jobIteration);
}

/**
 * A slot (or node) whose task completed needs nothing more: a replacement made meanwhile (the old
 * task finished on a drained node while its successor waited) is stopped.
 */
function stopSpareTasks(ctx: ReconcileContext, tasks: Task[]): void {
  if (completed(tasks)) for (const t of tasks) if (isLive(t)) ctx.setDesired(t, 'SHUTDOWN');
}

/** totalCompletions (default: maxConcurrent, or 1) and maxConcurrent (default: total). */
export function jobLimits(service: Service): { total: number; maxConcurrent: number } {
  const spec = service.spec?.replicatedJob;
  const total = spec?.totalCompletions || spec?.maxConcurrent || 1;
  return { total, maxConcurrent: spec?.maxConcurrent || total };
}

export function reconcileReplicatedJob(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor): void {
  const { total, maxConcurrent } = jobLimits(service);
  const bySlot = () =>
    groupBy(
      currentIteration(ctx, service).filter((t) => t.slot > 0),
      (t) => t.slot,
    );

  for (const tasks of bySlot().values()) tendReplicatedSlot(ctx, service, supervisor, tasks);
  for (const [slot, tasks] of bySlot()) {
    keepOneLive(ctx, service, tasks);
    // totalCompletions lowered below a running slot: that slot is no longer part of the job.
    if (slot > total) {
      for (const t of tasks) if (isLive(t)) ctx.setDesired(t, 'REMOVE');
    } else stopSpareTasks(ctx, tasks);
  }

  const slots = bySlot();
  let active = [...slots.values()].filter((tasks) => tasks.some(isLive)).length;
  for (let slot = 1; slot <= total && active < maxConcurrent; slot++) {
    const tasks = slots.get(slot) ?? [];
    if (completed(tasks) || tasks.some(isLive)) continue;
    // Failed for good (restart policy exhausted): the slot stays failed.
    if (supervisor.heldByStoppedTask(newest(tasks), service, ctx.now)) continue;
    ctx.createTask(service, { slot, jobIteration: service.jobIteration });
    active++;
  }

  for (const tasks of bySlot().values()) supervisor.promoteReady(ctx, tasks);
}

export function reconcileGlobalJob(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor): void {
  const byNode = () =>
    groupBy(
      currentIteration(ctx, service).filter((t) => t.slot === 0),
      (t) => t.nodeId,
    );

  for (const tasks of byNode().values()) tendNodeTasks(ctx, service, supervisor, tasks);
  for (const tasks of byNode().values()) {
    keepOneLive(ctx, service, tasks);
    stopSpareTasks(ctx, tasks);
  }

  const constraints = constraintsOf(service);
  const tasksByNode = byNode();
  for (const node of ctx.tx.all('nodes')) {
    if (!nodeTakesNew(node, constraints)) continue;
    const tasks = tasksByNode.get(node.id) ?? [];
    if (completed(tasks) || tasks.some(isLive)) continue;
    if (supervisor.heldByStoppedTask(newest(tasks), service, ctx.now)) continue;
    ctx.createTask(service, { nodeId: node.id, jobIteration: service.jobIteration });
  }

  for (const tasks of byNode().values()) supervisor.promoteReady(ctx, tasks);
}
