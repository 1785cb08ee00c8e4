// The scheduler's core as a pure function of what it is given: node infos (nodes with the tasks
// they hold) and tasks waiting for a node, giving back where each task goes or why it cannot go
// anywhere. No store, no clock, no I/O, so it is tested and measured on its own. It counts each
// placement on the node infos it was given, so one call sees its own earlier placements and a
// caller that keeps the infos (the Scheduler) stays current without rescanning.
import type { Task } from '../../proto/gen/objects.js';
import type { Filter } from './filters/filter.js';
import { isPreassigned, isUnassigned, type NodeInfo } from './nodeinfo.js';
import { DEFAULT_FILTERS, Pipeline } from './pipeline.js';
import { placeGroup } from './spread.js';
import { groupTasks, makeGroup } from './taskgroup.js';

export interface Assignment {
  task: Task;
  nodeId: string;
  /** The orchestrator chose the node (global services); the scheduler confirmed it fits. */
  preassigned: boolean;
}

export interface Unplaced {
  task: Task;
  /** For `service ps`: "no suitable node (insufficient memory on 3 nodes)". */
  reason: string;
}

export interface ScheduleResult {
  assigned: Assignment[];
  unplaced: Unplaced[];
}

export interface ScheduleOptions {
  filters?: readonly Filter[];
}

export const NO_SUITABLE_NODE = 'no suitable node';

export function noSuitableNode(explanation: string): string {
  return explanation ? `${NO_SUITABLE_NODE} (${explanation})` : NO_SUITABLE_NODE;
}

/**
 * Decides placements for `tasks`: unassigned pending tasks get a node by the filters and the
 * spread strategy, preassigned pending tasks are checked against their node. Tasks in any other
 * state are ignored.
 */
export function schedule(nodeInfos: Iterable<NodeInfo>, tasks: Iterable<Task>, options: ScheduleOptions = {}): ScheduleResult {
  const filters = options.filters ?? DEFAULT_FILTERS;
  const nodes = [...nodeInfos];
  const result: ScheduleResult = { assigned: [], unplaced: [] };
  const unassigned: Task[] = [];
  const preassigned: Task[] = [];
  for (const t of tasks) {
    if (isUnassigned(t)) unassigned.push(t);
    else if (isPreassigned(t)) preassigned.push(t);
  }

  // Preassigned tasks first: they have nowhere else to go.
  if (preassigned.length > 0) {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    preassigned.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const t of preassigned) {
      const node = byId.get(t.nodeId);
      if (!node) continue; // the node is gone: the orchestrator will deal with its tasks
      const pipeline = new Pipeline(makeGroup(t.id, [t]), filters);
      if (pipeline.passes(node)) {
        node.addTask(t);
        result.assigned.push({ task: t, nodeId: node.id, preassigned: true });
      } else {
        result.unplaced.push({ task: t, reason: pipeline.explain([node]) });
      }
    }
  }

  for (const group of groupTasks(unassigned)) {
    if (group.constraintError) {
      for (const t of group.tasks) result.unplaced.push({ task: t, reason: noSuitableNode(group.constraintError) });
      continue;
    }
    const pipeline = new Pipeline(group, filters);
    const placed = placeGroup(nodes, group, pipeline, (task, node) => result.assigned.push({ task, nodeId: node.id, preassigned: false }));
    if (placed < group.tasks.length) {
      const reason = noSuitableNode(nodes.length > 0 ? pipeline.explain(nodes) : '');
      for (const t of group.tasks.slice(placed)) result.unplaced.push({ task: t, reason });
    }
  }
  return result;
}
