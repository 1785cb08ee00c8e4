// The data the Raft core trades with the outside world, modelled on etcd's raftpb. The core
// (manager/raft/core) consumes Messages and produces Ready batches; storage (manager/raft/storage)
// persists HardState, Entries and Snapshots; the transport (manager/raft/transport) carries Messages.
// Indexes and terms are JS numbers: 2^53 entries outlive any cluster.

export type NodeId = number;

/** No node: the value of `vote` before voting and of `lead` before a leader is known. */
export const NONE: NodeId = 0;

export enum EntryType {
  Normal = 0,
  /** data is an encoded ConfChange (see confchange.ts in the core). */
  ConfChange = 1,
}

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** What must be on disk before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/**
 * Membership. During a joint-consensus change `votersOutgoing` holds the old configuration and a
 * decision needs a majority of both; outside one it is empty.
 */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  votersOutgoing: NodeId[];
  /** Voters of the outgoing config that become learners once the joint config is left. */
  learnersNext: NodeId[];
  autoLeave: boolean;
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  data: Uint8Array;
}

export enum MessageType {
  /** Local: start an election now. */
  MsgHup = 0,
  /** Local: the leader should send heartbeats. */
  MsgBeat = 1,
  /** Local or forwarded: append these entries to the log. */
  MsgProp = 2,
  MsgApp = 3,
  MsgAppResp = 4,
  MsgVote = 5,
  MsgVoteResp = 6,
  MsgSnap = 7,
  MsgHeartbeat = 8,
  MsgHeartbeatResp = 9,
  /** Local: the transport could not deliver to `from`. */
  MsgUnreachable = 10,
  /** Local: the snapshot sent to `from` finished (reject=true: failed). */
  MsgSnapStatus = 11,
  /** Local: a leader is checking that a quorum is still active. */
  MsgCheckQuorum = 12,
  MsgTransferLeader = 13,
  MsgTimeoutNow = 14,
  MsgReadIndex = 15,
  MsgReadIndexResp = 16,
  MsgPreVote = 17,
  MsgPreVoteResp = 18,
}

export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  /** Term of the entry at `index` (MsgApp), or of the candidate's last entry (votes). */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot | null;
  reject: boolean;
  rejectHint: number;
  /** Opaque: the request id of a ReadIndex, or a campaign kind on votes. */
  context: Uint8Array;
}

/** A linearizable read: `requestCtx` may be served once `index` has been applied locally. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}
