// Helpers shared by the reconcilers: grouping a service's tasks by slot or node, replacing the
// wanted tasks that stopped or whose node failed, and keeping at most one live task per slot.
import type { Service, Task } from '../../proto/gen/objects.js';
import type { ReconcileContext } from './context.js';
import type { RestartSupervisor } from './restart/supervisor.js';
import { nodeLost, nodeInvalid } from './service.js';
import { byAge, hasEnded, isLive, observedState } from './task.js';

const updating = (s: Service): boolean => ['UPDATING', 'ROLLBACK_STARTED'].includes(s.updateStatus?.state ?? 'UNKNOWN');

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
 * the restart policy says (the task did not fail; its node did).
 */
export function tendReplicatedSlot(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor, tasks: Task[]): void {
  for (const t of tasks.filter(isLive).sort(byAge)) {
    if (hasEnded(t)) supervisor.restart(ctx, service, t, 'stopped');
    else if (t.nodeId && nodeInvalid(ctx.node(t.nodeId))) {
      supervisor.restart(ctx, service, t, nodeLost(ctx.node(t.nodeId)) ? 'node-down' : 'node-drained');
    }
  }
}

/**
 * A slot must never hold two live tasks; should one (a race lost by an earlier leader), the best
 * one stays: desired RUNNING before READY, then the furthest along, then the newest. Not while a
 * rolling update runs: a start-first update keeps the old task until the new one runs.
 */
export function keepOneLive(ctx: ReconcileContext, service: Service, slotTasks: Task[]): void {
  const live = slotTasks.filter(isLive);
  if (live.length <= 1 || updating(service)) return;
  const rank = (t: Task) => [t.desiredState === 'RUNNING' ? 1 : 0, observedState(t) === 'RUNNING' ? 1 : 0];
  live.sort((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    return rb[0]! - ra[0]! || rb[1]! - ra[1]! || byAge(b, a);
  });
  for (const extra of live.slice(1)) ctx.setDesired(extra, 'SHUTDOWN');
}
