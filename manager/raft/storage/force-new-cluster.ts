// Force a new cluster (etcd's --force-new-cluster, Docker's `swarm init --force-new-cluster`): turn
// one member's data directory into that of a single-member cluster that keeps all of its state, so
// a cluster that lost quorum for good can go on from a survivor.
//
// How (etcd's way, which swarmkit follows): the log is kept, and configuration changes removing
// every other member are appended to it at a new term and marked committed. When the node opens
// the directory, Raft applies them like any committed entries: the state machine is rebuilt from
// the snapshot and the log as always, and the member table ends with this member alone. The node
// runner remembers the removed ids and drops their messages, so a removed member that comes back
// with its old data cannot make the new cluster step down.
//
// Which entries are kept: all of them, including those past the hard state's commit index. etcd
// drops those; here they are kept on purpose, because the commit index on disk lags behind the
// real one (a Ready that only advances the commit is not written: node.ts), so an entry past it
// may well be a write a client was told succeeded. Keeping the tail is what would happen anyway
// if this member had won an election: a Raft leader commits its whole log.
//
// Term: the new entries carry a term above every term this member has seen, so its log wins any
// comparison with the removed members' logs and their stale messages are refused.
import {
  Changer,
  ConfChangeType,
  confChange,
  decodeConfChange,
  encodeConfChange,
  enterJoint,
  isLeaveJoint,
  leaveJointChange,
  restoreConfState,
  type ChangeResult,
  type ConfChangeV2,
} from '../core/confchange.js';
import { ProgressTracker } from '../core/tracker.js';
import { EntryType, type ConfState, type Entry, type NodeId } from '../types.js';
import { DiskStorage, type DiskStorageOptions } from './disk-storage.js';

export interface ForceNewClusterResult {
  /** The members taken out of the configuration (voters and learners), in the order removed. */
  removed: NodeId[];
  /** The term of the appended entries (and of the hard state). */
  term: number;
  /** The index of the last entry, now committed. */
  lastIndex: number;
  /** The commit index the directory recorded before: entries above it were kept (see above). */
  previousCommit: number;
}

export class ForceNewClusterError extends Error {
  override name = 'ForceNewClusterError';
}

/** The configuration that results from applying `ccs` in order to `cs`, as the core applies them. */
function configAfter(cs: ConfState, ccs: ConfChangeV2[], lastIndex: number): ProgressTracker {
  const trk = new ProgressTracker(1);
  const set = (r: ChangeResult) => {
    trk.config = r.config;
    trk.progress = r.progress;
  };
  set(restoreConfState(cs, 1, lastIndex));
  for (const cc of ccs) {
    const changer = new Changer(trk, lastIndex);
    if (isLeaveJoint(cc)) set(changer.leaveJoint());
    else {
      const { joint, autoLeave } = enterJoint(cc);
      set(joint ? changer.enterJoint(autoLeave, cc.changes) : changer.simple(cc.changes));
    }
  }
  return trk;
}

/**
 * Rewrites the Raft data directory `dir` of member `self` into a single-member cluster (see the
 * file comment). The directory must not be open elsewhere. Running it twice is harmless.
 */
export async function forceNewCluster(dir: string, self: NodeId, opts: DiskStorageOptions = {}): Promise<ForceNewClusterResult> {
  const storage = await DiskStorage.open(dir, opts);
  try {
    const snap = storage.snapshot();
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    if (last === 0) throw new ForceNewClusterError(`the Raft directory ${dir} holds no log: there is no cluster to recover`);
    const log: Entry[] = last >= first ? storage.entries(first, last + 1, Number.POSITIVE_INFINITY) : [];
    const changes = log.filter((e) => e.type === EntryType.ConfChange).map((e) => decodeConfChange(e.data));
    const trk = configAfter(snap.metadata.confState, changes, last);
    const cs = trk.confState();
    if (!cs.voters.includes(self) && !cs.votersOutgoing.includes(self)) {
      throw new ForceNewClusterError(`member ${self} is not a voter of its cluster (voters: ${cs.voters.join(', ') || 'none'}): only a manager can force a new cluster`);
    }

    // One simple change per entry: a joint configuration could never be left by a lone member.
    const appended: ConfChangeV2[] = [];
    if (trk.isJoint()) appended.push(leaveJointChange());
    const others = [...new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext])].filter((id) => id !== self).sort((a, b) => a - b);
    for (const id of others) appended.push(confChange([{ type: ConfChangeType.RemoveNode, nodeId: id }]));
    // The final configuration must be this member alone; checking it here means a surprise shows
    // up now, not as a node that cannot apply its own log.
    const final = configAfter(snap.metadata.confState, [...changes, ...appended], last).confState();
    if (final.voters.length !== 1 || final.voters[0] !== self || final.learners.length || final.votersOutgoing.length) {
      throw new ForceNewClusterError(`internal error: forcing a new cluster left voters [${final.voters.join(', ')}], learners [${final.learners.join(', ')}]`);
    }

    const hs = storage.initialState().hardState;
    const term = Math.max(hs.term, storage.term(last)) + 1;
    const entries: Entry[] = appended.map((cc, i) => ({ index: last + 1 + i, term, type: EntryType.ConfChange, data: encodeConfChange(cc) }));
    // An empty entry at the new term even when nobody is removed, so the term bump is in the log.
    if (entries.length === 0) entries.push({ index: last + 1, term, type: EntryType.Normal, data: new Uint8Array(0) });
    const lastIndex = entries[entries.length - 1]!.index;
    // Voting for itself in the new term: this member can then grant no other vote in it.
    await storage.save({ term, vote: self, commit: lastIndex }, entries);
    return { removed: others, term, lastIndex, previousCommit: hs.commit };
  } finally {
    await storage.close();
  }
}
