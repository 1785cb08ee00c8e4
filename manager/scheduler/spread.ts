// The spread strategy. Nodes that pass the filters are ordered by how many tasks of the service
// they run, then by how many tasks they run in all, then by id, and each task goes to the first:
// a heap keyed that way places a group of n tasks on N nodes in O(N + n log N).
//
// Placement preferences (`--placement-pref spread=node.labels.zone`) first split the nodes into a
// tree by the label's value (nodes without the label form a branch of their own), and the tasks
// are divided so that every branch ends up with as equal a number of the service's tasks as it
// can hold; a branch with no room left gives its share to the others. With several preferences
// the split nests, outermost first. This is swarmkit's algorithm, with counts kept exact as the
// batch proceeds.
import type { Task } from '../../proto/gen/objects.js';
import { spreadReader } from './constraint.js';
import { Heap } from './heap.js';
import type { NodeInfo } from './nodeinfo.js';
import type { Pipeline } from './pipeline.js';
import type { TaskGroup } from './taskgroup.js';

interface Branch {
  /** Label value that leads here ("" for nodes without the label). */
  value: string;
  /** The service's tasks on every node of this branch, eligible or not, as swarmkit counts. */
  tasks: number;
  children?: Map<string, Branch>;
  /** Leaves only: the nodes, and lazily the heap of those that pass the filters. */
  nodes: NodeInfo[];
  heap?: Heap<Candidate>;
  full: boolean;
}

/** A node in a leaf's heap, with its count of the service's tasks at hand (it only changes here). */
interface Candidate {
  node: NodeInfo;
  own: number;
}

/** The spread order: fewest tasks of the service, then fewest tasks, then smallest node id. */
function less(a: Candidate, b: Candidate): boolean {
  if (a.own !== b.own) return a.own < b.own;
  if (a.node.activeTasks !== b.node.activeTasks) return a.node.activeTasks < b.node.activeTasks;
  return a.node.id < b.node.id;
}

function newBranch(value: string): Branch {
  return { value, tasks: 0, nodes: [], full: false };
}

function buildTree(nodes: readonly NodeInfo[], group: TaskGroup): Branch {
  const root = newBranch('');
  // A descriptor the language does not know spreads nothing (Docker ignores it too).
  const readers = group.preferences.map(spreadReader).filter((r) => r !== undefined);
  // Without preferences the tree is one leaf, and its task count is never read.
  if (readers.length === 0) {
    root.nodes = nodes as NodeInfo[];
    return root;
  }
  for (const node of nodes) {
    const own = node.serviceTasks(group.serviceId);
    root.tasks += own;
    let branch = root;
    for (const read of readers) {
      const value = read(node.node);
      branch.children ??= new Map();
      let next = branch.children.get(value);
      if (!next) branch.children.set(value, (next = newBranch(value)));
      next.tasks += own;
      branch = next;
    }
    branch.nodes.push(node);
  }
  return root;
}

/**
 * Places as many of `group.tasks` as fit; calls `assign` for each placement, after counting the
 * task on its node. Returns the number placed (the first ones, in the group's order).
 */
export function placeGroup(nodes: readonly NodeInfo[], group: TaskGroup, pipeline: Pipeline, assign: (task: Task, node: NodeInfo) => void): number {
  const tasks = group.tasks;
  let next = 0;

  /**
   * The k best nodes that pass the filters. A batch of k tasks never goes past them: a node only
   * moves back in the order when it takes a task, so until k tasks are placed some of the k best
   * are untouched and ahead of every other node. Keeping k instead of all (a heap with the worst
   * on top) saves work when a few tasks are placed in a large cluster.
   */
  const bestCandidates = (nodes: readonly NodeInfo[], k: number): Candidate[] => {
    const kept = new Heap<Candidate>((a, b) => less(b, a));
    const probe: Candidate = { node: nodes[0]!, own: 0 };
    for (const node of nodes) {
      if (!pipeline.passes(node)) continue;
      const own = node.serviceTasks(group.serviceId);
      if (kept.size < k) {
        kept.push({ node, own });
        continue;
      }
      const worst = kept.peek()!;
      probe.node = node;
      probe.own = own;
      if (less(probe, worst)) {
        worst.node = node;
        worst.own = own;
        kept.fixTop();
      }
    }
    return kept.toArray();
  };

  const placeOnLeaf = (leaf: Branch, n: number): number => {
    leaf.heap ??= new Heap(less, bestCandidates(leaf.nodes, tasks.length - next));
    let placed = 0;
    while (placed < n && next < tasks.length) {
      const best = leaf.heap.peek();
      if (!best) break;
      const task = tasks[next++]!;
      best.node.addTask(task);
      best.own++;
      assign(task, best.node);
      placed++;
      // The node changed: it may have run out of room, and its place in the order moved down.
      if (pipeline.stillPasses(best.node)) leaf.heap.fixTop();
      else leaf.heap.pop();
    }
    return placed;
  };

  const placeOnBranch = (branch: Branch, n: number): number => {
    let placed = 0;
    if (!branch.children) {
      placed = placeOnLeaf(branch, n);
    } else {
      const children = [...branch.children.values()];
      for (;;) {
        const usable = children.filter((c) => !c.full);
        if (placed >= n || next >= tasks.length || usable.length === 0) break;
        // Even out the branches that still have room: each should end with total/usable tasks,
        // the remainder going to the branches with the fewest.
        const total = usable.reduce((s, c) => s + c.tasks, 0) + (n - placed);
        const desired = Math.floor(total / usable.length);
        let remainder = total % usable.length;
        usable.sort((a, b) => a.tasks - b.tasks || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0));
        let progress = false;
        for (const child of usable) {
          if (placed >= n) break;
          const target = desired + (remainder > 0 ? 1 : 0);
          const want = Math.min(target - child.tasks, n - placed);
          if (want <= 0) continue;
          const got = placeOnBranch(child, want);
          placed += got;
          if (got > 0) progress = true;
          if (got < want) child.full = true;
          else if (remainder > 0 && child.tasks === target) remainder--;
        }
        if (!progress && usable.every((c) => c.full || c.tasks >= desired + 1)) break;
      }
    }
    branch.tasks += placed;
    return placed;
  };

  return placeOnBranch(buildTree(nodes, group), tasks.length);
}
