// What a log subscription is about, read from the store: the target the user typed (a service or
// a task, Docker's `service logs SERVICE|TASK`), the nodes that hold its tasks' logs, and the
// names a subscriber prints in front of each line.
import * as grpc from '@grpc/grpc-js';
import type { LogMessage, LogSelector, LogTarget } from '../../proto/gen/logs.js';
import { TaskStateNumber, type Service, type Task } from '../../proto/gen/objects.js';
import type { ReadView } from '../store/memory.js';

/** A refusal with the gRPC status the subscriber should see. */
export class LogBrokerError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
    this.name = 'LogBrokerError';
  }
}

export interface ResolvedTarget {
  selector: LogSelector;
  target: LogTarget;
}

const digits = (n: number): number => String(Math.max(0, Math.trunc(n))).length;

/** An exact id, an exact name, or an id prefix only one object has. */
function lookup<T extends { id: string }>(items: T[], ref: string, nameOf: (item: T) => string | undefined, kind: string): T | undefined {
  const exact = items.find((i) => i.id === ref) ?? items.find((i) => nameOf(i) === ref);
  if (exact) return exact;
  const byPrefix = items.filter((i) => i.id.startsWith(ref));
  if (byPrefix.length > 1) throw new LogBrokerError(grpc.status.INVALID_ARGUMENT, `${kind} ${ref} is ambiguous (${byPrefix.length} matches): give more of its id`);
  return byPrefix[0];
}

function serviceName(store: ReadView, task: Task): string {
  return store.get('services', task.serviceId)?.spec?.annotations?.name || task.serviceName || task.serviceId;
}

/** Services first, then tasks, like Docker; NOT_FOUND names what was looked for. */
export function resolveTarget(store: ReadView, ref: string): ResolvedTarget {
  if (ref.trim() === '') throw new LogBrokerError(grpc.status.INVALID_ARGUMENT, 'a service or task to read the logs of is required');
  const service = lookup<Service>(store.all('services'), ref, (s) => s.spec?.annotations?.name, 'service');
  if (service) {
    const replicas = service.spec?.replicated?.replicas;
    return {
      selector: { serviceIds: [service.id], taskIds: [] },
      target: { serviceId: service.id, serviceName: service.spec?.annotations?.name || service.id, taskId: '', slotDigits: replicas ? digits(replicas) : 1 },
    };
  }
  const task = lookup<Task>(store.all('tasks'), ref, () => undefined, 'task');
  if (task) {
    return {
      selector: { serviceIds: [], taskIds: [task.id] },
      target: { serviceId: task.serviceId, serviceName: serviceName(store, task), taskId: task.id, slotDigits: digits(task.slot) },
    };
  }
  throw new LogBrokerError(grpc.status.NOT_FOUND, `no such task or service: ${ref}`);
}

export function selects(selector: LogSelector, task: Pick<Task, 'id' | 'serviceId'>): boolean {
  return selector.taskIds.includes(task.id) || selector.serviceIds.includes(task.serviceId);
}

/** The selector's tasks that a node has been told about (so it may hold logs), by id. */
export function selectedTasks(store: ReadView, selector: LogSelector): Task[] {
  const tasks = new Map<string, Task>();
  for (const id of selector.serviceIds) for (const t of store.find('tasks', 'service', id)) tasks.set(t.id, t);
  for (const id of selector.taskIds) {
    const t = store.get('tasks', id);
    if (t) tasks.set(t.id, t);
  }
  return [...tasks.values()].filter((t) => t.nodeId !== '' && TaskStateNumber[t.status?.state ?? 'NEW'] >= TaskStateNumber.ASSIGNED);
}

/** The nodes that must answer before a subscription without follow is complete. */
export function nodesHoldingLogs(store: ReadView, selector: LogSelector): Set<string> {
  return new Set(selectedTasks(store, selector).map((t) => t.nodeId));
}

export function nodeName(store: ReadView, nodeId: string): string {
  return store.get('nodes', nodeId)?.description?.hostname ?? '';
}

/**
 * A message a node published, checked and named for the subscriber: undefined when it is about a
 * task that is not that node's or not selected (a node may only speak for its own tasks).
 */
export function checkedMessage(store: ReadView, nodeId: string, selector: LogSelector, message: LogMessage): LogMessage | undefined {
  const task = store.get('tasks', message.context?.taskId ?? '');
  if (!task || task.nodeId !== nodeId || !selects(selector, task)) return undefined;
  return {
    ...message,
    context: {
      serviceId: task.serviceId,
      nodeId,
      taskId: task.id,
      serviceName: serviceName(store, task),
      taskSlot: task.slot,
      nodeName: nodeName(store, nodeId),
    },
  };
}
