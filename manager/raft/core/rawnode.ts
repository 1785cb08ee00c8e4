// The application-facing handle on the core (etcd's RawNode). The node runner loops:
//
//   tick() every interval; step(msg) for each message received; propose()/readIndex() for clients
//   while (hasReady()) {
//     const rd = ready();
//     if (rd.sendBeforePersist) send rd.messages now (a leader writes while it replicates);
//     persist rd.snapshot (if any), rd.entries, then rd.hardState — fsync when rd.mustSync;
//     otherwise send rd.messages now (only after persisting: they may promise what was just written);
//     apply rd.committedEntries in order (ConfChange entries through applyConfChange);
//     serve rd.readStates once applied >= readState.index;
//     advance();
//   }
import { EntryType, MessageType, NONE, type ConfState, type Entry, type HardState, type Message, type NodeId, type ReadState, type Snapshot } from '../types.js';
import { encodeConfChange, type ConfChangeV2 } from './confchange.js';
import { ProposalDroppedError, StepLocalMsgError, StepPeerNotFoundError } from './errors.js';
import { Raft, StateType, type RaftConfig, type SoftState } from './raft.js';
import type { Storage } from './storage.js';
import { ProgressState } from './tracker.js';
import { entry, isLocalMsg, isResponseMsg, msg } from './util.js';

export interface Ready {
  /** Set when leader or role changed. Not persisted. */
  softState?: SoftState;
  /** Set when term, vote or commit changed: persist before sending messages. */
  hardState?: HardState;
  /** Entries to append to stable storage (may replace a conflicting tail). */
  entries: Entry[];
  /** A snapshot from the leader to persist and install in the state machine. */
  snapshot?: Snapshot;
  /** Committed entries to apply, in order. */
  committedEntries: Entry[];
  /** Messages to send once entries, snapshot and hard state are durable. */
  messages: Message[];
  /** Linearizable reads confirmed by the leader. */
  readStates: ReadState[];
  /** Whether the write must be fsynced (term/vote changed, or entries appended). */
  mustSync: boolean;
  /**
   * The messages may be sent before this Ready is persisted, in parallel with the fsync (Raft
   * thesis §10.2.1; etcd's leader does the same). Set only for a leader whose Ready changes neither
   * term nor vote, and whose commit index lies wholly in its already-durable log. Why that is
   * safe: a leader's messages promise nothing about its own disk except through the commit index
   * (it counts itself in the quorum at append time), and that index here covers only entries
   * persisted by earlier Readies; a commit that counts the entries of this Ready can only be
   * reached while this Ready is handled, and leaves in a later Ready, after this write. If the
   * leader crashes before the fsync, the entries it sent are merely uncommitted entries of its
   * own term, which no other node can write (it holds that term's vote).
   * Never set when a lone voter commits by itself (its learners would hear of a commit that the
   * crash could undo), nor with a term or vote change (a vote must be durable before it is cast).
   */
  sendBeforePersist: boolean;
}

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  inflight: number;
}

export interface Status {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  leadTransferee: NodeId;
  config: ConfState;
  /** Leader only: what it knows about each peer. */
  progress: Map<NodeId, ProgressStatus>;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

function isEmptyHardState(h: HardState): boolean {
  return h.term === 0 && h.vote === NONE && h.commit === 0;
}

export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  private pending: Ready | null = null;

  constructor(config: RaftConfig, storage: Storage) {
    this.raft = new Raft(config, storage);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  /** Advance logical time by one tick (elections, heartbeats, check-quorum). */
  tick(): void {
    this.raft.tick();
  }

  /** Start an election now (pre-vote first when enabled). */
  campaign(): void {
    this.raft.step(msg({ type: MessageType.MsgHup }));
  }

  /** Propose data for the log. Throws ProposalDroppedError if it cannot be accepted now. */
  propose(data: Uint8Array): void {
    this.raft.step(msg({ type: MessageType.MsgProp, from: this.raft.id, entries: [entry({ data })] }));
  }

  /**
   * Propose several entries at once, all or none (ProposalDroppedError). One append and one MsgApp
   * per follower for the lot, where separate propose() calls would send one each.
   */
  proposeAll(data: readonly Uint8Array[]): void {
    if (data.length === 0) return;
    this.raft.step(msg({ type: MessageType.MsgProp, from: this.raft.id, entries: data.map((d) => entry({ data: d })) }));
  }

  /** Propose a membership change; apply it with applyConfChange once it is committed. */
  proposeConfChange(cc: ConfChangeV2): void {
    this.raft.step(msg({ type: MessageType.MsgProp, from: this.raft.id, entries: [entry({ type: EntryType.ConfChange, data: encodeConfChange(cc) })] }));
  }

  /** Apply a committed ConfChange entry; returns the new configuration (to save in snapshots). */
  applyConfChange(cc: ConfChangeV2): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /**
   * Feed a message from the network. Local-only message types are refused, as are responses
   * from peers we do not track. Proposals forwarded to us that we cannot accept are dropped.
   */
  step(m: Message): void {
    if (isLocalMsg(m.type)) throw new StepLocalMsgError(m.type);
    if (isResponseMsg(m.type) && !this.raft.trk.progress.has(m.from)) throw new StepPeerNotFoundError(m.from);
    try {
      this.raft.step(m);
    } catch (e) {
      if (e instanceof ProposalDroppedError) return;
      throw e;
    }
  }

  /** Ask the leader to hand leadership to `transferee` (which must be a voter). */
  transferLeader(transferee: NodeId): void {
    this.stepLocal(msg({ type: MessageType.MsgTransferLeader, from: transferee }));
  }

  /**
   * Request a linearizable read. `ctx` must be unique; a ReadState with it appears in a later
   * Ready once the leader confirmed its leadership. Dropped silently if no leader is known.
   */
  readIndex(ctx: Uint8Array): void {
    this.stepLocal(msg({ type: MessageType.MsgReadIndex, context: ctx }));
  }

  /**
   * The transport could not deliver to `id`, or lost its connection to it. A leader probes that
   * follower again; a follower whose leader it is gives up the leader's lease (see stepFollower).
   */
  reportUnreachable(id: NodeId): void {
    this.stepLocal(msg({ type: MessageType.MsgUnreachable, from: id }));
  }

  /** A snapshot sent to `id` finished (ok=false: it failed and will be retried). */
  reportSnapshot(id: NodeId, ok: boolean): void {
    this.stepLocal(msg({ type: MessageType.MsgSnapStatus, from: id, reject: !ok }));
  }

  private stepLocal(m: Message): void {
    try {
      this.raft.step(m);
    } catch (e) {
      if (e instanceof ProposalDroppedError) return;
      throw e;
    }
  }

  hasReady(): boolean {
    if (this.pending) return false; // the previous Ready is still being handled
    const r = this.raft;
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardState)) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.raftLog.unstableEntries().length > 0 || r.raftLog.hasNextEnts()) return true;
    return r.readStates.length > 0;
  }

  /** Everything the application must do now. Call advance() when done with it. */
  ready(): Ready {
    if (this.pending) throw new Error('raft: ready() called before advance() of the previous Ready');
    const r = this.raft;
    const rd: Ready = {
      entries: [...r.raftLog.unstableEntries()],
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      readStates: r.readStates,
      mustSync: false,
      sendBeforePersist: false,
    };
    const ss = r.softState();
    if (ss.lead !== this.prevSoftState.lead || ss.raftState !== this.prevSoftState.raftState) {
      rd.softState = ss;
      this.prevSoftState = ss;
    }
    const hs = r.hardState();
    if (!hardStateEqual(hs, this.prevHardState)) rd.hardState = hs;
    if (r.raftLog.unstable.snapshot) rd.snapshot = r.raftLog.unstable.snapshot;
    // Term and vote must never be forgotten; a commit index may be (it is re-learnt).
    const termOrVoteChanged = hs.term !== this.prevHardState.term || hs.vote !== this.prevHardState.vote;
    rd.mustSync = rd.entries.length > 0 || termOrVoteChanged;
    // The unstable log starts right after the last durable entry.
    rd.sendBeforePersist = r.state === StateType.Leader && !termOrVoteChanged && !rd.snapshot && hs.commit < r.raftLog.unstable.offset;
    r.msgs = [];
    r.readStates = [];
    this.pending = rd;
    return rd;
  }

  /** The last Ready has been persisted, sent and applied. */
  advance(): void {
    const rd = this.pending;
    if (!rd) throw new Error('raft: advance() without a Ready');
    this.pending = null;
    if (rd.hardState) this.prevHardState = rd.hardState;
    let applied = 0;
    if (rd.committedEntries.length > 0) applied = rd.committedEntries[rd.committedEntries.length - 1]!.index;
    else if (rd.snapshot) applied = rd.snapshot.metadata.index;
    const last = rd.entries.length > 0 ? rd.entries[rd.entries.length - 1]! : null;
    this.raft.advance(rd.committedEntries, applied, last ? { index: last.index, term: last.term } : null, rd.snapshot?.metadata.index ?? 0);
  }

  status(): Status {
    const r = this.raft;
    const progress = new Map<NodeId, ProgressStatus>();
    if (r.state === StateType.Leader) {
      r.trk.visit((id, pr) => {
        progress.set(id, { match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner, recentActive: pr.recentActive, inflight: pr.inflights.count() });
      });
    }
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
      config: r.trk.confState(),
      progress,
    };
  }
}
