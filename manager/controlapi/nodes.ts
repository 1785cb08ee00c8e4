// Nodes: list, inspect, update (availability, labels, the desired role for promote/demote) and
// remove, with swarmkit's safeguards: the last manager cannot be demoted, a demotion must not cost
// the Raft quorum, a manager still in Raft cannot be removed, and a node that is up is removed
// only with force. A removed node is deleted from the store; that is what the cluster port's authz
// checks (manager/ca/authz.ts: a certificate whose node is not in the store is refused), so the
// node's certificate stops working at once.
import { Node, NodeRoleValues, NodeSpec, NodeSpec_AvailabilityValues } from '../../proto/gen/objects.js';
import type { ListNodesRequest, RemoveNodeRequest, UpdateNodeRequest } from '../../proto/gen/control.js';
import { copy } from '../store/blank.js';
import type { ReadView } from '../store/memory.js';
import type { ControlContext, RaftMembership } from './context.js';
import { checkVersionRead, invalid, precondition, translated } from './errors.js';
import { applyFilters, checkFilters, matchesLabel } from './filters.js';
import { resolve } from './resolve.js';

const hostnameOf = (n: Node): string => n.description?.hostname ?? '';

/** Leadership is Raft's, not the store's: filled in at read time. */
function withLeader(ctx: ControlContext, n: Node): Node {
  if (!n.managerStatus || !ctx.raft) return n;
  return { ...n, managerStatus: { ...n.managerStatus, leader: n.managerStatus.raftId === ctx.raft.leader() } };
}

export function getNode(ctx: ControlContext, ref: string): Node {
  return withLeader(ctx, resolve(ctx.store, 'nodes', ref));
}

/** `node ls`: filters id and name (prefixes, as swarmkit), label (engine), node.label, role, membership. */
export function listNodes(ctx: ControlContext, req: Pick<ListNodesRequest, 'filters'>): Node[] {
  const filters = req.filters;
  checkFilters(filters, ['id', 'name', 'label', 'node.label', 'role', 'membership']);
  for (const [key, valid] of [['role', ['manager', 'worker']], ['membership', ['accepted', 'pending']]] as const) {
    const v = filters[key];
    if (v !== undefined && !(valid as readonly string[]).includes(v)) throw invalid(`invalid filter '${key}=${v}': expected ${valid.join(' or ')}`);
  }
  const nodes = ctx.store.all('nodes').sort((a, b) => hostnameOf(a).localeCompare(hostnameOf(b)) || a.id.localeCompare(b.id));
  return applyFilters(nodes, filters, {
    id: (n, v) => n.id.startsWith(v),
    name: (n, v) => hostnameOf(n).startsWith(v),
    label: (n, v) => matchesLabel(n.description?.engineLabels, v),
    'node.label': (n, v) => matchesLabel(n.spec?.annotations?.labels, v),
    role: (n, v) => n.role.toLowerCase() === v,
    // Every node in the store was admitted with a join token: there is no pending membership.
    membership: (_n, v) => v === 'accepted',
  }).map((n) => withLeader(ctx, n));
}

function validateNodeSpec(spec: NodeSpec, ref: string): void {
  if (!NodeSpec_AvailabilityValues.includes(spec.availability)) {
    throw invalid(`node ${ref}: invalid availability ${JSON.stringify(spec.availability)}: expected active, pause or drain`);
  }
  if (!NodeRoleValues.includes(spec.desiredRole)) throw invalid(`node ${ref}: invalid role ${JSON.stringify(spec.desiredRole)}: expected manager or worker`);
  for (const key of Object.keys(spec.annotations?.labels ?? {})) {
    if (!key) throw invalid(`node ${ref}: a label needs a name`);
  }
}

/** Changes a node's spec as a whole; `version` must be what the client read. */
export async function updateNode(ctx: ControlContext, req: UpdateNodeRequest): Promise<Node> {
  const given = req.spec;
  if (!given) throw invalid(`node update of ${req.node} needs the new node spec`);
  if (!req.version) throw invalid(`node update of ${req.node} needs the version of the node that was read`);
  validateNodeSpec(given, req.node);
  const id = await translated(() =>
    ctx.store.update((tx) => {
      const node = resolve(tx, 'nodes', req.node);
      checkVersionRead(`node ${req.node}`, req.version, node.meta?.version ?? 0);
      if (node.spec?.desiredRole === 'MANAGER' && given.desiredRole === 'WORKER') checkDemotion(tx, ctx.raft, node, req.node);
      const updated = copy(Node, node);
      updated.spec = copy(NodeSpec, given);
      tx.update('nodes', updated);
      return node.id;
    }),
  );
  return getNode(ctx, id);
}

const isMember = (raft: RaftMembership | undefined, n: Node): boolean => {
  const raftId = n.managerStatus?.raftId;
  return !!raftId && !!raft && raft.memberIds().includes(raftId);
};

function checkDemotion(view: ReadView, raft: RaftMembership | undefined, node: Node, ref: string): void {
  const others = view.all('nodes').filter((n) => n.id !== node.id && n.spec?.desiredRole === 'MANAGER');
  if (others.length === 0) throw precondition(`attempting to demote the last manager of the swarm (node ${ref}): promote another node first`);
  if (!raft || !isMember(raft, node)) return;
  // The members left must still form a quorum among those that answer.
  const raftId = node.managerStatus!.raftId;
  const left = raft.memberIds().filter((id) => id !== raftId);
  const reachability = raft.reachability();
  const reachable = left.filter((id) => reachability.get(id) !== false).length;
  if (reachable < Math.floor(left.length / 2) + 1) {
    throw precondition(`can't demote node ${ref}: removing it from the raft would lose the quorum (${reachable} of the ${left.length} other managers are reachable)`);
  }
}

export async function removeNode(ctx: ControlContext, req: Pick<RemoveNodeRequest, 'node' | 'force'>): Promise<void> {
  await translated(() =>
    ctx.store.update((tx) => {
      const node = resolve(tx, 'nodes', req.node);
      if (isMember(ctx.raft, node)) {
        if (node.spec?.desiredRole === 'MANAGER') {
          throw precondition(`node ${req.node} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`);
        }
        throw precondition(`node ${req.node} was demoted but is still a member of the raft cluster: remove it once it has left`);
      }
      if (node.spec?.desiredRole === 'MANAGER' && !ctx.raft) {
        throw precondition(`node ${req.node} is a manager, and this manager cannot see the raft membership to check that it has left`);
      }
      if (!req.force && node.status?.state === 'READY') throw precondition(`node ${req.node} is not down and can't be removed`);
      tx.remove('nodes', node.id);
    }),
  );
}
