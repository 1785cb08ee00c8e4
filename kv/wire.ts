// How `Kv` values and errors travel over the managers' KV service (proto/kv.proto), written once
// for both ends (manager/kv/service.ts serves, kv/remote.ts calls) so the two cannot drift.
import * as grpc from '@grpc/grpc-js';
import { KvError, type KvEntry, type SessionInfo } from './kv.js';
import type { KvEntry as WireEntry, SessionInfo as WireSessionInfo } from '../proto/gen/kv.js';

export function entryToWire(e: KvEntry): WireEntry {
  return { key: e.key, value: e.value, createIndex: e.createIndex, modifyIndex: e.modifyIndex, lockIndex: e.lockIndex, session: e.session ?? '' };
}

export function entryFromWire(w: WireEntry): KvEntry {
  // Decoded bytes are a Buffer over a shared pool: hand out a plain Uint8Array of its own.
  const out: KvEntry = { key: w.key, value: Uint8Array.from(w.value), createIndex: w.createIndex, modifyIndex: w.modifyIndex, lockIndex: w.lockIndex };
  if (w.session) out.session = w.session;
  return out;
}

export function sessionToWire(s: SessionInfo): WireSessionInfo {
  const out: WireSessionInfo = { id: s.id, ttlMs: s.ttlMs, createIndex: s.createIndex };
  if (s.node !== undefined) out.node = s.node;
  return out;
}

export function sessionFromWire(w: WireSessionInfo): SessionInfo {
  const out: SessionInfo = { id: w.id, ttlMs: w.ttlMs, createIndex: w.createIndex };
  // proto3 `optional`: decoding leaves an unset field out, so '' is a node named ''.
  if (w.node !== undefined) out.node = w.node;
  return out;
}

// The KvError kinds a caller can act on, as status codes. 'closed' never crosses the wire: a
// server whose KV is closed is a manager going away, which is UNAVAILABLE (try another).
const STATUS_OF: Record<Exclude<KvError['code'], 'closed'>, grpc.status> = {
  invalid: grpc.status.INVALID_ARGUMENT,
  'no-session': grpc.status.NOT_FOUND,
  backend: grpc.status.INTERNAL,
};

/** The status a server answers a KvError with. */
export function statusOfKvError(err: KvError): grpc.status {
  return err.code === 'closed' ? grpc.status.UNAVAILABLE : STATUS_OF[err.code];
}

/** The KvError a client throws for a server's final answer (not one worth retrying elsewhere). */
export function kvErrorOfStatus(code: grpc.status, details: string): KvError {
  for (const [kind, status] of Object.entries(STATUS_OF) as [KvError['code'], grpc.status][]) {
    if (status === code) return new KvError(details, kind);
  }
  return new KvError(`kv service: ${grpc.status[code] ?? code}: ${details}`, 'backend');
}
