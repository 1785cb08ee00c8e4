// What the orchestrators read from a service and from nodes: its mode, and which nodes may run
// its tasks.
import type { Node, Service } from '../../proto/gen/objects.js';
import { nodeMatches, parseConstraints, type Constraint } from '../scheduler/constraint.js';

export type ServiceMode = 'replicated' | 'global' | 'replicatedJob' | 'globalJob';

export function serviceMode(s: Service): ServiceMode | undefined {
  const spec = s.spec;
  if (!spec) return undefined;
  if (spec.mode) return spec.mode;
  if (spec.replicated) return 'replicated';
  if (spec.global) return 'global';
  if (spec.replicatedJob) return 'replicatedJob';
  if (spec.globalJob) return 'globalJob';
  return undefined;
}

export const isJob = (s: Service): boolean => {
  const m = serviceMode(s);
  return m === 'replicatedJob' || m === 'globalJob';
};

export const isGlobal = (s: Service): boolean => {
  const m = serviceMode(s);
  return m === 'global' || m === 'globalJob';
};

/**
 * The service's placement constraints, or null when one does not parse (controlapi validates
 * them, so only a store written by something else gets here): such a service fits no node.
 */
export function constraintsOf(s: Service): Constraint[] | null {
  try {
    return parseConstraints(s.spec?.task?.placement?.constraints ?? []);
  } catch {
    return null;
  }
}

/** The node is gone or down: nothing it runs will be reported again. */
export const nodeLost = (n: Node | undefined): boolean => !n || n.status?.state === 'DOWN';

/** Tasks on this node must move or stop (swarmkit's InvalidNode): gone, down or drained. */
export const nodeInvalid = (n: Node | undefined): boolean => nodeLost(n) || n!.spec?.availability === 'DRAIN';

/** A node that keeps the tasks it has (a paused node does) and matches the constraints. */
export function nodeKeeps(n: Node | undefined, constraints: Constraint[] | null): boolean {
  return !nodeInvalid(n) && constraints !== null && nodeMatches(constraints, n!);
}

/** A node that gets new global tasks: ready, active (not paused or drained), matching. */
export function nodeTakesNew(n: Node, constraints: Constraint[] | null): boolean {
  return n.status?.state === 'READY' && (n.spec?.availability ?? 'ACTIVE') === 'ACTIVE' && constraints !== null && nodeMatches(constraints, n);
}
