// Helpers shared by the reconcilers: grouping a service's tasks by slot or node, replacing the
// wanted tasks that stopped or whose node failed, and keeping at most one live task per slot.
import type { Service, Task } from '../../proto/gen/objects.js';
import type { ReconcileContext } from './context.js';
import type { RestartSupervisor } from './restart/supervisor.js';
import { isJob, nodeLost, nodeInvalid } from './service.js';
import { byAge, hasEnded, isLive } from './task.js';
import { updateOrderOf, updateRunning } from './update/config.js';
import { drainStartFirst } from './update/drain.js';
import { runsHealthy } from './update/progress.js';

export function groupBy<K>(tasks: readonly Task[], key: (t: Task) => K): Map<K, Task[]> {
  const out = new Map<K, Task[]>();
  for (const t of tasks) {
    const k = key(t);
    const list = out.get(k);
    if (list) list.push(t);
    else out.set(k, [t]);
  }
  return out;
}

/**
 * Replicated tasks (services and jobs) of one slot: a live task that stopped goes to the restart
 * supervisor; one on a node that is down, gone or drained is replaced in the same slot whatever
 * the restart policy says (the task did not fail; its node did). A start-first service keeps a
 * drained node's task running until its replacement runs (./update/drain.ts).
 */
export function tendReplicatedSlot(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor, tasks: Task[]): void {
  // Most slots of a big service hold one task: no copy, no sort (a pass visits every slot).
  for (const t of tasks.length === 1 ? tasks : [...tasks].sort(byAge)) {
    if (!isLive(t)) continue;
    if (hasEnded(t)) supervisor.restart(ctx, service, t, 'stopped');
    else if (t.nodeId && nodeInvalid(ctx.node(t.nodeId))) {
      if (nodeLost(ctx.node(t.nodeId))) supervisor.restart(ctx, service, t, 'node-down');
      else if (!isJob(service) && updateOrderOf(service) === 'START_FIRST') drainStartFirst(ctx, service, supervisor, t);
      else supervisor.restart(ctx, service, t, 'node-drained');
    }
  }
}

/**
 * A slot must never hold two live tasks; should one (a race lost by an earlier leader, or a
 * start-first update that was paused or superseded), the best one stays: desired RUNNING before
 * READY, then running healthy, then the newest. Not while a rolling update runs: a start-first
 * update keeps the old task until the new one runs. A task left on a drained node is not counted:
 * it stays only until its replacement runs (start-first drain).
 */
export function keepOneLive(ctx: ReconcileContext, service: Service, slotTasks: Task[]): void {
  if (slotTasks.length <= 1) return;
  const live = slotTasks.filter((t) => isLive(t) && !(t.nodeId && nodeInvalid(ctx.node(t.nodeId))));
  if (live.length <= 1 || updateRunning(service)) return;
  const rank = (t: Task) => [t.desiredState === 'RUNNING' ? 1 : 0, runsHealthy(t) ? 1 : 0];
  live.sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    return rb[0]! - ra[0]! || rb[1]! - ra[1]! || byAge(b, a);
  });
  for (const extra of live.slice(1)) ctx.setDesired(extra, 'SHUTDOWN');
}
