// The compact binary encoding shared by the WAL (manager/raft/storage/wal.ts), snapshot files and
// the transport's wire format (manager/raft/transport/wire.ts). It is faster than protobuf on the
// hot path because every field has a fixed width and a fixed place: no tags, no varints, no
// object conversion, one exact-size allocation per encode.
//
// All integers are little-endian. A "u64" holds a JS number below 2^53 as two u32 halves (low
// first); decoding refuses values at or above 2^53 rather than losing precision.
//
//   Entry         = term:u64 index:u64 type:u8 dataLen:u32 data[dataLen]            (21 + data)
//   HardState     = term:u64 vote:u64 commit:u64                                      (24)
//   NodeList      = count:u32 id:u64 * count
//   ConfState     = voters:NodeList learners:NodeList votersOutgoing:NodeList
//                   learnersNext:NodeList autoLeave:u8
//   SnapMetadata  = index:u64 term:u64 confState:ConfState
//   Snapshot      = metadata:SnapMetadata dataLen:u32 data[dataLen]
//
// Data lengths are u32: one entry or snapshot is below 4 GiB.
import type { ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata } from '../types.js';

const TWO_32 = 0x1_0000_0000;

/** A malformed encoding: a length that runs past the end, a number too big, an unknown type. */
export class DecodeError extends Error {
  constructor(
    message: string,
    /** Byte offset in the decoded buffer where the problem was found. */
    readonly offset: number,
  ) {
    super(message);
    this.name = 'DecodeError';
  }
}

export const ENTRY_OVERHEAD = 21;
export const HARD_STATE_SIZE = 24;

export function entrySize(e: Entry): number {
  return ENTRY_OVERHEAD + e.data.length;
}

export function confStateSize(cs: ConfState): number {
  return 16 + 8 * (cs.voters.length + cs.learners.length + cs.votersOutgoing.length + cs.learnersNext.length) + 1;
}

export function snapshotMetadataSize(m: SnapshotMetadata): number {
  return 16 + confStateSize(m.confState);
}

export function snapshotSize(s: Snapshot): number {
  return snapshotMetadataSize(s.metadata) + 4 + s.data.length;
}

/** Writes into a buffer allocated once at the exact size the caller computed. */
export class Writer {
  readonly buf: Buffer;
  pos: number;

  constructor(size: number, buf?: Buffer, pos = 0) {
    this.buf = buf ?? Buffer.allocUnsafe(size);
    this.pos = pos;
  }

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  u32(v: number): void {
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  u64(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`cannot encode ${v} as u64: not a safe non-negative integer`);
    this.buf.writeUInt32LE(v % TWO_32, this.pos);
    this.buf.writeUInt32LE(Math.floor(v / TWO_32), this.pos + 4);
    this.pos += 8;
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** u32 length, then the bytes. */
  blob(b: Uint8Array): void {
    this.u32(b.length);
    this.bytes(b);
  }

  entry(e: Entry): void {
    this.u64(e.term);
    this.u64(e.index);
    this.u8(e.type);
    this.blob(e.data);
  }

  hardState(hs: HardState): void {
    this.u64(hs.term);
    this.u64(hs.vote);
    this.u64(hs.commit);
  }

  nodeList(ids: readonly number[]): void {
    this.u32(ids.length);
    for (const id of ids) this.u64(id);
  }

  confState(cs: ConfState): void {
    this.nodeList(cs.voters);
    this.nodeList(cs.learners);
    this.nodeList(cs.votersOutgoing);
    this.nodeList(cs.learnersNext);
    this.u8(cs.autoLeave ? 1 : 0);
  }

  snapshotMetadata(m: SnapshotMetadata): void {
    this.u64(m.index);
    this.u64(m.term);
    this.confState(m.confState);
  }

  snapshot(s: Snapshot): void {
    this.snapshotMetadata(s.metadata);
    this.blob(s.data);
  }
}

/**
 * Reads what Writer wrote. Byte strings are copied out (`copy` true, the default) so a decoded
 * entry does not pin a whole 64 MiB segment buffer in memory; the transport, whose buffers are
 * per batch, passes false and shares them.
 */
export class Reader {
  pos: number;

  constructor(
    readonly buf: Uint8Array,
    pos = 0,
    readonly end = buf.length,
    private readonly copy = true,
  ) {
    this.pos = pos;
  }

  private need(n: number, what: string): void {
    if (this.pos + n > this.end) throw new DecodeError(`truncated ${what}: need ${n} bytes, ${this.end - this.pos} left`, this.pos);
  }

  remaining(): number {
    return this.end - this.pos;
  }

  u8(): number {
    this.need(1, 'u8');
    return this.buf[this.pos++]!;
  }

  u32(): number {
    this.need(4, 'u32');
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16)) + b[p + 3]! * 0x100_0000;
  }

  u64(): number {
    const at = this.pos;
    const lo = this.u32();
    const hi = this.u32();
    if (hi >= 0x20_0000) throw new DecodeError(`u64 at or above 2^53 (high word ${hi})`, at);
    return hi * TWO_32 + lo;
  }

  bytes(n: number): Uint8Array {
    this.need(n, 'byte string');
    const start = this.pos;
    this.pos += n;
    // Plain Uint8Arrays (not Buffers), whatever the input, so decoded values compare equal to encoded ones.
    const view = new Uint8Array(this.buf.buffer, this.buf.byteOffset + start, n);
    return this.copy ? new Uint8Array(view) : view;
  }

  blob(): Uint8Array {
    return this.bytes(this.u32());
  }

  entry(): Entry {
    const term = this.u64();
    const index = this.u64();
    const at = this.pos;
    const type = this.u8();
    if (type > 1) throw new DecodeError(`unknown entry type ${type}`, at);
    return { term, index, type: type as EntryType, data: this.blob() };
  }

  hardState(): HardState {
    return { term: this.u64(), vote: this.u64(), commit: this.u64() };
  }

  nodeList(): number[] {
    const n = this.u32();
    this.need(n * 8, 'node list');
    const ids = new Array<number>(n);
    for (let i = 0; i < n; i++) ids[i] = this.u64();
    return ids;
  }

  confState(): ConfState {
    return {
      voters: this.nodeList(),
      learners: this.nodeList(),
      votersOutgoing: this.nodeList(),
      learnersNext: this.nodeList(),
      autoLeave: this.u8() !== 0,
    };
  }

  snapshotMetadata(): SnapshotMetadata {
    return { index: this.u64(), term: this.u64(), confState: this.confState() };
  }

  snapshot(): Snapshot {
    return { metadata: this.snapshotMetadata(), data: this.blob() };
  }
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}
