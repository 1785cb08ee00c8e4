// The read-only view of durable state the core reads from (etcd's raft.Storage), and an in-memory
// implementation. The node runner persists each Ready (WAL + snapshot files) and then appends the
// same entries/snapshot/hard state to a MemoryStorage, so the core always reads what is on disk.
import type { ConfState, Entry, HardState, Snapshot } from '../types.js';
import {
  CompactedError,
  SnapshotOutOfDateError,
  UnavailableError,
} from './errors.js';
import { emptyConfState, entrySize } from './util.js';

export interface InitialState {
  hardState: HardState;
  confState: ConfState;
}

export interface Storage {
  /** The saved HardState and the ConfState of the latest snapshot. */
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at most maxSize bytes (always at least one entry if any exists).
   * Throws CompactedError if lo is at or below the snapshot index, UnavailableError past the end.
   */
  entries(lo: number, hi: number, maxSize: number): Entry[];
  /** Term of entry i, for i in [firstIndex()-1, lastIndex()]; throws CompactedError/UnavailableError. */
  term(i: number): number;
  lastIndex(): number;
  /** Index of the first entry still kept (snapshot index + 1). */
  firstIndex(): number;
  /** The most recent snapshot. May throw SnapshotTemporarilyUnavailableError. */
  snapshot(): Snapshot;
}

/** Keep entries within maxSize bytes, but always at least one. */
export function limitSize(ents: Entry[], maxSize: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySize(ents[0]!);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySize(ents[limit]!);
    if (size > maxSize) break;
  }
  return ents.slice(0, limit);
}

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: 0, commit: 0 };
  private snap: Snapshot = {
    metadata: { index: 0, term: 0, confState: emptyConfState() },
    data: new Uint8Array(0),
  };
  /** ents[0] is a dummy standing for the snapshot's last entry (index/term only). */
  private ents: Entry[] = [{ term: 0, index: 0, type: 0, data: new Uint8Array(0) }];

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.confState) };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  hardStateNow(): HardState {
    return { ...this.hardState };
  }

  private offset(): number {
    return this.ents[0]!.index;
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) {
      throw new RangeError(`raft: entries' hi(${hi}) is out of bound lastindex(${this.lastIndex()})`);
    }
    if (this.ents.length === 1) throw new UnavailableError(lo);
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.offset();
    if (i < offset) throw new CompactedError(i);
    if (i - offset >= this.ents.length) throw new UnavailableError(i);
    return this.ents[i - offset]!.term;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replace everything with the snapshot (a follower installing the leader's snapshot). */
  applySnapshot(snap: Snapshot): void {
    const have = this.snap.metadata.index;
    if (have >= snap.metadata.index) throw new SnapshotOutOfDateError(snap.metadata.index, have);
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: 0, data: new Uint8Array(0) }];
  }

  /**
   * Record a snapshot of the state machine at applied index i (which must be stored), so the log
   * before it can be compacted and lagging followers can be sent it.
   */
  createSnapshot(i: number, cs: ConfState | null, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapshotOutOfDateError(i, this.snap.metadata.index);
    const offset = this.offset();
    if (i > this.lastIndex()) {
      throw new RangeError(`raft: snapshot index ${i} is out of bound lastindex(${this.lastIndex()})`);
    }
    this.snap = {
      metadata: {
        index: i,
        term: this.ents[i - offset]!.term,
        confState: cs ? cloneConfState(cs) : this.snap.metadata.confState,
      },
      data,
    };
    return this.snap;
  }

  /** Discard entries before compactIndex (which becomes the dummy entry). */
  compact(compactIndex: number): void {
    const offset = this.offset();
    if (compactIndex <= offset) throw new CompactedError(compactIndex);
    if (compactIndex > this.lastIndex()) {
      throw new RangeError(`raft: compact ${compactIndex} is out of bound lastindex(${this.lastIndex()})`);
    }
    const i = compactIndex - offset;
    const dummy = this.ents[i]!;
    this.ents = [{ term: dummy.term, index: dummy.index, type: 0, data: new Uint8Array(0) }, ...this.ents.slice(i + 1)];
  }

  /** Append entries, truncating any existing entries they conflict with. */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = entries[0]!.index + entries.length - 1;
    if (last < first) return; // all compacted already
    let ents = entries;
    if (first > ents[0]!.index) ents = ents.slice(first - ents[0]!.index);
    const offset = ents[0]!.index - this.offset();
    if (offset > this.ents.length) {
      throw new RangeError(`raft: missing log entry [last: ${this.lastIndex()}, append at: ${ents[0]!.index}]`);
    }
    this.ents = [...this.ents.slice(0, offset), ...ents];
  }
}

export function cloneConfState(cs: ConfState): ConfState {
  return {
    voters: [...cs.voters],
    learners: [...cs.learners],
    votersOutgoing: [...cs.votersOutgoing],
    learnersNext: [...cs.learnersNext],
    autoLeave: cs.autoLeave,
  };
}
