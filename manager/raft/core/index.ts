// The Raft consensus core (modelled on go.etcd.io/raft): pure and deterministic: no I/O, no
// clock, no Math.random. See rawnode.ts for the driving loop a node runner implements.
//
// Wiring notes for the node runner (storage + transport):
// - Storage: back MemoryStorage (or your own Storage) with the WAL. For each Ready, persist the
//   snapshot (then MemoryStorage.applySnapshot), entries (append) and hardState (setHardState),
//   fsync when mustSync, and only then send rd.messages — unless rd.sendBeforePersist (a leader
//   replicating while it writes), when they go out first.
// - Apply rd.committedEntries in order. EntryType.ConfChange entries: decodeConfChange(e.data),
//   then rawNode.applyConfChange(cc) -> the ConfState to store with future snapshots.
// - Snapshots: createSnapshot(applied, confState, data) + compact(i). If a MsgSnap in a Ready
//   carries a snapshot whose ConfState lacks the recipient (it joined after), replace it with a
//   fresh snapshot at the applied index, or the new member refuses it and never catches up.
// - Transport: step() every received message (catch StepPeerNotFoundError for responses from
//   removed peers); call reportUnreachable(id) when a send fails or a connection to id breaks (a
//   leader probes that follower again; a follower whose leader it is gives up the leader's lease
//   and campaigns sooner), reportSnapshot(id, ok) when a MsgSnap send finishes.
// - Reads: readIndex(uniqueCtx); serve the read once applied >= readState.index.
// - Restart: new RawNode({ id, applied: <index of the state machine snapshot> , random }, storage).
export { RawNode, type Ready, type Status, type ProgressStatus } from './rawnode.js';
export { Raft, StateType, CAMPAIGN_TRANSFER, type RaftConfig, type SoftState } from './raft.js';
export { MemoryStorage, limitSize, cloneConfState, type Storage, type InitialState } from './storage.js';
export {
  ConfChangeType,
  ConfChangeTransition,
  ConfChangeError,
  confChange,
  leaveJointChange,
  isLeaveJoint,
  encodeConfChange,
  decodeConfChange,
  type ConfChangeV2,
  type ConfChangeSingle,
} from './confchange.js';
export { ProgressState } from './tracker.js';
export * from './errors.js';
export { SeededRandom, emptyConfState, type RandomSource } from './util.js';
