// What a leader knows about each peer (Progress: match/next, flow-control state, inflight window)
// and the membership configuration with its quorum rules (majority, and joint = majority of both).
import type { ConfState, NodeId } from '../types.js';

export enum ProgressState {
  /** We do not know where the follower's log ends: send one append at a time and wait. */
  Probe = 0,
  /** The follower is caught up: stream appends optimistically, bounded by the inflight window. */
  Replicate = 1,
  /** The follower needs a snapshot; appends pause until it is reported applied or failed. */
  Snapshot = 2,
}

/** A bounded window of appends sent but not yet acknowledged (by last index of each). */
export class Inflights {
  private buffer: number[] = [];
  constructor(readonly size: number) {}
  add(index: number): void {
    if (this.full()) throw new Error('raft: cannot add into a full inflights window');
    this.buffer.push(index);
  }
  /** Free every inflight append ending at or below `to`. */
  freeLE(to: number): void {
    let i = 0;
    while (i < this.buffer.length && this.buffer[i]! <= to) i++;
    if (i > 0) this.buffer = this.buffer.slice(i);
  }
  freeFirstOne(): void {
    this.buffer.shift();
  }
  full(): boolean {
    return this.buffer.length >= this.size;
  }
  count(): number {
    return this.buffer.length;
  }
  reset(): void {
    this.buffer = [];
  }
}

export class Progress {
  match = 0;
  next: number;
  state = ProgressState.Probe;
  /** In Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round. */
  recentActive: boolean;
  /** In Probe state: an append is outstanding, wait for its answer (or a heartbeat reply). */
  probeSent = false;
  inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, maxInflight: number, isLearner: boolean, recentActive: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflight);
    this.isLearner = isLearner;
    this.recentActive = recentActive;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** An ack for index n arrived; returns false if it was stale. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    this.next = Math.max(this.next, n + 1);
    return updated;
  }

  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * The follower rejected an append at `rejected`; its log may match at or below `matchHint`.
   * Returns false if the rejection is stale (out of order).
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), 1);
    if (this.next <= this.match) this.next = this.match + 1;
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }
}

export enum VoteResult {
  Pending = 0,
  Lost = 1,
  Won = 2,
}

/** The index committed by a majority of `voters` given each one's match; +Inf for no voters. */
export function majorityCommitted(voters: Set<NodeId>, matchOf: (id: NodeId) => number | undefined): number {
  const n = voters.size;
  if (n === 0) return Number.MAX_SAFE_INTEGER;
  const srt: number[] = [];
  for (const id of voters) srt.push(matchOf(id) ?? 0);
  srt.sort((a, b) => a - b);
  // The (n/2+1)-th largest: that many voters have at least this index.
  return srt[n - (Math.floor(n / 2) + 1)]!;
}

export function majorityVoteResult(voters: Set<NodeId>, votes: Map<NodeId, boolean>): VoteResult {
  if (voters.size === 0) return VoteResult.Won;
  let yes = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = Math.floor(voters.size / 2) + 1;
  if (yes >= q) return VoteResult.Won;
  if (yes + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}

export interface TrackerConfig {
  /** Voters of the incoming (current) configuration. */
  incoming: Set<NodeId>;
  /** Voters of the outgoing configuration while joint; empty otherwise. */
  outgoing: Set<NodeId>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  autoLeave: boolean;
}

export function emptyTrackerConfig(): TrackerConfig {
  return { incoming: new Set(), outgoing: new Set(), learners: new Set(), learnersNext: new Set(), autoLeave: false };
}

export function cloneTrackerConfig(c: TrackerConfig): TrackerConfig {
  return {
    incoming: new Set(c.incoming),
    outgoing: new Set(c.outgoing),
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

const sorted = (s: Iterable<NodeId>): NodeId[] => [...s].sort((a, b) => a - b);

export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress = new Map<NodeId, Progress>();
  votes = new Map<NodeId, boolean>();

  constructor(readonly maxInflight: number) {}

  isJoint(): boolean {
    return this.config.outgoing.size > 0;
  }

  confState(): ConfState {
    return {
      voters: sorted(this.config.incoming),
      votersOutgoing: sorted(this.config.outgoing),
      learners: sorted(this.config.learners),
      learnersNext: sorted(this.config.learnersNext),
      autoLeave: this.config.autoLeave,
    };
  }

  /** The highest index replicated on a quorum (of both halves when joint). */
  committed(): number {
    const matchOf = (id: NodeId): number | undefined => this.progress.get(id)?.match;
    return Math.min(majorityCommitted(this.config.incoming, matchOf), majorityCommitted(this.config.outgoing, matchOf));
  }

  voteResult(votes: Map<NodeId, boolean>): VoteResult {
    const a = majorityVoteResult(this.config.incoming, votes);
    const b = majorityVoteResult(this.config.outgoing, votes);
    if (a === b) return a;
    if (a === VoteResult.Lost || b === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }

  isVoter(id: NodeId): boolean {
    return this.config.incoming.has(id) || this.config.outgoing.has(id);
  }

  voterIds(): NodeId[] {
    return sorted(new Set([...this.config.incoming, ...this.config.outgoing]));
  }

  /** A single voter (the caller) and nobody else: decisions need no messages. */
  isSingleton(): boolean {
    return this.config.incoming.size === 1 && this.config.outgoing.size === 0;
  }

  /** Every tracked peer in id order (deterministic iteration). */
  visit(f: (id: NodeId, pr: Progress) => void): void {
    for (const id of sorted(this.progress.keys())) f(id, this.progress.get(id)!);
  }

  /** Has a quorum been active since the last check? (check-quorum) */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    this.visit((id, pr) => {
      if (!pr.isLearner) votes.set(id, pr.recentActive);
    });
    return this.voteResult(votes) === VoteResult.Won;
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  recordVote(id: NodeId, v: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, v);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const id of this.voterIds()) {
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.voteResult(this.votes) };
  }
}
