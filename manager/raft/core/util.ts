// Small helpers shared by the core's modules.
import { EntryType, MessageType, NONE, type ConfState, type Entry, type Message } from '../types.js';

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/** Approximate wire size of an entry, for maxSizePerMsg batching and the uncommitted quota. */
export function entrySize(e: Entry): number {
  return e.data.length + 16;
}

export function payloadSize(e: Entry): number {
  return e.data.length;
}

/** A message with every field defaulted, so the core never emits undefined fields. */
export function msg(m: Partial<Message> & { type: MessageType }): Message {
  return {
    type: m.type,
    to: m.to ?? NONE,
    from: m.from ?? NONE,
    term: m.term ?? 0,
    logTerm: m.logTerm ?? 0,
    index: m.index ?? 0,
    entries: m.entries ?? [],
    commit: m.commit ?? 0,
    snapshot: m.snapshot ?? null,
    reject: m.reject ?? false,
    rejectHint: m.rejectHint ?? 0,
    context: m.context ?? new Uint8Array(0),
  };
}

export function entry(e: Partial<Entry>): Entry {
  return { term: e.term ?? 0, index: e.index ?? 0, type: e.type ?? EntryType.Normal, data: e.data ?? new Uint8Array(0) };
}

/** A string key for byte contexts (ReadIndex request ids). */
export function bytesKey(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return s;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  );
}

export function voteRespMsgType(t: MessageType): MessageType {
  if (t === MessageType.MsgVote) return MessageType.MsgVoteResp;
  if (t === MessageType.MsgPreVote) return MessageType.MsgPreVoteResp;
  throw new Error(`raft: not a vote message: ${MessageType[t]}`);
}

/** Deterministic source of randomness handed to the core (election timeout jitter). */
export interface RandomSource {
  /** A uniformly distributed integer in [0, n). */
  intn(n: number): number;
}

/** mulberry32: a tiny seeded PRNG, the default when the caller passes no source. */
export class SeededRandom implements RandomSource {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  intn(n: number): number {
    return Math.floor(this.next() * n);
  }
}
