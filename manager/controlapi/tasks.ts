// `service ps` and `node ps`: tasks filtered the way `docker service ps -f` filters them, with the
// hostnames of the nodes they name so the CLI needs no second call.
import { TaskStateValues, type Task, type TaskState } from '../../proto/gen/objects.js';
import type { ListTasksRequest, ListTasksResponse } from '../../proto/gen/control.js';
import type { ControlContext } from './context.js';
import { invalid } from './errors.js';
import { applyFilters, checkFilters, matchesLabel } from './filters.js';
import { resolve } from './resolve.js';

const FILTERS = ['service', 'node', 'desired-state', 'name', 'id', 'label'];

export function listTasks(ctx: ControlContext, req: Pick<ListTasksRequest, 'filters'>): ListTasksResponse {
  const view = ctx.store;
  const filters = req.filters;
  checkFilters(filters, FILTERS);
  // Services and nodes are named as everywhere else (name, id or id prefix); one that does not
  // exist is an error, not an empty list.
  const serviceId = filters.service !== undefined ? resolve(view, 'services', filters.service).id : undefined;
  const nodeId = filters.node !== undefined ? resolve(view, 'nodes', filters.node).id : undefined;
  const desired = filters['desired-state'] !== undefined ? parseState(filters['desired-state']) : undefined;
  const candidates = serviceId !== undefined ? view.find('tasks', 'service', serviceId) : nodeId !== undefined ? view.find('tasks', 'node', nodeId) : view.all('tasks');
  const tasks = applyFilters(candidates, filters, {
    service: (t) => t.serviceId === serviceId,
    node: (t) => t.nodeId === nodeId,
    'desired-state': (t) => t.desiredState === desired,
    name: (t, v) => (t.annotations?.name ?? '').startsWith(v),
    id: (t, v) => t.id.startsWith(v),
    label: (t, v) => matchesLabel(t.annotations?.labels, v),
  }).sort(byServiceSlotNewest);
  const nodeNames: Record<string, string> = {};
  for (const t of tasks) {
    if (!t.nodeId || t.nodeId in nodeNames) continue;
    const hostname = view.get('nodes', t.nodeId)?.description?.hostname;
    if (hostname) nodeNames[t.nodeId] = hostname;
  }
  return { tasks, nodeNames };
}

function parseState(text: string): TaskState {
  const state = text.toUpperCase() as TaskState;
  if (!TaskStateValues.includes(state)) {
    throw invalid(`invalid filter 'desired-state=${text}': expected one of ${TaskStateValues.map((s) => s.toLowerCase()).join(', ')}`);
  }
  return state;
}

/** `service ps` order: by service, then slot (or node), newest task first. */
function byServiceSlotNewest(a: Task, b: Task): number {
  return (
    a.serviceName.localeCompare(b.serviceName) ||
    a.serviceId.localeCompare(b.serviceId) ||
    a.slot - b.slot ||
    // Global tasks (slot 0) are grouped by node.
    (a.slot === 0 ? a.nodeId.localeCompare(b.nodeId) : 0) ||
    (b.meta?.createdAt ?? 0) - (a.meta?.createdAt ?? 0) ||
    a.id.localeCompare(b.id)
  );
}
