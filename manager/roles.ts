// The leader keeps Raft membership in line with the nodes' desired roles. `node demote` only
// writes the desired role; here the leader removes the demoted manager from Raft (handing over
// leadership first when it is the one demoted) and clears its manager status. The node learns
// of its new role by renewing its certificate and stops its manager once it is out of Raft.
// Promotions go the other way round: the promoted node asks to join (JoinRaft) itself.
import type { RaftNode } from './raft/node.js';
import type { MemoryStore } from './store/memory.js';

export interface RoleReconcilerDeps {
  raft: RaftNode;
  store: MemoryStore;
  selfRaftId: number;
  log: (message: string, fields: Record<string, unknown>) => void;
}

/** One pass; the leader runs it periodically. Returns what it did, for logs and tests. */
export async function reconcileRoles(deps: RoleReconcilerDeps): Promise<string[]> {
  const { raft, store } = deps;
  if (!raft.isLeader) return [];
  const members = new Set(raft.memberList().map((m) => m.id));
  const done: string[] = [];
  for (const node of store.all('nodes')) {
    const raftId = node.managerStatus?.raftId;
    if (node.spec?.desiredRole !== 'WORKER' || !raftId) continue;
    if (members.has(raftId)) {
      if (raftId === deps.selfRaftId) {
        // A leader cannot remove itself safely: hand over, and the next leader removes it.
        const next = [...raft.activePeers()].find(([id, active]) => active && id !== raftId)?.[0];
        if (next === undefined) continue;
        deps.log('demoted leader hands over leadership', { to: next });
        await raft.transferLeadership(next);
        return done;
      }
      await raft.removeMember(raftId);
      done.push(`removed ${node.id} (raft ${raftId}) from Raft`);
    }
    await store.update((tx) => {
      const cur = tx.get('nodes', node.id);
      if (!cur?.managerStatus || cur.spec?.desiredRole !== 'WORKER') return;
      tx.update('nodes', { ...cur, managerStatus: null });
    });
    done.push(`cleared the manager status of ${node.id}`);
  }
  for (const line of done) deps.log('role reconciliation', { action: line });
  return done;
}
