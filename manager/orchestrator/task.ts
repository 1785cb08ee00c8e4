// Tasks as the orchestrators see them: ids, the state predicates every reconciler shares, and
// how a new task is born. Desired states used here:
//   RUNNING  the task should run (jobs too: a job task runs until it exits)
//   READY    a restart waiting out its delay (or for the old task to stop): placed and prepared,
//            not started; promoted to RUNNING by the restart supervisor, as in swarmkit
//   SHUTDOWN stopped by the orchestrator and kept as history (restarts, drained/down nodes)
//   REMOVE   its slot is gone (scale down, service removed): the reaper deletes it once stopped
// Agents and the scheduler must treat every desired state above RUNNING as "stop".
import { randomFillSync } from 'node:crypto';
import { Annotations, Endpoint, Task, TaskSpec, TaskStateNumber, TaskStatus, type Service, type TaskState } from '../../proto/gen/objects.js';
import { blank, copy } from '../store/blank.js';

const RUNNING = TaskStateNumber.RUNNING;

const idPool = Buffer.alloc(17 * 256);
let idPoolAt = idPool.length;

/** Docker's identity.NewID: 128+ random bits as 25 base-36 characters. */
export function newTaskId(): string {
  // Random bytes drawn in bulk: one call into the kernel per 256 ids, not per id.
  if (idPoolAt + 17 > idPool.length) {
    randomFillSync(idPool);
    idPoolAt = 0;
  }
  const bytes = Buffer.from(idPool.subarray(idPoolAt, (idPoolAt += 17)));
  bytes[0]! |= 0x80; // the high bit fixes the length, so no padding is needed
  return BigInt('0x' + bytes.toString('hex')).toString(36).slice(1, 26);
}

export const observedState = (t: Task): TaskState => t.status?.state ?? 'NEW';
const observed = (t: Task): number => TaskStateNumber[observedState(t)];
const desired = (t: Task): number => TaskStateNumber[t.desiredState];

/** The orchestrator still wants this task (RUNNING, or READY waiting to start). */
export const isLive = (t: Task): boolean => desired(t) <= RUNNING;
/** The task is over on its node: COMPLETE, SHUTDOWN, FAILED, REJECTED, ORPHANED. */
export const hasEnded = (t: Task): boolean => observed(t) > RUNNING;
/** Never reached a node, so no agent will ever report it stopped. */
export const neverAssigned = (t: Task): boolean => observed(t) < TaskStateNumber.ASSIGNED;
/** Ended on its own account (exit, failure, refusal), not because it was told to stop. */
export const endedByItself = (t: Task): boolean => ['COMPLETE', 'FAILED', 'REJECTED'].includes(observedState(t));
/** Finished successfully: COMPLETE with a zero exit code. */
export const succeeded = (t: Task): boolean => observedState(t) === 'COMPLETE' && (t.status?.container?.exitCode ?? 0) === 0;

/** The key of the slot index: replicated tasks by slot, global tasks by node. */
export function slotKey(t: Pick<Task, 'serviceId' | 'slot' | 'nodeId'>): string {
  return t.slot ? `${t.serviceId}/${t.slot}` : `${t.serviceId}/node:${t.nodeId}`;
}

/** Creation time, for ordering a slot's tasks; a task created in this transaction is the newest. */
const createdAt = (t: Task): number => t.meta?.createdAt ?? Number.MAX_SAFE_INTEGER;

/** Oldest first. Ties (same millisecond) put live tasks last, then order by status time and id. */
export function byAge(a: Task, b: Task): number {
  return (
    createdAt(a) - createdAt(b) ||
    Number(isLive(a)) - Number(isLive(b)) ||
    (a.status?.timestamp ?? 0) - (b.status?.timestamp ?? 0) ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

export function newest(tasks: readonly Task[]): Task | undefined {
  return [...tasks].sort(byAge).at(-1);
}

export interface Placement {
  slot?: number;
  nodeId?: string;
  jobIteration?: number;
}

/** What every new task of a service copies from it. */
export interface TaskTemplate {
  spec: TaskSpec;
  endpoint: Endpoint | null;
}

export function taskTemplate(service: Service): TaskTemplate {
  return { spec: service.spec?.task ? copy(TaskSpec, service.spec.task) : blank(TaskSpec), endpoint: service.endpoint ? copy(Endpoint, service.endpoint) : null };
}

/**
 * A task for `service` in a slot (replicated) or on a node (global), as swarmkit's NewTask. Tasks
 * made from one `template` share its spec and endpoint objects, which nobody changes in place
 * (the store's objects are read-only; a change is a new object).
 */
export function newTask(service: Service, where: Placement, id: string, now: number, template: TaskTemplate = taskTemplate(service)): Task {
  const name = service.spec?.annotations?.name ?? service.id;
  const slot = where.slot ?? 0;
  const nodeId = where.nodeId ?? '';
  return blank(Task, {
    id,
    spec: template.spec,
    specVersion: service.specVersion,
    serviceId: service.id,
    serviceName: name,
    slot,
    nodeId,
    annotations: blank(Annotations, { name: slot ? `${name}.${slot}` : `${name}.${nodeId}` }),
    status: blank(TaskStatus, { timestamp: now, state: 'NEW', message: 'created' }),
    desiredState: 'RUNNING',
    endpoint: template.endpoint,
    jobIteration: where.jobIteration ?? 0,
  });
}

/**
 * Where network allocation slots in. swarmkit's allocator moves a task NEW -> PENDING once its
 * network attachments are allocated; until shoal's allocator runs on the leader, the orchestrator
 * does that step itself, here and nowhere else. With `allocatorRuns` the task stays NEW for it.
 */
export function admitNewTask(task: Task, now: number, allocatorRuns: boolean): void {
  if (allocatorRuns) return;
  task.status = { ...blank(TaskStatus), ...task.status, state: 'PENDING', message: 'pending task scheduling', timestamp: now };
}
