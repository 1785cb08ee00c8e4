// Tasks of one service made from one spec version are interchangeable for placement, so the
// scheduler places them together. A TaskGroup holds what the filters need, worked out once for
// the group rather than once per task and node: parsed constraints, reservations, host ports.
import type { Node, Platform, Task } from '../../proto/gen/objects.js';
import { compileConstraints, ConstraintError, parseConstraints, type Constraint } from './constraint.js';
import { genericReservations, hostPorts } from './nodeinfo.js';

export interface TaskGroup {
  key: string;
  serviceId: string;
  /** The group's tasks in a stable order (slot, then id). */
  tasks: Task[];
  constraints: Constraint[];
  /** The constraints as one test of a node. */
  meetsConstraints: (node: Node) => boolean;
  /** Set when a constraint does not parse: the group cannot be placed, and this says why. */
  constraintError?: string;
  nanoCpus: number;
  memoryBytes: number;
  generic: ReadonlyMap<string, number>;
  hostPorts: readonly string[];
  /** 0: no limit. */
  maxReplicas: number;
  platforms: Platform[];
  /** Spread descriptors, outermost first. */
  preferences: string[];
}

/** The grouping key: service and spec version (a task without a service is a group of its own). */
export function groupKey(t: Task): string {
  return t.serviceId ? `${t.serviceId}@${t.specVersion}` : `task:${t.id}`;
}

export function makeGroup(key: string, tasks: Task[]): TaskGroup {
  const first = tasks[0]!;
  const placement = first.spec?.placement;
  const reservations = first.spec?.resources?.reservations;
  let constraints: Constraint[] = [];
  let constraintError: string | undefined;
  try {
    constraints = parseConstraints(placement?.constraints ?? []);
  } catch (e) {
    if (!(e instanceof ConstraintError)) throw e;
    constraintError = e.message;
  }
  tasks.sort((a, b) => a.slot - b.slot || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return {
    key,
    serviceId: first.serviceId,
    tasks,
    constraints,
    meetsConstraints: compileConstraints(constraints),
    constraintError,
    nanoCpus: reservations?.nanoCpus ?? 0,
    memoryBytes: reservations?.memoryBytes ?? 0,
    generic: genericReservations(first),
    hostPorts: hostPorts(first),
    maxReplicas: placement?.maxReplicas ?? 0,
    platforms: placement?.platforms ?? [],
    preferences: (placement?.preferences ?? []).map((p) => p.spreadDescriptor).filter((d) => d !== ''),
  };
}

/** Groups tasks by service and spec version, in a deterministic order of groups. */
export function groupTasks(tasks: Iterable<Task>): TaskGroup[] {
  const byKey = new Map<string, Task[]>();
  for (const t of tasks) {
    const k = groupKey(t);
    let list = byKey.get(k);
    if (!list) byKey.set(k, (list = []));
    list.push(t);
  }
  return [...byKey.keys()].sort().map((k) => makeGroup(k, byKey.get(k)!));
}
