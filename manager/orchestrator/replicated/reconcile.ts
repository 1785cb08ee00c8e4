// The replicated orchestrator's pass over one service: slots 1..replicas, each with at most one
// live task. Scale up fills the lowest free slot numbers; scale down removes slots the way
// swarmkit does (keep running tasks and a balanced spread: remove non-running tasks first, then
// tasks on the nodes holding the most copies, then the highest slots).
import type { Service, Task } from '../../../proto/gen/objects.js';
import type { ReconcileContext } from '../context.js';
import type { RestartSupervisor } from '../restart/supervisor.js';
import { keepOneLive, tendReplicatedSlot } from '../slots.js';
import { isLive, newest, observedState } from '../task.js';
import type { Updater } from '../update/updater.js';

/** A slot as scale decisions see it: its live tasks, or the stopped task that still holds it. */
export interface OccupiedSlot {
  slot: number;
  tasks: Task[];
  live: boolean;
}

/** Slots that count towards the replica count. */
export function occupiedSlots(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor): OccupiedSlot[] {
  const out: OccupiedSlot[] = [];
  for (const [slot, tasks] of ctx.slotsOf(service.id)) {
    const live = tasks.filter(isLive);
    if (live.length > 0) out.push({ slot, tasks: live, live: true });
    else {
      const last = newest(tasks);
      if (supervisor.heldByStoppedTask(last, service, ctx.now)) out.push({ slot, tasks: [last!], live: false });
    }
  }
  return out;
}

/** Slots ordered from the one to keep most to the one to remove first (swarmkit's order). */
export function scaleDownOrder(slots: OccupiedSlot[]): OccupiedSlot[] {
  const running = (s: OccupiedSlot) => s.live && s.tasks.some((t) => observedState(t) === 'RUNNING');
  const sorted = [...slots].sort((a, b) => Number(running(b)) - Number(running(a)) || a.slot - b.slot);
  // Each slot's rank among the service's slots on its node: the 1st copy on a node is kept before
  // the 2nd copy on any node. Slots not settled on one node (pending, or held by a stopped task)
  // rank last, so they go first.
  const perNode = new Map<string, number>();
  const ranked = sorted.map((s) => {
    const nodeId = s.tasks.length === 1 ? s.tasks[0]!.nodeId : '';
    if (!s.live || !nodeId) return { s, rank: Number.POSITIVE_INFINITY };
    const rank = (perNode.get(nodeId) ?? 0) + 1;
    perNode.set(nodeId, rank);
    return { s, rank };
  });
  ranked.sort((a, b) => (a.rank === b.rank ? 0 : a.rank < b.rank ? -1 : 1));
  return ranked.map((r) => r.s);
}

export function reconcileReplicated(ctx: ReconcileContext, service: Service, supervisor: RestartSupervisor, updater: Updater): void {
  const replicas = service.spec?.replicated?.replicas ?? 0;
  const slotTasks = () => ctx.slotsOf(service.id);

  for (const tasks of slotTasks().values()) tendReplicatedSlot(ctx, service, supervisor, tasks);
  for (const tasks of slotTasks().values()) keepOneLive(ctx, service, tasks);

  const occupied = occupiedSlots(ctx, service, supervisor);
  if (occupied.length < replicas) {
    const taken = new Set(occupied.map((s) => s.slot));
    const free: number[] = [];
    for (let slot = 1; free.length < replicas - occupied.length; slot++) if (!taken.has(slot)) free.push(slot);
    // What fits in this pass is created in it; the rest right after it commits (createLater).
    const now = Math.min(free.length, ctx.roomLeft());
    for (const slot of free.slice(0, now)) ctx.createTask(service, { slot });
    ctx.createLater(service, free.slice(now));
  } else if (occupied.length > replicas) {
    for (const s of scaleDownOrder(occupied).slice(replicas)) {
      // A removed slot's tasks get desired REMOVE: stopped, then deleted by the reaper. For a slot
      // held by a stopped task, REMOVE frees the slot.
      for (const t of s.tasks) ctx.setDesired(t, 'REMOVE');
    }
  }

  // Slots that stay go through the rolling update: those with a live task, and those held by a
  // stopped one (a new task that failed and may not restart still counts against the update).
  const kept = [...slotTasks()].filter(([, tasks]) => tasks.some(isLive) || newest(tasks)?.desiredState !== 'REMOVE');
  updater.run(
    ctx,
    service,
    kept.map(([slot, tasks]) => ({ tasks, where: { slot }, canStart: true, order: slot })),
  );

  for (const tasks of slotTasks().values()) supervisor.promoteReady(ctx, tasks);
}
