// A filter decides whether a node can take a task of a group, and explains its refusals in the
// words `service ps` shows: "insufficient memory on 3 nodes", counted per filter as Docker does.
import type { NodeInfo } from '../nodeinfo.js';
import type { TaskGroup } from '../taskgroup.js';

export interface Filter {
  readonly name: string;
  /**
   * Whether the verdict depends on the tasks on the node (resources, ports, replicas) rather than
   * on the node alone: only those are checked again after a node takes a task.
   */
  readonly dynamic: boolean;
  /** Whether the filter has anything to check for this group (no constraints: nothing to do). */
  enabled(group: TaskGroup): boolean;
  /**
   * undefined when the node passes; otherwise the reason, as a key the explanation understands
   * ("" when the filter has a single reason, "memory" or "cpu" for resources).
   */
  check(node: NodeInfo, group: TaskGroup): string | undefined;
  /** The explanation for `count` nodes refused for reason `key`. */
  explain(count: number, key: string): string;
}

/** "1 node", "3 nodes". */
export function nodes(count: number): string {
  return count === 1 ? '1 node' : `${count} nodes`;
}
