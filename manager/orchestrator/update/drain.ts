// Draining a node under a start-first service (beyond Docker, moby#34139): Docker stops a drained
// node's tasks first and starts their replacements after, so a drain costs capacity even for a
// service whose update order says it must not. Here a start-first service's task on a drained
// node keeps running until its replacement (scheduled elsewhere: a drained node takes nothing new)
// runs healthy; then it is shut down. Everything is read from the slot, so a new leader carries on.
//
// Should a replacement fail, the restart supervisor restarts it as any task (with its delay); if
// the restart policy gives up, the drain falls back to stop-first, as Docker drains.
import type { Service, Task } from '../../../proto/gen/objects.js';
import type { ReconcileContext } from '../context.js';
import type { RestartSupervisor } from '../restart/supervisor.js';
import { nodeInvalid } from '../service.js';
import { byAge, endedByItself, isLive } from '../task.js';
import { runsHealthy } from './progress.js';

/** `t` is live on a drained (not lost) node of a start-first replicated service. */
export function drainStartFirst(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor, t: Task): void {
  const slot = ctx.tasksInSlot(t).sort(byAge);
  const successors = slot.filter((o) => o.id !== t.id && isLive(o) && !(o.nodeId && nodeInvalid(ctx.node(o.nodeId))));
  if (successors.some(runsHealthy)) {
    ctx.setDesired(t, 'SHUTDOWN');
    return;
  }
  if (successors.length > 0) return; // on its way: scheduled, starting, or waiting out a restart delay
  const newer = slot.filter((o) => o.id !== t.id && byAge(t, o) < 0);
  if (newer.some(endedByItself)) {
    supervisor.restart(ctx, service, t, 'node-drained');
    return;
  }
  ctx.createTask(service, { slot: t.slot }, 'RUNNING');
}
