// The write-ahead log: every vote, term, commit index and log entry reaches disk here before Raft
// acts on it.
//
// Layout. `dir` holds segment files named `<seq>-<firstIndex>.wal` (both 16 hex digits; seq counts
// up from 1 without gaps, firstIndex is the index the segment expected next when it was started).
// The active segment is rolled once it passes `segmentBytes` (64 MiB by default). Every segment
// starts with a header of three records, META, SNAPSHOT (the newest snapshot marker) and
// HARD_STATE, so deleting older segments never loses the state needed to replay the rest.
//
// Record framing (little-endian):
//
//   length:u32  type:u8  crc:u32  payload[length]
//
// where crc is CRC-32C over the type byte and the payload. Types and payloads (see binary.ts):
//
//   1 META        version:u8(1) seq:u64 metadata:blob   (caller's metadata, e.g. node and cluster id)
//   2 ENTRIES     count:u32 Entry*count                 (consecutive indexes)
//   3 HARD_STATE  HardState
//   4 SNAPSHOT    index:u64 term:u64                     (a snapshot file with this index is durable)
//
// Replay. Entries records are applied in order; an entry at an index already present truncates
// the log there first (a new leader overwrote a conflicting suffix). Entries at or below the
// newest snapshot are skipped; a gap above it is corruption. The last HARD_STATE wins.
//
// Damage. A crash can only tear the write that was in flight, which is the tail of the last
// segment and was never acknowledged. So: damage in the last segment after which no valid record
// can be found (scanning byte by byte) is a torn tail, truncated away with start-up going on;
// damage anywhere else, or followed by a valid record, is corruption and raises
// StorageCorruptionError naming the file and byte offset.
//
// Group commit. save() encodes its records at once and queues them. One flush at a time writes
// everything queued (one write of one concatenated buffer) and fdatasyncs; calls that arrive during
// that flush go together into the next one. Each call's promise resolves once its records are
// durable, and its onDurable callback runs just before, in call order.
import { join } from 'node:path';
import type { Entry, HardState } from '../types.js';
import { DecodeError, ENTRY_OVERHEAD, HARD_STATE_SIZE, Reader, Writer } from './binary.js';
import { crc32c } from './crc32c.js';
import { StorageCorruptionError, StorageFailedError } from './errors.js';
import { nodeFs, syncDir, writeAll, type FileHandleLike, type StorageFs } from './fs.js';

export const RECORD_HEADER = 9;
enum RecordType {
  Meta = 1,
  Entries = 2,
  HardState = 3,
  Snapshot = 4,
}
/** Every segment starts with these records. */
const HEADER_ORDER: readonly RecordType[] = [RecordType.Meta, RecordType.Snapshot, RecordType.HardState];
const WAL_VERSION = 1;
const SEGMENT_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.wal$/;

export interface SnapshotMarker {
  index: number;
  term: number;
}

export interface WalOptions {
  /** Roll to a new segment once the active one has at least this many bytes. */
  segmentBytes?: number;
  /** Written into every segment header of a new WAL; read back on open. */
  metadata?: Uint8Array;
  fs?: StorageFs;
}

/** What replay recovered. */
export interface WalState {
  metadata: Uint8Array;
  hardState: HardState;
  /** The newest snapshot marker ({0,0} if none): entries below are not returned. */
  snapshot: SnapshotMarker;
  /** The log after `snapshot.index`, consecutive. */
  entries: Entry[];
  /** Set when a torn tail was cut off: which file, and at what offset. */
  truncatedTail?: { file: string; offset: number; bytes: number };
}

export interface WalStats {
  /** fdatasync/fsync calls on segment files (directory syncs not counted). */
  syncs: number;
  /** Flushes: one write call (one buffer) each. */
  batches: number;
  /** save()/saveSnapshotMarker() calls made durable. */
  saves: number;
  segmentsCreated: number;
  segmentsDeleted: number;
}

interface Segment {
  seq: number;
  firstIndex: number;
  path: string;
  /** Highest entry index written into this segment (firstIndex - 1 if none). */
  maxIndex: number;
}

interface Pending {
  buf: Buffer;
  hardState: HardState | null;
  lastIndex: number | null;
  marker: SnapshotMarker | null;
  onDurable: (() => void) | undefined;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const hex16 = (n: number) => n.toString(16).padStart(16, '0');
export const segmentName = (seq: number, firstIndex: number) => `${hex16(seq)}-${hex16(firstIndex)}.wal`;

// ---- encoding ----

function frame(type: RecordType, payloadLen: number, fill: (w: Writer) => void): Buffer {
  const w = new Writer(RECORD_HEADER + payloadLen);
  w.u32(payloadLen);
  w.u8(type);
  w.pos += 4; // crc, filled below
  fill(w);
  if (w.pos !== w.buf.length) throw new Error(`wal: ${RecordType[type]} record encoded ${w.pos - RECORD_HEADER} bytes, expected ${payloadLen}`);
  const crc = crc32c(w.buf, RECORD_HEADER, w.buf.length, crc32c(w.buf, 4, 5));
  w.buf.writeUInt32LE(crc, 5);
  return w.buf;
}

export function encodeEntriesRecord(entries: readonly Entry[]): Buffer {
  let size = 4;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (i > 0 && e.index !== entries[i - 1]!.index + 1) {
      throw new RangeError(`wal: entries must have consecutive indexes, got ${entries[i - 1]!.index} then ${e.index}`);
    }
    size += ENTRY_OVERHEAD + e.data.length;
  }
  return frame(RecordType.Entries, size, (w) => {
    w.u32(entries.length);
    for (const e of entries) w.entry(e);
  });
}

function encodeHardState(hs: HardState): Buffer {
  return frame(RecordType.HardState, HARD_STATE_SIZE, (w) => w.hardState(hs));
}

function encodeMarker(m: SnapshotMarker): Buffer {
  return frame(RecordType.Snapshot, 16, (w) => {
    w.u64(m.index);
    w.u64(m.term);
  });
}

function encodeMeta(seq: number, metadata: Uint8Array): Buffer {
  return frame(RecordType.Meta, 1 + 8 + 4 + metadata.length, (w) => {
    w.u8(WAL_VERSION);
    w.u64(seq);
    w.blob(metadata);
  });
}

// ---- decoding ----

type Parsed = { ok: true; type: RecordType; start: number; end: number } | { ok: false; reason: string };

/** Checks the frame at `off`: header complete, known type, payload within `end`, CRC right. */
function parseFrame(buf: Buffer, off: number, end: number): Parsed {
  if (end - off < RECORD_HEADER) return { ok: false, reason: `record header cut short (${end - off} of ${RECORD_HEADER} bytes)` };
  const len = buf.readUInt32LE(off);
  const type = buf[off + 4]!;
  if (type < RecordType.Meta || type > RecordType.Snapshot) return { ok: false, reason: `unknown record type ${type}` };
  const start = off + RECORD_HEADER;
  if (len > end - start) return { ok: false, reason: `record of ${len} bytes runs past the end of the file (${end - start} left)` };
  const want = buf.readUInt32LE(off + 5);
  const got = crc32c(buf, start, start + len, crc32c(buf, off + 4, off + 5));
  if (want !== got) return { ok: false, reason: `CRC mismatch (stored ${want.toString(16)}, computed ${got.toString(16)})` };
  return { ok: true, type: type as RecordType, start, end: start + len };
}

/** Whether any valid record starts anywhere in buf[from, end): if so, damage before it is not a torn tail. */
function validRecordAfter(buf: Buffer, from: number, end: number): boolean {
  for (let y = from; y + RECORD_HEADER <= end; y++) {
    const type = buf[y + 4]!;
    if (type < RecordType.Meta || type > RecordType.Snapshot) continue;
    if (buf.readUInt32LE(y) > end - y - RECORD_HEADER) continue;
    if (parseFrame(buf, y, end).ok) return true;
  }
  return false;
}

type Op =
  | { kind: 'entries'; entries: Entry[]; file: string; offset: number }
  | { kind: 'hardState'; hardState: HardState }
  | { kind: 'snapshot'; marker: SnapshotMarker };

// ---- the log ----

export class Wal {
  readonly stats: WalStats = { syncs: 0, batches: 0, saves: 0, segmentsCreated: 0, segmentsDeleted: 0 };
  private readonly fs: StorageFs;
  private readonly segmentBytes: number;
  private queue: Pending[] = [];
  private flushing = false;
  private failed: unknown = null;
  private closed = false;
  private idle: Promise<void> = Promise.resolve();
  private markIdle: () => void = () => {};

  private constructor(
    readonly dir: string,
    private readonly metadata: Uint8Array,
    private readonly segments: Segment[],
    private active: FileHandleLike,
    private activeSize: number,
    /** Durable state, used for headers of new segments. */
    private hardState: HardState,
    private marker: SnapshotMarker,
    private lastIndex: number,
    opts: WalOptions,
  ) {
    this.fs = opts.fs ?? nodeFs;
    this.segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
  }

  /** Opens the WAL in `dir`, creating it if absent, and replays it. */
  static async open(dir: string, opts: WalOptions = {}): Promise<{ wal: Wal; state: WalState }> {
    const fs = opts.fs ?? nodeFs;
    await fs.mkdir(dir);
    const names = (await fs.readdir(dir)).filter((n) => SEGMENT_RE.test(n)).sort();
    const found: Segment[] = names.map((name) => {
      const m = SEGMENT_RE.exec(name)!;
      const firstIndex = parseInt(m[2]!, 16);
      return { seq: parseInt(m[1]!, 16), firstIndex, path: join(dir, name), maxIndex: firstIndex - 1 };
    });
    for (let i = 1; i < found.length; i++) {
      if (found[i]!.seq !== found[i - 1]!.seq + 1) {
        throw new StorageCorruptionError(found[i]!.path, 0, `segment sequence jumps from ${found[i - 1]!.seq} to ${found[i]!.seq}: a segment is missing`);
      }
    }

    const ops: Op[] = [];
    let metadata: Uint8Array | null = null;
    let truncatedTail: WalState['truncatedTail'];
    let activeSize = 0;
    for (let i = 0; i < found.length; i++) {
      const seg = found[i]!;
      const isLast = i === found.length - 1;
      const buf = await fs.readFile(seg.path);
      let off = 0;
      let records = 0;
      while (off < buf.length) {
        const p = parseFrame(buf, off, buf.length);
        if (!p.ok) {
          if (isLast && !validRecordAfter(buf, off + 1, buf.length)) {
            truncatedTail = { file: seg.path, offset: off, bytes: buf.length - off };
            break;
          }
          throw new StorageCorruptionError(seg.path, off, p.reason);
        }
        try {
          const r = new Reader(buf, p.start, p.end);
          const expected = HEADER_ORDER[records];
          if (expected !== undefined && p.type !== expected) {
            throw new DecodeError(`segment header record ${records} is ${RecordType[p.type]}, expected ${RecordType[expected]}`, off);
          }
          switch (p.type) {
            case RecordType.Meta: {
              const version = r.u8();
              if (version !== WAL_VERSION) throw new DecodeError(`unsupported WAL version ${version} (this build reads ${WAL_VERSION})`, off);
              const seq = r.u64();
              if (seq !== seg.seq) throw new DecodeError(`META says segment ${seq} but the file name says ${seg.seq}`, off);
              const md = r.blob();
              metadata ??= md;
              break;
            }
            case RecordType.Entries: {
              const n = r.u32();
              const entries = new Array<Entry>(n);
              for (let k = 0; k < n; k++) entries[k] = r.entry();
              if (n > 0) seg.maxIndex = Math.max(seg.maxIndex, entries[n - 1]!.index);
              ops.push({ kind: 'entries', entries, file: seg.path, offset: off });
              break;
            }
            case RecordType.HardState:
              ops.push({ kind: 'hardState', hardState: r.hardState() });
              break;
            case RecordType.Snapshot:
              ops.push({ kind: 'snapshot', marker: { index: r.u64(), term: r.u64() } });
              break;
          }
          if (r.remaining() !== 0) throw new DecodeError(`${r.remaining()} unexpected bytes at the end of the record`, r.pos);
        } catch (err) {
          if (err instanceof DecodeError) throw new StorageCorruptionError(seg.path, off, `bad ${RecordType[p.type]} record: ${err.message}`);
          throw err;
        }
        off = p.end;
        records++;
      }
      if (records < HEADER_ORDER.length) {
        // A segment's header goes out in the same write as its first batch, so a last segment
        // with an incomplete header holds nothing that was acknowledged: it is dropped whole.
        if (!isLast) throw new StorageCorruptionError(seg.path, off, `segment header incomplete (${records} of ${HEADER_ORDER.length} records)`);
        truncatedTail = { file: seg.path, offset: 0, bytes: buf.length };
      }
      if (isLast) activeSize = off;
    }

    // A last segment left without a complete header was being created when the crash came.
    let created = false;
    const last = found[found.length - 1];
    if (last && truncatedTail?.file === last.path && truncatedTail.offset === 0) {
      if (found.length === 1 && last.seq === 1) {
        await fs.unlink(last.path);
        found.pop();
      } else if (found.length > 1) {
        await fs.unlink(last.path);
        found.pop();
        activeSize = (await fs.readFile(found[found.length - 1]!.path)).length;
      } else {
        throw new StorageCorruptionError(last.path, 0, 'the only segment has no complete header');
      }
      await syncDir(fs, dir);
    }

    let active: FileHandleLike;
    if (found.length === 0) {
      metadata = opts.metadata ?? new Uint8Array(0);
      const path = join(dir, segmentName(1, 1));
      const header = Buffer.concat([encodeMeta(1, metadata), encodeMarker({ index: 0, term: 0 }), encodeHardState({ term: 0, vote: 0, commit: 0 })]);
      active = await fs.open(path, 'wx');
      await writeAll(active, header, 0);
      await active.sync();
      await syncDir(fs, dir);
      found.push({ seq: 1, firstIndex: 1, path, maxIndex: 0 });
      activeSize = header.length;
      created = true;
    } else {
      active = await fs.open(found[found.length - 1]!.path, 'r+');
      if (truncatedTail && truncatedTail.offset > 0) {
        await active.truncate(activeSize);
        await active.sync();
      }
    }

    const state = created
      ? { metadata: metadata!, hardState: { term: 0, vote: 0, commit: 0 }, snapshot: { index: 0, term: 0 }, entries: [] }
      : replay(ops, metadata ?? new Uint8Array(0));
    if (truncatedTail) (state as WalState).truncatedTail = truncatedTail;
    const lastIndex = state.entries.length ? state.entries[state.entries.length - 1]!.index : state.snapshot.index;
    const wal = new Wal(dir, state.metadata, found, active, activeSize, state.hardState, state.snapshot, lastIndex, opts);
    return { wal, state };
  }

  /** Appends a hard state and/or entries; resolves once durable. Entries must be consecutive. */
  save(hardState: HardState | null, entries: readonly Entry[], onDurable?: () => void): Promise<void> {
    const parts: Buffer[] = [];
    if (entries.length) parts.push(encodeEntriesRecord(entries));
    if (hardState) parts.push(encodeHardState(hardState));
    const lastIndex = entries.length ? entries[entries.length - 1]!.index : null;
    return this.enqueue(parts.length === 1 ? parts[0]! : Buffer.concat(parts), hardState, lastIndex, null, onDurable);
  }

  /** Records that a snapshot at (index, term) is durable on disk; resolves once the record is. */
  saveSnapshotMarker(marker: SnapshotMarker, onDurable?: () => void): Promise<void> {
    return this.enqueue(encodeMarker(marker), null, null, { ...marker }, onDurable);
  }

  /**
   * Deletes whole segments whose entries are all at or below min(index, newest snapshot), never
   * the active one. Returns the number deleted.
   */
  async releaseTo(index: number): Promise<number> {
    const limit = Math.min(index, this.marker.index);
    const doomed: Segment[] = [];
    while (this.segments.length > 1 && this.segments[0]!.maxIndex <= limit) doomed.push(this.segments.shift()!);
    // Oldest first, so a crash half way leaves a gapless sequence.
    for (const seg of doomed) {
      await this.fs.unlink(seg.path);
      this.stats.segmentsDeleted++;
    }
    if (doomed.length) await syncDir(this.fs, this.dir);
    return doomed.length;
  }

  /** The segment files, oldest first (for tests and diagnostics). */
  segmentPaths(): string[] {
    return this.segments.map((s) => s.path);
  }

  getMetadata(): Uint8Array {
    return this.metadata;
  }

  /** Waits for queued writes, then closes the active segment. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.idle;
    await this.active.close();
  }

  private enqueue(buf: Buffer, hardState: HardState | null, lastIndex: number | null, marker: SnapshotMarker | null, onDurable: (() => void) | undefined): Promise<void> {
    if (this.failed) return Promise.reject(new StorageFailedError(this.failed));
    if (this.closed) return Promise.reject(new Error('wal: closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ buf, hardState, lastIndex, marker, onDurable, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        this.idle = new Promise<void>((r) => (this.markIdle = r));
        // Start on a microtask, so calls made in the same tick already share the first fsync.
        queueMicrotask(() => void this.flushLoop());
      }
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.writeBatch(batch);
      } catch (err) {
        this.failed = err;
        for (const p of [...batch, ...this.queue]) p.reject(new StorageFailedError(err));
        this.queue = [];
        break;
      }
      this.stats.batches++;
      this.stats.saves += batch.length;
      for (const p of batch) {
        if (p.hardState) this.hardState = p.hardState;
        if (p.lastIndex !== null) this.lastIndex = p.lastIndex;
        if (p.marker && p.marker.index >= this.marker.index) {
          this.marker = p.marker;
          if (p.marker.index > this.lastIndex) this.lastIndex = p.marker.index;
        }
        try {
          p.onDurable?.();
        } catch (err) {
          p.reject(err);
          continue;
        }
        p.resolve();
      }
    }
    this.flushing = false;
    this.markIdle();
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    let bufs = batch.map((p) => p.buf);
    let maxIndex = -1;
    for (const p of batch) if (p.lastIndex !== null) maxIndex = Math.max(maxIndex, p.lastIndex);

    if (this.activeSize >= this.segmentBytes) {
      // Roll: the new segment gets a header carrying the durable state, then this batch.
      const seq = this.segments[this.segments.length - 1]!.seq + 1;
      const firstIndex = this.lastIndex + 1;
      const path = join(this.dir, segmentName(seq, firstIndex));
      const header = [encodeMeta(seq, this.metadata), encodeMarker(this.marker), encodeHardState(this.hardState)];
      bufs = [...header, ...bufs];
      const buf = Buffer.concat(bufs);
      const fh = await this.fs.open(path, 'wx');
      try {
        await writeAll(fh, buf, 0);
        await fh.sync();
        this.stats.syncs++;
        await syncDir(this.fs, this.dir);
      } catch (err) {
        await fh.close().catch(() => {});
        throw err;
      }
      const old = this.active;
      this.active = fh;
      this.activeSize = buf.length;
      this.segments.push({ seq, firstIndex, path, maxIndex: Math.max(firstIndex - 1, maxIndex) });
      this.stats.segmentsCreated++;
      await old.close();
      return;
    }

    const buf = bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs);
    await writeAll(this.active, buf, this.activeSize);
    await this.active.datasync();
    this.stats.syncs++;
    this.activeSize += buf.length;
    const seg = this.segments[this.segments.length - 1]!;
    if (maxIndex > seg.maxIndex) seg.maxIndex = maxIndex;
  }
}

/** Applies replayed records: the newest snapshot marker, the last hard state, the surviving log. */
function replay(ops: Op[], metadata: Uint8Array): WalState {
  let hardState: HardState = { term: 0, vote: 0, commit: 0 };
  let snapshot: SnapshotMarker = { index: 0, term: 0 };
  for (const op of ops) {
    if (op.kind === 'snapshot' && op.marker.index >= snapshot.index) snapshot = op.marker;
    else if (op.kind === 'hardState') hardState = op.hardState;
  }
  const entries: Entry[] = [];
  let last = snapshot.index;
  for (const op of ops) {
    if (op.kind !== 'entries') continue;
    for (const e of op.entries) {
      if (e.index <= snapshot.index) continue;
      if (e.index <= last) {
        entries.length = e.index - snapshot.index - 1; // overwrite: drop the conflicting suffix
      } else if (e.index !== last + 1) {
        throw new StorageCorruptionError(op.file, op.offset, `entry ${e.index} does not follow the log's last index ${last}: entries are missing`);
      }
      entries.push(e);
      last = e.index;
    }
  }
  return { metadata, hardState, snapshot, entries };
}
