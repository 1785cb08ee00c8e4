// The filters in swarmkit's order. A node is judged by the first filter that refuses it, so each
// refused node counts once, and the reason lists the refusals from the most common down:
// "insufficient memory on 3 nodes; 2 nodes not available for new tasks".
import type { Filter } from './filters/filter.js';
import { readyFilter } from './filters/ready.js';
import { availabilityFilter } from './filters/availability.js';
import { resourcesFilter } from './filters/resources.js';
import { constraintsFilter } from './filters/constraints.js';
import { platformFilter } from './filters/platform.js';
import { hostPortsFilter } from './filters/hostports.js';
import { maxReplicasFilter } from './filters/maxreplicas.js';
import type { NodeInfo } from './nodeinfo.js';
import type { TaskGroup } from './taskgroup.js';

export const DEFAULT_FILTERS: readonly Filter[] = [
  readyFilter,
  availabilityFilter,
  resourcesFilter,
  constraintsFilter,
  platformFilter,
  hostPortsFilter,
  maxReplicasFilter,
];

/** The filters enabled for one group. */
export class Pipeline {
  private readonly active: readonly Filter[];
  private readonly dynamic: readonly Filter[];

  constructor(
    readonly group: TaskGroup,
    filters: readonly Filter[] = DEFAULT_FILTERS,
  ) {
    this.active = filters.filter((f) => f.enabled(group));
    this.dynamic = this.active.filter((f) => f.dynamic);
  }

  passes(node: NodeInfo): boolean {
    for (const f of this.active) if (f.check(node, this.group) !== undefined) return false;
    return true;
  }

  /** For a node that passed and has since taken tasks: only the filters that count tasks can change. */
  stillPasses(node: NodeInfo): boolean {
    for (const f of this.dynamic) if (f.check(node, this.group) !== undefined) return false;
    return true;
  }

  /** Why these nodes refuse the group, "" when none does. */
  explain(nodes: Iterable<NodeInfo>): string {
    const counts = new Map<string, { filter: Filter; key: string; count: number; order: number }>();
    for (const node of nodes) {
      for (let i = 0; i < this.active.length; i++) {
        const f = this.active[i]!;
        const key = f.check(node, this.group);
        if (key === undefined) continue;
        const id = `${i}/${key}`;
        const entry = counts.get(id);
        if (entry) entry.count++;
        else counts.set(id, { filter: f, key, count: 1, order: i });
        break;
      }
    }
    return [...counts.values()]
      .sort((a, b) => b.count - a.count || a.order - b.order || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
      .map((e) => e.filter.explain(e.count, e.key))
      .join('; ');
  }
}
