// The Raft state machine (etcd's raft.go): terms, votes, roles, the per-role step functions and
// the log it drives. No I/O, no clock, no ambient randomness: time is tick(), the network is
// step() in and `msgs` out, and the disk is Storage in and Ready (rawnode.ts) out.
import { EntryType, MessageType, NONE, type ConfState, type Entry, type HardState, type Message, type NodeId, type ReadState, type Snapshot } from '../types.js';
import { Changer, decodeConfChange, enterJoint, isLeaveJoint, restoreConfState, type ChangeResult, type ConfChangeV2 } from './confchange.js';
import { ProposalDroppedError, SnapshotTemporarilyUnavailableError } from './errors.js';
import { RaftLog } from './log.js';
import type { Storage } from './storage.js';
import { ProgressState, ProgressTracker, VoteResult } from './tracker.js';
import { bytesEqual, bytesKey, entry, msg, payloadSize, SeededRandom, voteRespMsgType, type RandomSource } from './util.js';

export enum StateType {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

export interface RaftConfig {
  /** This node's id; never 0. */
  id: NodeId;
  /** Ticks without hearing from a leader before campaigning (randomized in [n, 2n)). Default 10. */
  electionTick?: number;
  /** Ticks between leader heartbeats. Default 1. */
  heartbeatTick?: number;
  /** Leader steps down when it has not heard from a quorum for an election timeout; also gives followers a lease. Default true. */
  checkQuorum?: boolean;
  /** Run a pre-vote round before incrementing the term, so partitioned nodes cannot disrupt. Default true. */
  preVote?: boolean;
  /** Max bytes of entries in one MsgApp. Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Max bytes of committed entries handed out in one Ready. Default maxSizePerMsg * 64. */
  maxCommittedSizePerReady?: number;
  /** Max appends in flight to one follower in Replicate state. Default 256. */
  maxInflightMsgs?: number;
  /** Max bytes of uncommitted entry payloads a leader accepts; 0 = no limit. Default 0. */
  maxUncommittedEntriesSize?: number;
  /** The index the application has already applied (from its snapshot) at start. */
  applied?: number;
  /** Followers drop proposals instead of forwarding them to the leader. Default false. */
  disableProposalForwarding?: boolean;
  /** Seeded randomness for election timeouts. Default: a PRNG seeded by id. */
  random?: RandomSource;
}

export interface SoftState {
  lead: NodeId;
  raftState: StateType;
}

/** Context of a vote that a leader transfer forces: voters ignore their leader lease for it. */
export const CAMPAIGN_TRANSFER = new TextEncoder().encode('CampaignTransfer');

enum CampaignType {
  PreElection,
  Election,
  Transfer,
}

interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Map<NodeId, boolean>;
}

/** Pending ReadIndex requests a leader is confirming with a heartbeat round. */
class ReadOnly {
  pending = new Map<string, ReadIndexStatus>();
  queue: string[] = [];

  addRequest(index: number, m: Message): void {
    const key = bytesKey(m.context);
    if (this.pending.has(key)) return;
    this.pending.set(key, { index, req: m, acks: new Map() });
    this.queue.push(key);
  }

  recvAck(id: NodeId, context: Uint8Array): Map<NodeId, boolean> | null {
    const rs = this.pending.get(bytesKey(context));
    if (!rs) return null;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /** All requests up to and including the one with this context are confirmed. */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = bytesKey(context);
    const i = this.queue.indexOf(key);
    if (i < 0) return [];
    const done = this.queue.slice(0, i + 1);
    this.queue = this.queue.slice(i + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of done) {
      out.push(this.pending.get(k)!);
      this.pending.delete(k);
    }
    return out;
  }

  lastPendingRequestCtx(): Uint8Array {
    if (this.queue.length === 0) return new Uint8Array(0);
    return this.pending.get(this.queue[this.queue.length - 1]!)!.req.context;
  }
}

function numOfPendingConf(ents: Entry[]): number {
  return ents.filter((e) => e.type === EntryType.ConfChange).length;
}

export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readStates: ReadState[] = [];
  raftLog: RaftLog;
  trk: ProgressTracker;
  state = StateType.Follower;
  isLearner = false;
  msgs: Message[] = [];
  lead: NodeId = NONE;
  /** The peer leadership is being transferred to, or NONE. */
  leadTransferee: NodeId = NONE;
  /** Only one conf change may be pending: the index of the last one proposed. */
  pendingConfIndex = 0;
  uncommittedSize = 0;
  readOnly = new ReadOnly();
  /** ReadIndex requests held until this leader has committed an entry of its own term. */
  pendingReadIndexMessages: Message[] = [];
  electionElapsed = 0;
  heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  randomizedElectionTimeout = 0;
  readonly maxMsgSize: number;
  readonly maxUncommittedSize: number;
  readonly disableProposalForwarding: boolean;
  private readonly random: RandomSource;
  private stepFn: (m: Message) => void = (m) => this.stepFollower(m);
  private tickFn: () => void = () => this.tickElection();

  constructor(c: RaftConfig, storage: Storage) {
    if (!Number.isInteger(c.id) || c.id <= 0) throw new RangeError(`raft: id must be a positive integer, got ${c.id}`);
    this.id = c.id;
    this.electionTimeout = c.electionTick ?? 10;
    this.heartbeatTimeout = c.heartbeatTick ?? 1;
    if (this.heartbeatTimeout <= 0) throw new RangeError(`raft: heartbeatTick must be > 0, got ${this.heartbeatTimeout}`);
    if (this.electionTimeout <= this.heartbeatTimeout) {
      throw new RangeError(`raft: electionTick (${this.electionTimeout}) must be greater than heartbeatTick (${this.heartbeatTimeout})`);
    }
    this.checkQuorum = c.checkQuorum ?? true;
    this.preVote = c.preVote ?? true;
    this.maxMsgSize = c.maxSizePerMsg ?? 1024 * 1024;
    const maxInflight = c.maxInflightMsgs ?? 256;
    if (maxInflight <= 0) throw new RangeError(`raft: maxInflightMsgs must be > 0, got ${maxInflight}`);
    this.maxUncommittedSize = c.maxUncommittedEntriesSize ?? 0;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.random = c.random ?? new SeededRandom(c.id);
    this.raftLog = new RaftLog(storage, c.maxCommittedSizePerReady ?? this.maxMsgSize * 64);
    this.trk = new ProgressTracker(maxInflight);

    const { hardState, confState } = storage.initialState();
    this.switchToConfig(restoreConfState(confState, maxInflight, this.raftLog.lastIndex()));
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) this.loadState(hardState);
    if (c.applied && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, NONE);
  }

  // ---- state snapshots -------------------------------------------------------------------

  softState(): SoftState {
    return { lead: this.lead, raftState: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  private loadState(hs: HardState): void {
    if (hs.commit < this.raftLog.committed || hs.commit > this.raftLog.lastIndex()) {
      throw new Error(`raft: ${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`);
    }
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  // ---- sending ---------------------------------------------------------------------------

  private send(m: Message): void {
    if (m.from === NONE) m.from = this.id;
    const t = m.type;
    if (t === MessageType.MsgVote || t === MessageType.MsgVoteResp || t === MessageType.MsgPreVote || t === MessageType.MsgPreVoteResp) {
      if (m.term === 0) throw new Error(`raft: term should be set when sending ${MessageType[t]}`);
    } else {
      if (m.term !== 0) throw new Error(`raft: term should not be set when sending ${MessageType[t]} (was ${m.term})`);
      // Proposals and read requests are forwarded as-is: they carry no term.
      if (t !== MessageType.MsgProp && t !== MessageType.MsgReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  private sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /** Send entries (or a snapshot if they are compacted) to `to`; false if nothing was sent. */
  private maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.trk.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevTerm = this.raftLog.termOrNull(pr.next - 1);
    let ents: Entry[] | null;
    try {
      ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    } catch {
      ents = null;
    }
    if (ents !== null && ents.length === 0 && !sendIfEmpty) return false;

    if (prevTerm === null || ents === null) {
      // The entries are compacted: the follower needs a snapshot.
      if (!pr.recentActive) return false;
      let snapshot: Snapshot;
      try {
        snapshot = this.raftLog.snapshot();
      } catch (e) {
        if (e instanceof SnapshotTemporarilyUnavailableError) return false;
        throw e;
      }
      if (snapshot.metadata.index === 0) throw new Error('raft: need a non-empty snapshot to send');
      pr.becomeSnapshot(snapshot.metadata.index);
      this.send(msg({ type: MessageType.MsgSnap, to, snapshot }));
      return true;
    }

    const m = msg({ type: MessageType.MsgApp, to, index: pr.next - 1, logTerm: prevTerm, entries: ents, commit: this.raftLog.committed });
    if (ents.length > 0) {
      switch (pr.state) {
        case ProgressState.Replicate: {
          const last = ents[ents.length - 1]!.index;
          pr.optimisticUpdate(last);
          pr.inflights.add(last);
          break;
        }
        case ProgressState.Probe:
          pr.probeSent = true;
          break;
        default:
          throw new Error(`raft: ${this.id} is sending append in unhandled state ${ProgressState[pr.state]}`);
      }
    }
    this.send(m);
    return true;
  }

  private sendHeartbeat(to: NodeId, ctx: Uint8Array): void {
    // Never tell a follower to commit past what it is known to have: it may not have it.
    const commit = Math.min(this.trk.progress.get(to)!.match, this.raftLog.committed);
    this.send(msg({ type: MessageType.MsgHeartbeat, to, commit, context: ctx }));
  }

  private bcastAppend(): void {
    this.trk.visit((id) => {
      if (id !== this.id) this.sendAppend(id);
    });
  }

  private bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx());
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array): void {
    this.trk.visit((id) => {
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    });
  }

  private sendTimeoutNow(to: NodeId): void {
    this.send(msg({ type: MessageType.MsgTimeoutNow, to }));
  }

  // ---- applying results ------------------------------------------------------------------

  /**
   * The application finished with a Ready: `appliedIndex` (0 = none) was applied, entries up to
   * (lastIndex, lastTerm) and the snapshot at snapIndex are durable.
   */
  advance(committedEntries: Entry[], appliedIndex: number, stable: { index: number; term: number } | null, snapIndex: number): void {
    this.reduceUncommittedSize(committedEntries);
    if (appliedIndex > 0) {
      const oldApplied = this.raftLog.applied;
      this.raftLog.appliedTo(appliedIndex);
      if (this.trk.config.autoLeave && oldApplied <= this.pendingConfIndex && appliedIndex >= this.pendingConfIndex && this.state === StateType.Leader) {
        // The joint configuration this leader entered is now applied: leave it. An empty
        // ConfChange is never refused for its size.
        const ent = entry({ type: EntryType.ConfChange });
        if (!this.appendEntry([ent])) throw new Error('raft: refused un-refusable auto-leaving ConfChangeV2');
        this.pendingConfIndex = this.raftLog.lastIndex();
        this.bcastAppend();
      }
    }
    if (stable) this.raftLog.stableTo(stable.index, stable.term);
    if (snapIndex > 0) this.raftLog.stableSnapTo(snapIndex);
  }

  /** Can this node become leader? (a voter, and not waiting to persist a snapshot) */
  promotable(): boolean {
    const pr = this.trk.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  private maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.trk.committed(), this.term);
  }

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.trk.resetVotes();
    const last = this.raftLog.lastIndex();
    this.trk.visit((id, pr) => {
      const isLearner = pr.isLearner;
      pr.match = id === this.id ? last : 0;
      pr.next = last + 1;
      pr.state = ProgressState.Probe;
      pr.pendingSnapshot = 0;
      pr.probeSent = false;
      pr.recentActive = false;
      pr.inflights.reset();
      pr.isLearner = isLearner;
    });
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
  }

  private appendEntry(es: Entry[]): boolean {
    let li = this.raftLog.lastIndex();
    es.forEach((e, i) => {
      e.term = this.term;
      e.index = li + 1 + i;
    });
    if (!this.increaseUncommittedSize(es)) return false;
    li = this.raftLog.append(es);
    this.trk.progress.get(this.id)?.maybeUpdate(li);
    this.maybeCommit();
    return true;
  }

  // ---- ticks -----------------------------------------------------------------------------

  tick(): void {
    this.tickFn();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(msg({ type: MessageType.MsgHup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(msg({ type: MessageType.MsgCheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === StateType.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(msg({ type: MessageType.MsgBeat, from: this.id }));
    }
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.random.intn(this.electionTimeout);
  }

  // ---- role changes ----------------------------------------------------------------------

  becomeFollower(term: number, lead: NodeId): void {
    this.stepFn = (m) => this.stepFollower(m);
    this.reset(term);
    this.tickFn = () => this.tickElection();
    this.lead = lead;
    this.state = StateType.Follower;
  }

  becomeCandidate(): void {
    if (this.state === StateType.Leader) throw new Error('raft: invalid transition [leader -> candidate]');
    this.stepFn = (m) => this.stepCandidate(m);
    this.reset(this.term + 1);
    this.tickFn = () => this.tickElection();
    this.vote = this.id;
    this.state = StateType.Candidate;
  }

  becomePreCandidate(): void {
    if (this.state === StateType.Leader) throw new Error('raft: invalid transition [leader -> pre-candidate]');
    // Neither the term nor the vote changes: a pre-vote is only a question.
    this.stepFn = (m) => this.stepCandidate(m);
    this.trk.resetVotes();
    this.tickFn = () => this.tickElection();
    this.lead = NONE;
    this.state = StateType.PreCandidate;
  }

  becomeLeader(): void {
    if (this.state === StateType.Follower) throw new Error('raft: invalid transition [follower -> leader]');
    this.stepFn = (m) => this.stepLeader(m);
    this.reset(this.term);
    this.tickFn = () => this.tickHeartbeat();
    this.lead = this.id;
    this.state = StateType.Leader;
    this.trk.progress.get(this.id)?.becomeReplicate();
    // Any conf change in the uncommitted tail must apply before a new one is accepted.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // An empty entry of our term: committing it commits everything before it (§5.4.2).
    const empty = entry({});
    if (!this.appendEntry([empty])) throw new Error('raft: empty entry was dropped');
    // The initial empty entry does not count towards the uncommitted quota.
    this.reduceUncommittedSize([empty]);
  }

  private hup(t: CampaignType): void {
    if (this.state === StateType.Leader) return;
    if (!this.promotable()) return;
    // Committed but unapplied conf changes could change who we need votes from: wait.
    const ents = this.raftLog.slice(this.raftLog.applied + 1, this.raftLog.committed + 1, Number.MAX_SAFE_INTEGER);
    if (numOfPendingConf(ents) !== 0 && this.raftLog.committed > this.raftLog.applied) return;
    this.campaign(t);
  }

  private campaign(t: CampaignType): void {
    if (!this.promotable()) return;
    let term: number;
    let voteMsg: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      // Pre-votes ask about the next term without moving to it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    if (this.poll(this.id, true) === VoteResult.Won) {
      // A single-voter configuration: we won on our own vote.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else this.becomeLeader();
      return;
    }
    for (const id of this.trk.voterIds()) {
      if (id === this.id) continue;
      const context = t === CampaignType.Transfer ? CAMPAIGN_TRANSFER : new Uint8Array(0);
      this.send(msg({ type: voteMsg, to: id, term, index: this.raftLog.lastIndex(), logTerm: this.raftLog.lastTerm(), context }));
    }
  }

  private poll(id: NodeId, granted: boolean): VoteResult {
    this.trk.recordVote(id, granted);
    return this.trk.tallyVotes().result;
  }

  // ---- step ------------------------------------------------------------------------------

  step(m: Message): void {
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER);
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        // Leader lease: we heard from a leader within the election timeout, so ignore the
        // vote without updating our term (§6 "disruptive servers").
        if (!force && inLease) return;
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change our term in response to a PreVote.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // The future term of our own pre-vote: we move there only on winning the real vote.
      } else if (m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)) {
        // A stale leader (perhaps partitioned away while we moved on): tell it our term so it
        // steps down, since with check-quorum/pre-vote our votes will not reach it.
        this.send(msg({ type: MessageType.MsgAppResp, to: m.from }));
      } else if (m.type === MessageType.MsgPreVote) {
        this.send(msg({ type: MessageType.MsgPreVoteResp, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(this.preVote ? CampaignType.PreElection : CampaignType.Election);
        break;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote: {
        const canVote =
          // a repeat of a vote we already cast,
          this.vote === m.from ||
          // or we have not voted and know no leader in this term,
          (this.vote === NONE && this.lead === NONE) ||
          // or a pre-vote for a future term,
          (m.type === MessageType.MsgPreVote && m.term > this.term);
        // and the candidate's log is at least as up to date as ours (§5.4.1).
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          this.send(msg({ type: voteRespMsgType(m.type), to: m.from, term: m.term }));
          if (m.type === MessageType.MsgVote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send(msg({ type: voteRespMsgType(m.type), to: m.from, term: this.term, reject: true }));
        }
        break;
      }
      default:
        this.stepFn(m);
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.MsgBeat:
        this.bcastHeartbeat();
        return;
      case MessageType.MsgCheckQuorum: {
        const self = this.trk.progress.get(this.id);
        if (self) self.recentActive = true;
        if (!this.trk.quorumActive()) this.becomeFollower(this.term, NONE);
        this.trk.visit((id, pr) => {
          if (id !== this.id) pr.recentActive = false;
        });
        return;
      }
      case MessageType.MsgProp: {
        if (m.entries.length === 0) throw new Error(`raft: ${this.id} stepped empty MsgProp`);
        if (!this.trk.progress.has(this.id)) throw new ProposalDroppedError('this leader was removed from the configuration');
        if (this.leadTransferee !== NONE) throw new ProposalDroppedError(`leadership is being transferred to ${this.leadTransferee}`);
        m.entries.forEach((e, i) => {
          if (e.type !== EntryType.ConfChange) return;
          const cc = decodeConfChange(e.data);
          const alreadyPending = this.pendingConfIndex > this.raftLog.applied;
          const alreadyJoint = this.trk.isJoint();
          const wantsLeaveJoint = cc.changes.length === 0;
          let refused = '';
          if (alreadyPending) refused = `possible unapplied conf change at index ${this.pendingConfIndex} (applied to ${this.raftLog.applied})`;
          else if (alreadyJoint && !wantsLeaveJoint) refused = 'must transition out of joint config first';
          else if (!alreadyJoint && wantsLeaveJoint) refused = 'not in joint state; refusing empty conf change';
          if (refused !== '') {
            // Keep the slot (the proposer may be counting entries) but make it a no-op.
            m.entries[i] = entry({ type: EntryType.Normal });
          } else {
            this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
          }
        });
        if (!this.appendEntry(m.entries)) throw new ProposalDroppedError('too many uncommitted entries');
        this.bcastAppend();
        return;
      }
      case MessageType.MsgReadIndex:
        if (this.trk.isSingleton()) {
          this.respondToReadIndex(m, this.raftLog.committed);
          return;
        }
        // Until an entry of this term commits we do not know the real commit index (§6.4).
        if (!this.committedEntryInCurrentTerm()) {
          this.pendingReadIndexMessages.push(m);
          return;
        }
        this.sendReadIndexResponse(m);
        return;
    }

    const pr = this.trk.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.MsgAppResp: {
        pr.recentActive = true;
        if (m.reject) {
          let nextProbeIdx = m.rejectHint;
          if (m.logTerm > 0) nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm);
          if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
            if (pr.state === ProgressState.Replicate) pr.becomeProbe();
            this.sendAppend(m.from);
          }
        } else {
          const oldPaused = pr.isPaused();
          if (pr.maybeUpdate(m.index)) {
            if (pr.state === ProgressState.Probe) {
              pr.becomeReplicate();
            } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
              pr.becomeProbe();
              pr.becomeReplicate();
            } else if (pr.state === ProgressState.Replicate) {
              pr.inflights.freeLE(m.index);
            }
            if (this.maybeCommit()) {
              this.releasePendingReadIndexMessages();
              this.bcastAppend();
            } else if (oldPaused) {
              // It may be missing the latest commit index.
              this.sendAppend(m.from);
            }
            // Flow control may allow several appends now: send them (no empty ones).
            while (this.maybeSendAppend(m.from, false)) {
              // keep sending
            }
            if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(m.from);
          }
        }
        return;
      }
      case MessageType.MsgHeartbeatResp: {
        pr.recentActive = true;
        pr.probeSent = false;
        // Free one slot so a full window cannot stall forever after lost acks.
        if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
        if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
        if (m.context.length === 0) return;
        const acks = this.readOnly.recvAck(m.from, m.context);
        if (!acks || this.trk.voteResult(acks) !== VoteResult.Won) return;
        for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
        return;
      }
      case MessageType.MsgSnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0; // probe from match, not from the lost snapshot
        pr.becomeProbe();
        // Wait for the follower's answer (or a heartbeat) before the next append.
        pr.probeSent = true;
        return;
      case MessageType.MsgUnreachable:
        // An optimistic append was probably lost.
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      case MessageType.MsgTransferLeader: {
        if (pr.isLearner) return;
        const transferee = m.from;
        if (this.leadTransferee !== NONE) {
          if (this.leadTransferee === transferee) return;
          this.abortLeaderTransfer();
        }
        if (transferee === this.id) return;
        // The transfer should finish within an election timeout.
        this.electionElapsed = 0;
        this.leadTransferee = transferee;
        if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
        else this.sendAppend(transferee);
        return;
      }
    }
  }

  private stepCandidate(m: Message): void {
    const myVoteResp = this.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
    switch (m.type) {
      case MessageType.MsgProp:
        throw new ProposalDroppedError('no leader (campaigning)');
      case MessageType.MsgApp:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myVoteResp: {
        const res = this.poll(m.from, !m.reject);
        if (res === VoteResult.Won) {
          if (this.state === StateType.PreCandidate) {
            this.campaign(CampaignType.Election);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (res === VoteResult.Lost) {
          // A rejected pre-vote carries the rejecter's term; stay in ours.
          this.becomeFollower(this.term, NONE);
        }
        return;
      }
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.MsgProp:
        if (this.lead === NONE) throw new ProposalDroppedError('no leader known');
        if (this.disableProposalForwarding) throw new ProposalDroppedError('proposal forwarding is disabled');
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTransferLeader:
        if (this.lead === NONE) return;
        this.send({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.MsgTimeoutNow:
        // The leader picked us: campaign now, skipping pre-vote and the others' leases.
        this.hup(CampaignType.Transfer);
        return;
      case MessageType.MsgReadIndex:
        if (this.lead === NONE) return;
        this.send({ ...m, to: this.lead });
        return;
      case MessageType.MsgReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context });
        return;
      case MessageType.MsgUnreachable:
        // The transport lost its connection to our leader (a killed process resets it at once).
        // Give up the leader's lease: grant other candidates' (pre-)votes from now on, and
        // campaign within one more randomized stretch (0 to electionTick ticks) instead of a whole
        // election timeout. Safety does not rest on timing; a false alarm ends with the leader's
        // next heartbeat, which resets the clock, and a lone follower's alarm cannot win a pre-vote
        // while the others still hear from the leader.
        if (m.from === this.lead && this.lead !== NONE) this.electionElapsed = Math.max(this.electionElapsed, this.electionTimeout);
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      this.send(msg({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }));
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== null) {
      this.send(msg({ type: MessageType.MsgAppResp, to: m.from, index: lastNew }));
      return;
    }
    // Hint the largest (index, term) where our logs could still agree, so the leader can skip
    // our whole divergent tail at once.
    let hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    hintIndex = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    const hintTerm = this.raftLog.termOrZero(hintIndex);
    this.send(msg({ type: MessageType.MsgAppResp, to: m.from, index: m.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm }));
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    this.send(msg({ type: MessageType.MsgHeartbeatResp, to: m.from, context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    if (s && this.restore(s)) {
      this.send(msg({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.lastIndex() }));
    } else {
      this.send(msg({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }));
    }
  }

  /** Install a snapshot from the leader; false if it is stale or redundant. */
  private restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defence in depth: never let a leader or candidate install a snapshot.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = s.metadata.confState;
    const member = [...cs.voters, ...cs.learners, ...cs.votersOutgoing].includes(this.id);
    // A snapshot from before we were added: we cannot serve from it.
    if (!member) return false;
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      // We already have the entries: just learn that they are committed.
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    // Committed entries handed out for applying but not yet applied (a Ready in flight) may hold
    // a ConfChange the application will pass to applyConfChange: restoring the snapshot's
    // configuration first would have that change applied on top of the wrong one. Refuse; the
    // leader sends the snapshot again once this node has caught up with its applying.
    if (this.raftLog.applied < this.raftLog.committed) return false;
    this.raftLog.restore(s);
    this.trk = new ProgressTracker(this.trk.maxInflight);
    this.switchToConfig(restoreConfState(cs, this.trk.maxInflight, this.raftLog.lastIndex()));
    const pr = this.trk.progress.get(this.id);
    pr?.maybeUpdate(pr.next - 1);
    return true;
  }

  // ---- membership ------------------------------------------------------------------------

  applyConfChange(cc: ConfChangeV2): ConfState {
    const changer = new Changer(this.trk, this.raftLog.lastIndex());
    let res: ChangeResult;
    if (isLeaveJoint(cc)) {
      res = changer.leaveJoint();
    } else {
      const { joint, autoLeave } = enterJoint(cc);
      res = joint ? changer.enterJoint(autoLeave, cc.changes) : changer.simple(cc.changes);
    }
    return this.switchToConfig(res);
  }

  private switchToConfig(res: ChangeResult): ConfState {
    this.trk.config = res.config;
    this.trk.progress = res.progress;
    const cs = this.trk.confState();
    const pr = this.trk.progress.get(this.id);
    this.isLearner = pr !== undefined && pr.isLearner;
    if ((pr === undefined || this.isLearner) && this.state === StateType.Leader) {
      // Removed or demoted while leading: step down so the remaining voters elect a leader.
      this.becomeFollower(this.term, NONE);
      return cs;
    }
    if (this.state !== StateType.Leader || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      // The new configuration may commit more: tell everyone.
      this.bcastAppend();
    } else {
      // Probe newly added peers without waiting for a heartbeat.
      this.trk.visit((id) => {
        if (id !== this.id) this.maybeSendAppend(id, false);
      });
    }
    if (this.leadTransferee !== NONE && !this.trk.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  // ---- reads -----------------------------------------------------------------------------

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.termOrZero(this.raftLog.committed) === this.term;
  }

  private releasePendingReadIndexMessages(): void {
    if (!this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.sendReadIndexResponse(m);
  }

  private sendReadIndexResponse(m: Message): void {
    // Confirm leadership with a heartbeat round carrying the request context (§6.4).
    this.readOnly.addRequest(this.raftLog.committed, m);
    this.readOnly.recvAck(this.id, m.context);
    this.bcastHeartbeatWithCtx(m.context);
  }

  private respondToReadIndex(req: Message, readIndex: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index: readIndex, requestCtx: req.context });
      return;
    }
    this.send(msg({ type: MessageType.MsgReadIndexResp, to: req.from, index: readIndex, context: req.context }));
  }

  // ---- uncommitted quota -----------------------------------------------------------------

  private increaseUncommittedSize(ents: Entry[]): boolean {
    let s = 0;
    for (const e of ents) s += payloadSize(e);
    if (this.maxUncommittedSize > 0 && this.uncommittedSize > 0 && s > 0 && this.uncommittedSize + s > this.maxUncommittedSize) {
      return false;
    }
    this.uncommittedSize += s;
    return true;
  }

  private reduceUncommittedSize(ents: Entry[]): void {
    if (this.uncommittedSize === 0) return;
    let s = 0;
    for (const e of ents) s += payloadSize(e);
    this.uncommittedSize = Math.max(0, this.uncommittedSize - s);
  }
}
