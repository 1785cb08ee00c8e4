// Which task `shoal exec TASK` means. TASK is, in this order of preference:
//   - a task ID;
//   - a task name: `service.slot` (replicated), `service.nodeid` (global), or the full
//     `service.slot.taskid`, Docker's container name for the task;
//   - a unique prefix of a task ID.
// A slot keeps older tasks (a failed one, the one an update replaced): a name means the slot's
// running task, else the one meant to run, else the newest.
import type { Task } from '../proto/gen/objects.js';
import { taskName } from '../agent/worker/naming.js';

export class TaskLookupError extends Error {
  constructor(
    readonly kind: 'none' | 'ambiguous',
    message: string,
  ) {
    super(message);
    this.name = 'TaskLookupError';
  }
}

/** `service.slot` for a replicated task, `service.nodeid` for a global one. */
export function slotName(t: Task): string {
  const service = t.serviceName || t.serviceId;
  return t.slot > 0 ? `${service}.${t.slot}` : `${service}.${t.nodeId}`;
}

/** How a task is named in messages: `web.2 (abcdef123456)`. */
export function describeTask(t: Task): string {
  return `${slotName(t)} (${t.id.slice(0, 12)})`;
}

/** Higher is the better pick among tasks of one slot. */
function rank(t: Task): [number, number, number] {
  return [t.status?.state === 'RUNNING' ? 1 : 0, t.desiredState === 'RUNNING' ? 1 : 0, t.meta?.createdAt ?? t.status?.timestamp ?? 0];
}

function best(tasks: Task[]): Task {
  return tasks.reduce((a, b) => {
    const [ra, rb] = [rank(a), rank(b)];
    for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i]! > rb[i]! ? a : b;
    return a;
  });
}

/** The task `ref` names among `tasks`, or a TaskLookupError saying why there is none. */
export function resolveTask(ref: string, tasks: readonly Task[]): Task {
  const byId = tasks.find((t) => t.id === ref);
  if (byId) return byId;
  const named = tasks.filter((t) => slotName(t) === ref || taskName(t) === ref);
  if (named.length > 0) return best(named);
  const prefixed = ref === '' ? [] : tasks.filter((t) => t.id.startsWith(ref));
  if (prefixed.length === 1) return prefixed[0]!;
  if (prefixed.length > 1) {
    throw new TaskLookupError('ambiguous', `task ID prefix "${ref}" is ambiguous: it matches ${prefixed.map(describeTask).sort().join(', ')}`);
  }
  throw new TaskLookupError('none', `no such task: "${ref}"`);
}
