// How a task's container is named and found again. The container id is derived from the task id
// (so a worker that lost its task file still finds the container), the name is Docker's
// `<service>.<slot>.<task id>` (`<service>.<node id>.<task id>` for global services), and labels
// carry the task's identity for anyone listing containers.
import { createHash } from 'node:crypto';
import type { Task } from '../../proto/gen/objects.js';

export const LABEL_TASK_ID = 'shoal.task.id';
export const LABEL_TASK_NAME = 'shoal.task.name';
export const LABEL_SERVICE_ID = 'shoal.service.id';
export const LABEL_SERVICE_NAME = 'shoal.service.name';
export const LABEL_NODE_ID = 'shoal.node.id';

/** 64 hex digits like a Docker container id; its first 12 are the default hostname. */
export function containerIdFor(taskId: string): string {
  return createHash('sha256').update(`shoal-task\0${taskId}`).digest('hex');
}

/** Docker's task name: the annotations' name if the manager set one, else service.slot.id. */
export function taskName(task: Task): string {
  const given = task.annotations?.name;
  if (given) return given;
  const service = task.serviceName || task.serviceId || 'task';
  const slot = task.slot > 0 ? String(task.slot) : task.nodeId;
  return slot ? `${service}.${slot}.${task.id}` : `${service}.${task.id}`;
}

export function taskLabels(task: Task): Record<string, string> {
  return {
    [LABEL_TASK_ID]: task.id,
    [LABEL_TASK_NAME]: taskName(task),
    [LABEL_SERVICE_ID]: task.serviceId,
    [LABEL_SERVICE_NAME]: task.serviceName,
    [LABEL_NODE_ID]: task.nodeId,
  };
}
