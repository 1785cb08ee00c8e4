// The global orchestrator's pass over one service: one live task on every node that takes new
// tasks (ready, active, matching the placement constraints), created with its node already set.
// Tasks on a node that is drained, down or no longer matches are shut down (and kept as history);
// on a node that left the cluster they are removed. A paused node keeps what it runs but gets
// nothing new, and a task that stops there is not restarted (swarmkit).
import type { Service, Task } from '../../../proto/gen/objects.js';
import type { ReconcileContext } from '../context.js';
import type { RestartSupervisor } from '../restart/supervisor.js';
import { constraintsOf, nodeKeeps, nodeTakesNew } from '../service.js';
import { groupBy, keepOneLive } from '../slots.js';
import { hasEnded, isLive, newest } from '../task.js';
import type { Updater } from '../update/updater.js';

/**
 * The live tasks of one node (shared with global jobs): removed when the node left, shut down when
 * it no longer keeps them, restarted in place when they stopped (except on a paused node).
 */
export function tendNodeTasks(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor, tasks: Task[]): void {
  const constraints = constraintsOf(service);
  // A node that left the cluster (`node rm`) takes all its tasks with it, the ones already told to
  // shut down included: no agent will ever report them stopped, so only REMOVE lets the reaper go.
  if (tasks.length > 0 && !ctx.node(tasks[0]!.nodeId)) {
    for (const t of tasks) if (t.desiredState !== 'REMOVE') ctx.setDesired(t, 'REMOVE');
    return;
  }
  for (const t of tasks.filter(isLive)) {
    const node = ctx.node(t.nodeId);
    if (!node) ctx.setDesired(t, 'REMOVE');
    else if (!nodeKeeps(node, constraints)) ctx.setDesired(t, 'SHUTDOWN');
    else if (hasEnded(t)) {
      if (node.spec?.availability === 'PAUSE') ctx.setDesired(t, 'SHUTDOWN');
      else supervisor.restart(ctx, service, t, 'stopped');
    }
  }
}

export function reconcileGlobal(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor, updater: Updater): void {
  const byNode = () => groupBy(ctx.tasksOfService(service.id).filter((t) => t.slot === 0), (t) => t.nodeId);

  for (const tasks of byNode().values()) tendNodeTasks(ctx, service, supervisor, tasks);
  for (const tasks of byNode().values()) keepOneLive(ctx, service, tasks);

  const constraints = constraintsOf(service);
  const tasksByNode = byNode();
  for (const node of ctx.tx.all('nodes')) {
    if (!nodeTakesNew(node, constraints)) continue;
    const tasks = tasksByNode.get(node.id) ?? [];
    if (tasks.some(isLive)) continue;
    if (supervisor.heldByStoppedTask(newest(tasks), service, ctx.now)) continue;
    ctx.createTask(service, { nodeId: node.id });
  }

  // Every node's slot goes through the rolling update; a node that takes nothing new (paused, not
  // ready) keeps its old task until it does.
  const slots = [...byNode()].filter(([, tasks]) => tasks.some(isLive) || newest(tasks)?.desiredState !== 'REMOVE');
  updater.run(
    ctx,
    service,
    slots.map(([nodeId, tasks]) => {
      const node = ctx.node(nodeId);
      return { tasks, where: { nodeId }, canStart: !!node && nodeTakesNew(node, constraints), order: nodeId };
    }),
  );

  for (const tasks of byNode().values()) supervisor.promoteReady(ctx, tasks);
}
