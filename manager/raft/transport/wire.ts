// The binary encoding of Raft messages on the wire (carried in MessageBatch.payload and
// SnapshotChunk.message of proto/raft.proto). Same building blocks as the WAL (storage/binary.ts):
// fixed-width little-endian fields, one exact-size allocation per batch.
//
//   Batch   = version:u8(1) count:u32 Message*count
//   Message = type:u8 flags:u8 to:u64 from:u64 term:u64 logTerm:u64 index:u64 commit:u64
//             rejectHint:u64 context:blob entryCount:u32 Entry*entryCount [Snapshot]
//   flags   = bit 0 reject, bit 1 a Snapshot follows
//
// Decoding shares the batch buffer (entry data are views into it, not copies): a batch is small
// and short-lived, and Raft copies what it keeps into its log.
import { DecodeError, ENTRY_OVERHEAD, Reader, Writer, snapshotSize } from '../storage/binary.js';
import { MessageType, type Message } from '../types.js';

const VERSION = 1;
const FIXED = 2 + 7 * 8 + 4 + 4;
const MAX_TYPE = MessageType.MsgPreVoteResp;

export function messageSize(m: Message): number {
  let size = FIXED + m.context.length;
  for (const e of m.entries) size += ENTRY_OVERHEAD + e.data.length;
  if (m.snapshot) size += snapshotSize(m.snapshot);
  return size;
}

function writeMessage(w: Writer, m: Message): void {
  w.u8(m.type);
  w.u8((m.reject ? 1 : 0) | (m.snapshot ? 2 : 0));
  w.u64(m.to);
  w.u64(m.from);
  w.u64(m.term);
  w.u64(m.logTerm);
  w.u64(m.index);
  w.u64(m.commit);
  w.u64(m.rejectHint);
  w.blob(m.context);
  w.u32(m.entries.length);
  for (const e of m.entries) w.entry(e);
  if (m.snapshot) w.snapshot(m.snapshot);
}

function readMessage(r: Reader): Message {
  const at = r.pos;
  const type = r.u8();
  if (type > MAX_TYPE) throw new DecodeError(`unknown message type ${type}`, at);
  const flags = r.u8();
  const m: Message = {
    type: type as MessageType,
    to: r.u64(),
    from: r.u64(),
    term: r.u64(),
    logTerm: r.u64(),
    index: r.u64(),
    commit: r.u64(),
    rejectHint: r.u64(),
    context: r.blob(),
    entries: [],
    reject: (flags & 1) !== 0,
  };
  const n = r.u32();
  if (n * ENTRY_OVERHEAD > r.remaining()) throw new DecodeError(`${n} entries cannot fit in ${r.remaining()} bytes`, r.pos);
  for (let i = 0; i < n; i++) m.entries.push(r.entry());
  if (flags & 2) m.snapshot = r.snapshot();
  return m;
}

export function encodeMessages(messages: readonly Message[]): Buffer {
  let size = 5;
  for (const m of messages) size += messageSize(m);
  const w = new Writer(size);
  w.u8(VERSION);
  w.u32(messages.length);
  for (const m of messages) writeMessage(w, m);
  return w.buf;
}

/** Throws DecodeError on anything malformed. */
export function decodeMessages(buf: Uint8Array): Message[] {
  const r = new Reader(buf, 0, buf.length, false);
  const version = r.u8();
  if (version !== VERSION) throw new DecodeError(`unsupported raft wire version ${version} (this build speaks ${VERSION})`, 0);
  const n = r.u32();
  const out: Message[] = [];
  for (let i = 0; i < n; i++) out.push(readMessage(r));
  if (r.remaining() !== 0) throw new DecodeError(`${r.remaining()} unexpected bytes after ${n} messages`, r.pos);
  return out;
}
