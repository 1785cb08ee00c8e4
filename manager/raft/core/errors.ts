// Errors the core and its Storage use to talk about log positions they cannot serve. They are
// values callers branch on (the leader falls back to a snapshot on CompactedError), not failures.

/** The requested index is older than the first entry still kept: it lives only in a snapshot. */
export class CompactedError extends Error {
  constructor(index: number) {
    super(`raft: index ${index} is compacted`);
    this.name = 'CompactedError';
  }
}

/** The requested index is newer than the last entry stored. */
export class UnavailableError extends Error {
  constructor(index: number) {
    super(`raft: index ${index} is unavailable (past the last entry)`);
    this.name = 'UnavailableError';
  }
}

/** A snapshot older than the one already held was offered. */
export class SnapshotOutOfDateError extends Error {
  constructor(index: number, have: number) {
    super(`raft: snapshot at index ${index} is older than the one held at ${have}`);
    this.name = 'SnapshotOutOfDateError';
  }
}

/** The storage cannot produce a snapshot right now; the leader retries later. */
export class SnapshotTemporarilyUnavailableError extends Error {
  constructor() {
    super('raft: snapshot temporarily unavailable');
    this.name = 'SnapshotTemporarilyUnavailableError';
  }
}

/** A proposal was not accepted (no leader known, leadership in transfer, size quota, removed). */
export class ProposalDroppedError extends Error {
  constructor(why: string) {
    super(`raft: proposal dropped: ${why}`);
    this.name = 'ProposalDroppedError';
  }
}

/** A message came from the network that only the local node may generate (MsgHup, MsgBeat...). */
export class StepLocalMsgError extends Error {
  constructor(type: number) {
    super(`raft: cannot step local message type ${type} received from the network`);
    this.name = 'StepLocalMsgError';
  }
}

/** A response came from a peer the tracker does not know (removed, or never added). */
export class StepPeerNotFoundError extends Error {
  constructor(from: number) {
    super(`raft: response from unknown peer ${from}`);
    this.name = 'StepPeerNotFoundError';
  }
}
