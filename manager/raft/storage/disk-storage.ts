// DiskStorage: the core's Storage (reads served from memory, etcd's MemoryStorage shape) that is
// also the durable home of the log: a WAL (wal.ts) plus snapshot files (snapshotter.ts) under one
// directory:
//
//   <dir>/wal/<seq>-<firstIndex>.wal
//   <dir>/snap/<term>-<index>.snap
//
// Memory only ever shows what is durable: save() and saveSnapshot() update it just before their
// promise resolves. The node runner's loop per Ready is therefore:
//
//   if (rd.snapshot) await storage.saveSnapshot(rd.snapshot);   // before the entries after it
//   await storage.save(rd.hardState, rd.entries);                 // group-committed
//   send messages; apply committed entries; node.advance();
//
// and, when the application has snapshotted its state at applied index i:
//
//   await storage.createSnapshot(i, confState, data);  await storage.releaseTo(i);
//
// Calls may overlap; they reach the WAL in call order (a save made while a snapshot file is still
// being written waits behind it), and overlapping saves share one fsync.
import { join } from 'node:path';
import { CompactedError, SnapshotOutOfDateError, UnavailableError } from '../core/errors.js';
import { limitSize, type InitialState, type Storage } from '../core/storage.js';
import type { ConfState, Entry, HardState, Snapshot } from '../types.js';
import { emptyConfState } from './binary.js';
import { StorageCorruptionError } from './errors.js';
import type { StorageFs } from './fs.js';
import { Snapshotter } from './snapshotter.js';
import { Wal, type WalStats } from './wal.js';

export interface DiskStorageOptions {
  /** WAL segment size before rolling (default 64 MiB). */
  segmentBytes?: number;
  /** Snapshot files kept (default 3). */
  snapshotsRetained?: number;
  /**
   * Entries kept in memory below a locally created snapshot, so a follower slightly behind can
   * still be sent entries instead of a whole snapshot (default 5000, as etcd).
   */
  catchUpEntries?: number;
  /** Stored in a new WAL (e.g. node and cluster id); an existing WAL's metadata wins. */
  metadata?: Uint8Array;
  fs?: StorageFs;
}

export interface DiskStorageOpenInfo {
  /** A torn tail cut off the last WAL segment on open, if any. */
  truncatedTail?: { file: string; offset: number; bytes: number };
}

export class DiskStorage implements Storage {
  private hardState: HardState;
  private snap: Snapshot;
  /** ents[0] is a dummy holding the index/term just below the first kept entry. */
  private ents: Entry[];
  /** The last index once every queued call is durable: where the next save may start. */
  private pendingLast: number;
  private pendingSnapIndex: number;
  /** Set while a snapshot file is being written: WAL appends queue behind it to keep call order. */
  private gate: Promise<void> | null = null;
  private readonly catchUpEntries: number;

  private constructor(
    private readonly wal: Wal,
    private readonly snapshotter: Snapshotter,
    hardState: HardState,
    snap: Snapshot,
    entries: Entry[],
    readonly openInfo: DiskStorageOpenInfo,
    opts: DiskStorageOptions,
  ) {
    this.hardState = hardState;
    this.snap = snap;
    this.ents = [dummy(snap.metadata.index, snap.metadata.term), ...entries];
    this.pendingLast = this.lastIndex();
    this.pendingSnapIndex = snap.metadata.index;
    this.catchUpEntries = opts.catchUpEntries ?? 5000;
  }

  /**
   * Opens (or creates) the storage in `dir` and replays it. Throws StorageCorruptionError if the
   * WAL or the snapshot it points at is damaged beyond a torn tail.
   */
  static async open(dir: string, opts: DiskStorageOptions = {}): Promise<DiskStorage> {
    const snapshotter = new Snapshotter(join(dir, 'snap'), opts.snapshotsRetained ?? 3, opts.fs);
    await snapshotter.init();
    const { wal, state } = await Wal.open(join(dir, 'wal'), { segmentBytes: opts.segmentBytes, metadata: opts.metadata, fs: opts.fs });
    try {
      let snap: Snapshot = { metadata: { index: 0, term: 0, confState: emptyConfState() }, data: new Uint8Array(0) };
      const marker = state.snapshot;
      if (marker.index > 0) {
        const files = await snapshotter.list();
        const file = files.find((f) => f.index === marker.index && f.term === marker.term);
        if (!file) {
          throw new StorageCorruptionError(join(snapshotter.dir, `${marker.term.toString(16).padStart(16, '0')}-${marker.index.toString(16).padStart(16, '0')}.snap`), 0,
            `the WAL records snapshot term ${marker.term} index ${marker.index} but its file is missing`);
        }
        snap = await snapshotter.load(file);
      }
      // Files newer than the WAL's marker were written but never recorded: a crash between the two.
      await snapshotter.removeUnrecorded(marker.index);
      const hardState = { ...state.hardState };
      // A snapshot is committed by definition; a crash can leave the hard state's commit behind it.
      if (hardState.commit < snap.metadata.index) hardState.commit = snap.metadata.index;
      const info: DiskStorageOpenInfo = state.truncatedTail ? { truncatedTail: state.truncatedTail } : {};
      return new DiskStorage(wal, snapshotter, hardState, snap, state.entries, info, opts);
    } catch (err) {
      await wal.close();
      throw err;
    }
  }

  // ---- Storage (reads, from memory) ----

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.confState) };
  }

  entries(lo: number, hi: number, maxSize: number): Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset) throw new CompactedError(lo);
    if (hi > this.lastIndex() + 1) throw new RangeError(`raft storage: entries hi ${hi} is past lastIndex ${this.lastIndex()} + 1`);
    if (this.ents.length === 1) throw new UnavailableError(lo);
    return limitSize(this.ents.slice(lo - offset, hi - offset), maxSize);
  }

  term(i: number): number {
    const offset = this.ents[0]!.index;
    if (i < offset) throw new CompactedError(i);
    if (i - offset >= this.ents.length) throw new UnavailableError(i);
    return this.ents[i - offset]!.term;
  }

  firstIndex(): number {
    return this.ents[0]!.index + 1;
  }

  lastIndex(): number {
    return this.ents[0]!.index + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  // ---- persistence ----

  /** The metadata stored when the WAL was created. */
  metadata(): Uint8Array {
    return this.wal.getMetadata();
  }

  get stats(): Readonly<WalStats> {
    return this.wal.stats;
  }

  /** WAL segment files, oldest first. */
  segmentPaths(): string[] {
    return this.wal.segmentPaths();
  }

  /**
   * Persists a hard state (null: unchanged) and entries (consecutive; an index already present
   * overwrites from there on). Resolves once durable, after which reads show them.
   */
  save(hardState: HardState | null, entries: readonly Entry[]): Promise<void> {
    let ents = entries;
    if (ents.length) {
      // Entries already covered by a snapshot are dropped, as etcd's MemoryStorage.Append does.
      const skip = this.pendingSnapIndex + 1 - ents[0]!.index;
      if (skip > 0) ents = ents.slice(skip);
    }
    if (ents.length) {
      const first = ents[0]!.index;
      if (first > this.pendingLast + 1) {
        return Promise.reject(new RangeError(`raft storage: cannot append entry ${first}: the log ends at ${this.pendingLast}, entries would be missing`));
      }
      this.pendingLast = ents[ents.length - 1]!.index;
    }
    if (!ents.length && !hardState) return Promise.resolve();
    const hs = hardState ? { ...hardState } : null;
    const apply = () => {
      if (hs) this.hardState = hs;
      if (ents.length) this.appendToMemory(ents);
    };
    return this.afterGate(() => this.wal.save(hs, ents, apply));
  }

  /**
   * Persists a snapshot (received from the leader, or made locally): the file, then the WAL marker
   * that makes it the one replay starts from. Memory then drops the entries it covers (all of
   * them if the log does not contain the snapshot's last entry). A snapshot not newer than the
   * current one is ignored.
   */
  saveSnapshot(snapshot: Snapshot): Promise<void> {
    const { index, term } = snapshot.metadata;
    if (index <= this.pendingSnapIndex) return Promise.resolve();
    this.pendingSnapIndex = index;
    if (index > this.pendingLast) this.pendingLast = index;
    const fileWritten = this.snapshotter.save(snapshot);
    fileWritten.catch(() => {}); // observed below; avoid an unhandled rejection meanwhile
    const prev = this.gate ?? Promise.resolve();
    let durable: Promise<void> = Promise.resolve();
    const enqueued = Promise.all([prev, fileWritten]).then(() => {
      durable = this.wal.saveSnapshotMarker({ index, term }, () => this.applySnapshotToMemory(snapshot));
    });
    this.setGate(enqueued);
    return enqueued.then(async () => {
      await durable;
      await this.snapshotter.prune(this.snap.metadata.index);
    });
  }

  /**
   * Snapshots the state machine at applied index `index` (which must be stored and durable) and
   * persists it. Returns the snapshot, which is what a leader will send lagging followers.
   */
  async createSnapshot(index: number, confState: ConfState | null, data: Uint8Array): Promise<Snapshot> {
    if (index <= this.snap.metadata.index) throw new SnapshotOutOfDateError(index, this.snap.metadata.index);
    if (index > this.lastIndex()) throw new RangeError(`raft storage: snapshot index ${index} is past lastIndex ${this.lastIndex()}`);
    const snapshot: Snapshot = {
      metadata: { index, term: this.term(index), confState: cloneConfState(confState ?? this.snap.metadata.confState) },
      data,
    };
    await this.saveSnapshot(snapshot);
    return snapshot;
  }

  /** Deletes WAL segments wholly at or below min(index, newest snapshot). Returns how many. */
  releaseTo(index: number): Promise<number> {
    return this.wal.releaseTo(index);
  }

  async close(): Promise<void> {
    if (this.gate) await this.gate.catch(() => {});
    await this.wal.close();
  }

  // ---- memory ----

  private afterGate(enqueue: () => Promise<void>): Promise<void> {
    if (!this.gate) return enqueue();
    let durable: Promise<void> = Promise.resolve();
    const enqueued = this.gate.then(() => {
      durable = enqueue();
    });
    this.setGate(enqueued);
    return enqueued.then(() => durable);
  }

  private setGate(p: Promise<void>): void {
    this.gate = p;
    const clear = () => {
      if (this.gate === p) this.gate = null;
    };
    p.then(clear, clear);
  }

  private appendToMemory(entries: readonly Entry[]): void {
    const offset = this.ents[0]!.index;
    let ents = entries;
    if (ents[0]!.index <= offset) ents = ents.slice(offset + 1 - ents[0]!.index);
    if (!ents.length) return;
    const at = ents[0]!.index - offset;
    if (at > this.ents.length) throw new RangeError(`raft storage: missing entries between ${this.lastIndex()} and ${ents[0]!.index}`);
    this.ents.length = at; // overwrite the conflicting suffix, if any
    for (const e of ents) this.ents.push(e);
  }

  private applySnapshotToMemory(snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    if (index <= this.snap.metadata.index) return;
    this.snap = snapshot;
    if (this.hardState.commit < index) this.hardState = { ...this.hardState, commit: index };
    const offset = this.ents[0]!.index;
    const matches = index <= this.lastIndex() && index >= offset && this.ents[index - offset]!.term === term;
    if (!matches) {
      // A leader's snapshot beyond (or in conflict with) our log replaces the log.
      this.ents = [dummy(index, term)];
      return;
    }
    const keepFrom = Math.max(offset, index - this.catchUpEntries);
    if (keepFrom > offset) {
      const d = this.ents[keepFrom - offset]!;
      this.ents = [dummy(d.index, d.term), ...this.ents.slice(keepFrom - offset + 1)];
    }
  }
}

function dummy(index: number, term: number): Entry {
  return { index, term, type: 0, data: new Uint8Array(0) };
}

function cloneConfState(cs: ConfState): ConfState {
  return {
    voters: [...cs.voters],
    learners: [...cs.learners],
    votersOutgoing: [...cs.votersOutgoing],
    learnersNext: [...cs.learnersNext],
    autoLeave: cs.autoLeave,
  };
}
