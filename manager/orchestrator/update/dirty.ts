// Whether a task was made from its service's current spec, compared as swarmkit compares: the
// task's spec against the service's task spec, and the task's endpoint spec against the
// service's. A task that differs is "dirty": a rolling update replaces it.
import { EndpointSpec, TaskSpec, type Codec, type Endpoint, type Node, type Service, type Task } from '../../../proto/gen/objects.js';
import { blank, copy } from '../../store/blank.js';
import { nodeMatches } from '../../scheduler/constraint.js';
import { constraintsOf } from '../service.js';

/**
 * A canonical text of a message: defaults filled in by a round trip through its codec, and map
 * keys sorted (two equal label maps written in another order are the same spec).
 */
function canonical<T>(codec: Codec<T>, value: T): string {
  return JSON.stringify(copy(codec, value), (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}

// Objects in the store are never changed in place (a writer changes a copy), so the text of each
// spec object is worked out once: a pass over a big service compares thousands of tasks.
const texts = new WeakMap<object, string>();
function memo<T extends object>(codec: Codec<T>, value: T): string {
  let text = texts.get(value);
  if (text === undefined) texts.set(value, (text = canonical(codec, value)));
  return text;
}

// A missing spec is the blank one: a task of a service without a task spec gets a blank spec.
const NO_TASK_SPEC = canonical(TaskSpec, blank(TaskSpec));
const NO_ENDPOINT_SPEC = canonical(EndpointSpec, blank(EndpointSpec));
const taskSpecText = (s: TaskSpec | null | undefined): string => (s ? memo(TaskSpec, s) : NO_TASK_SPEC);
const endpointSpecText = (e: Endpoint | null | undefined): string => (e?.spec ? memo(EndpointSpec, e.spec) : NO_ENDPOINT_SPEC);

/**
 * A task is dirty when its spec or endpoint differs from what a task made now would get.
 *
 * - Same spec version: clean at once (controlapi gives every spec a new, never reused version).
 * - Only the placement differs and the task's node satisfies the new constraints: clean
 *   (swarmkit: moving a task that may stay where it is would only cost a restart).
 * - The endpoint is compared with `service.endpoint.spec` — the allocator's copy, which new tasks
 *   get — rather than with `service.spec.endpoint`: until the allocator has caught up with a port
 *   change, a replacement would be made from the old endpoint and be dirty at birth. Once the
 *   allocator writes the service, the tasks turn dirty and the update proceeds. A task without an
 *   endpoint (not allocated yet) is not compared, as in swarmkit.
 */
export function isTaskDirty(service: Service, t: Task, node: Node | undefined): boolean {
  if (t.specVersion === service.specVersion) return false;
  if (t.endpoint && service.endpoint && endpointSpecText(t.endpoint) !== endpointSpecText(service.endpoint)) return true;
  const want = service.spec?.task;
  if (taskSpecText(want) === taskSpecText(t.spec)) return false;
  // Placement alone changed, and the node the task is on still fits: keep it.
  if (!node || !t.spec) return true;
  const samePlacement = copy(TaskSpec, want ?? blank(TaskSpec));
  samePlacement.placement = t.spec.placement ?? null;
  if (taskSpecText(samePlacement) !== taskSpecText(t.spec)) return true;
  const constraints = constraintsOf(service);
  return constraints === null || !nodeMatches(constraints, node);
}
