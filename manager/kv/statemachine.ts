// The embedded KV backend's state machine. The managers run it inside the Raft-replicated store, so
// it is pure and deterministic: `apply(op, {index, now})` depends only on the state, the op, the
// Raft log index (used as the modify index, as Consul uses its Raft index) and the time the leader
// stamped into the proposal. It never reads a clock, never draws random numbers (session ids come
// in the op) and iterates only in sorted order, so every replica that applies the same log reaches
// byte-identical snapshots. Session expiry is an op too (`expireSessions`, proposed by the leader's
// expiry loop), so every replica deletes the same keys at the same index.
//
// Watches are local to a replica: listeners hear about changed keys after each apply.
import { KvError, type KvEntry, type SessionInfo } from '../../kv/kv.js';
import {
  childOf,
  compareKeys,
  normalizePrefix,
  underPrefix,
  validateIndex,
  validateKey,
  validateSessionId,
  validateTtl,
  validateValue,
} from '../../kv/keys.js';

export type KvOp =
  | { type: 'put'; key: string; value: Uint8Array; cas?: number; session?: string }
  | { type: 'delete'; key: string; recurse?: boolean; cas?: number }
  | { type: 'sessionCreate'; id: string; ttlMs: number; node?: string }
  | { type: 'sessionRenew'; id: string }
  | { type: 'sessionDestroy'; id: string }
  /** Deletes every session whose deadline is at or before the apply time, and its keys. */
  | { type: 'expireSessions' }
  /**
   * Restarts every session's TTL from the apply time (never shortens one). A new leader proposes
   * it first, as Consul resets session timers on a leader election: renewals sent while no leader
   * could take them must not cost an agent its session.
   */
  | { type: 'resetSessionTimers' };

export interface ApplyContext {
  /** The Raft log index of this op: strictly increasing. */
  index: number;
  /** Milliseconds since the epoch, stamped by the leader into the proposal. */
  now: number;
}

/**
 * `ok: false` without `error` means a precondition (cas, lock) refused the op; with `error`, the op
 * was invalid. Either way the op consumed its index and changed nothing.
 */
export interface KvResult {
  ok: boolean;
  error?: { message: string; code: KvError['code'] };
  /** Keys the op changed or deleted (sorted). */
  changed: string[];
}

export interface KvChange {
  index: number;
  keys: string[];
}

interface StoredEntry {
  value: Uint8Array;
  createIndex: number;
  modifyIndex: number;
  lockIndex: number;
  session: string | undefined;
}

interface StoredSession {
  id: string;
  node: string | undefined;
  ttlMs: number;
  createIndex: number;
  expiresAt: number;
  keys: Set<string>;
}

const SNAPSHOT_VERSION = 1;

export class KvStateMachine {
  private entries = new Map<string, StoredEntry>();
  private sessions = new Map<string, StoredSession>();
  private lastIndex = 0;
  // Leaders' clocks may disagree after a failover; time in the state never goes backwards.
  private lastNow = 0;
  private readonly listeners = new Set<(change: KvChange) => void>();

  /** The index of the last applied op. */
  get index(): number {
    return this.lastIndex;
  }

  /** The latest apply time; the state's notion of "now". */
  get now(): number {
    return this.lastNow;
  }

  /** Hear about changed keys after each apply. Listeners must not throw. */
  onChange(listener: (change: KvChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  apply(op: KvOp, ctx: ApplyContext): KvResult {
    if (!Number.isSafeInteger(ctx.index) || ctx.index <= this.lastIndex) {
      // Applying out of order is a bug in the log plumbing, not a user error: refuse loudly.
      throw new Error(`kv state machine: index ${ctx.index} does not follow applied index ${this.lastIndex}`);
    }
    this.lastIndex = ctx.index;
    if (Number.isFinite(ctx.now) && ctx.now > this.lastNow) this.lastNow = Math.floor(ctx.now);
    let result: KvResult;
    try {
      result = this.applyOp(op, ctx.index, this.lastNow);
    } catch (err) {
      if (!(err instanceof KvError)) throw err;
      result = { ok: false, error: { message: err.message, code: err.code }, changed: [] };
    }
    if (result.changed.length > 0) {
      const change = { index: ctx.index, keys: result.changed };
      for (const listener of this.listeners) listener(change);
    }
    return result;
  }

  private applyOp(op: KvOp, index: number, now: number): KvResult {
    switch (op.type) {
      case 'put':
        return this.put(op, index, now);
      case 'delete':
        return this.delete(op);
      case 'sessionCreate': {
        const id = validateSessionId(op.id);
        const ttlMs = validateTtl(op.ttlMs);
        if (this.sessions.has(id)) throw new KvError(`session ${id} already exists`, 'invalid');
        const node = op.node === undefined ? undefined : String(op.node);
        this.sessions.set(id, { id, node, ttlMs, createIndex: index, expiresAt: now + ttlMs, keys: new Set() });
        return { ok: true, changed: [] };
      }
      case 'sessionRenew': {
        const session = this.liveSession(op.id, now);
        session.expiresAt = now + session.ttlMs;
        return { ok: true, changed: [] };
      }
      case 'sessionDestroy': {
        const id = validateSessionId(op.id);
        return { ok: true, changed: this.destroySession(id) };
      }
      case 'expireSessions': {
        const changed: string[] = [];
        for (const id of [...this.sessions.keys()].sort(compareKeys)) {
          if (this.sessions.get(id)!.expiresAt <= now) changed.push(...this.destroySession(id));
        }
        return { ok: true, changed: changed.sort(compareKeys) };
      }
      case 'resetSessionTimers': {
        for (const s of this.sessions.values()) s.expiresAt = Math.max(s.expiresAt, now + s.ttlMs);
        return { ok: true, changed: [] };
      }
      default:
        throw new KvError(`unknown kv op ${JSON.stringify((op as { type?: unknown }).type)}`, 'invalid');
    }
  }

  private put(op: Extract<KvOp, { type: 'put' }>, index: number, now: number): KvResult {
    const key = validateKey(op.key);
    const value = validateValue(key, op.value);
    const current = this.entries.get(key);
    if (op.cas !== undefined) {
      const cas = validateIndex('cas', op.cas);
      if (cas === 0 ? current !== undefined : current?.modifyIndex !== cas) return { ok: false, changed: [] };
    }
    let holder = current?.session;
    let lockIndex = current?.lockIndex ?? 0;
    if (op.session !== undefined) {
      const session = this.liveSession(op.session, now, `cannot put ${JSON.stringify(key)} under it`);
      if (holder !== undefined && holder !== session.id) return { ok: false, changed: [] };
      if (holder !== session.id) lockIndex++;
      holder = session.id;
      session.keys.add(key);
    }
    this.entries.set(key, {
      value: Uint8Array.from(value),
      createIndex: current?.createIndex ?? index,
      modifyIndex: index,
      lockIndex,
      session: holder,
    });
    return { ok: true, changed: [key] };
  }

  private delete(op: Extract<KvOp, { type: 'delete' }>): KvResult {
    if (op.recurse) {
      if (op.cas !== undefined) throw new KvError(`cas cannot be combined with a recursive delete of ${JSON.stringify(op.key)}`, 'invalid');
      const prefix = normalizePrefix(op.key);
      const doomed = [...this.entries.keys()].filter((k) => underPrefix(k, prefix)).sort(compareKeys);
      for (const key of doomed) this.removeEntry(key);
      return { ok: true, changed: doomed };
    }
    const key = validateKey(op.key);
    const current = this.entries.get(key);
    if (op.cas !== undefined) {
      const cas = validateIndex('cas', op.cas);
      if (current?.modifyIndex !== cas) return { ok: false, changed: [] };
    }
    if (!current) return { ok: true, changed: [] };
    this.removeEntry(key);
    return { ok: true, changed: [key] };
  }

  private removeEntry(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    if (entry.session !== undefined) this.sessions.get(entry.session)?.keys.delete(key);
    this.entries.delete(key);
  }

  /** Removes the session and deletes the keys it holds (behavior=delete); returns them sorted. */
  private destroySession(id: string): string[] {
    const session = this.sessions.get(id);
    if (!session) return [];
    const doomed = [...session.keys].filter((k) => this.entries.get(k)?.session === id).sort(compareKeys);
    for (const key of doomed) this.entries.delete(key);
    this.sessions.delete(id);
    return doomed;
  }

  /** A session that exists and whose deadline has not passed at `now`. */
  private liveSession(id: string, now: number, doing?: string): StoredSession {
    validateSessionId(id);
    const session = this.sessions.get(id);
    const why = doing ? `: ${doing}` : '';
    if (!session) throw new KvError(`session ${id} not found (expired or destroyed)${why}`, 'no-session');
    if (session.expiresAt <= now) throw new KvError(`session ${id} has expired${why}`, 'no-session');
    return session;
  }

  // ---- local reads (not through the log) ----

  get(key: string): KvEntry | undefined {
    const entry = this.entries.get(key);
    return entry ? toEntry(key, entry) : undefined;
  }

  list(prefix: string, recurse: boolean): KvEntry[] {
    const out: KvEntry[] = [];
    for (const [key, entry] of this.entries) {
      if (recurse ? underPrefix(key, prefix) : childOf(key, prefix)) out.push(toEntry(key, entry));
    }
    return out.sort((a, b) => compareKeys(a.key, b.key));
  }

  allKeys(): IterableIterator<string> {
    return this.entries.keys();
  }

  session(id: string): SessionInfo | undefined {
    const s = this.sessions.get(id);
    if (!s) return undefined;
    return { id: s.id, ttlMs: s.ttlMs, createIndex: s.createIndex, ...(s.node !== undefined ? { node: s.node } : {}) };
  }

  /** The earliest session deadline, for the leader's expiry loop; undefined without sessions. */
  nextExpiry(): number | undefined {
    let next: number | undefined;
    for (const s of this.sessions.values()) if (next === undefined || s.expiresAt < next) next = s.expiresAt;
    return next;
  }

  // ---- snapshot / restore ----

  /** The whole state as bytes, in a canonical order so equal states give equal bytes. */
  snapshot(): Uint8Array {
    const keys = [...this.entries.keys()].sort(compareKeys);
    const ids = [...this.sessions.keys()].sort(compareKeys);
    const doc: SnapshotDoc = {
      version: SNAPSHOT_VERSION,
      index: this.lastIndex,
      now: this.lastNow,
      entries: keys.map((key) => {
        const e = this.entries.get(key)!;
        return { key, value: Buffer.from(e.value).toString('base64'), createIndex: e.createIndex, modifyIndex: e.modifyIndex, lockIndex: e.lockIndex, session: e.session ?? null };
      }),
      sessions: ids.map((id) => {
        const s = this.sessions.get(id)!;
        return { id, node: s.node ?? null, ttlMs: s.ttlMs, createIndex: s.createIndex, expiresAt: s.expiresAt, keys: [...s.keys].sort(compareKeys) };
      }),
    };
    return new TextEncoder().encode(JSON.stringify(doc));
  }

  /** Replaces the whole state with a snapshot's. Listeners stay; they hear nothing (callers resync). */
  restore(bytes: Uint8Array): void {
    let doc: SnapshotDoc;
    try {
      doc = JSON.parse(new TextDecoder().decode(bytes)) as SnapshotDoc;
    } catch (err) {
      throw new Error(`kv snapshot is not valid JSON: ${(err as Error).message}`);
    }
    if (doc.version !== SNAPSHOT_VERSION) throw new Error(`kv snapshot version ${String(doc.version)} is not supported (want ${SNAPSHOT_VERSION})`);
    const entries = new Map<string, StoredEntry>();
    for (const e of doc.entries) {
      entries.set(e.key, {
        value: new Uint8Array(Buffer.from(e.value, 'base64')),
        createIndex: e.createIndex,
        modifyIndex: e.modifyIndex,
        lockIndex: e.lockIndex,
        session: e.session ?? undefined,
      });
    }
    const sessions = new Map<string, StoredSession>();
    for (const s of doc.sessions) {
      sessions.set(s.id, { id: s.id, node: s.node ?? undefined, ttlMs: s.ttlMs, createIndex: s.createIndex, expiresAt: s.expiresAt, keys: new Set(s.keys) });
    }
    this.entries = entries;
    this.sessions = sessions;
    this.lastIndex = doc.index;
    this.lastNow = doc.now;
  }
}

interface SnapshotDoc {
  version: number;
  index: number;
  now: number;
  entries: { key: string; value: string; createIndex: number; modifyIndex: number; lockIndex: number; session: string | null }[];
  sessions: { id: string; node: string | null; ttlMs: number; createIndex: number; expiresAt: number; keys: string[] }[];
}

function toEntry(key: string, e: StoredEntry): KvEntry {
  const out: KvEntry = { key, value: Uint8Array.from(e.value), createIndex: e.createIndex, modifyIndex: e.modifyIndex, lockIndex: e.lockIndex };
  if (e.session !== undefined) out.session = e.session;
  return out;
}

// ---- ops on the wire (the Raft log carries bytes) ----

type WireOp = Omit<Extract<KvOp, { type: 'put' }>, 'value'> & { value: string };

export function encodeOp(op: KvOp): Uint8Array {
  const wire = op.type === 'put' ? { ...op, value: Buffer.from(op.value).toString('base64') } : op;
  return new TextEncoder().encode(JSON.stringify(wire));
}

export function decodeOp(bytes: Uint8Array): KvOp {
  const wire = JSON.parse(new TextDecoder().decode(bytes)) as KvOp | WireOp;
  if (wire.type === 'put') return { ...wire, value: new Uint8Array(Buffer.from(wire.value as string, 'base64')) };
  return wire;
}
