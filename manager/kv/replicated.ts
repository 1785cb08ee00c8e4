// The embedded KV inside a manager: its state machine is an extension of the replicated store, so
// every KV write is one entry of the managers' Raft log (a StoreTransaction carrying the encoded op),
// applied in log order on every manager at the entry's index, and the KV state is part of every
// store snapshot (a new or lagging manager restores it with the objects). Only the leader's store
// can propose; on a follower a write fails and the KV service sends the caller to the leader.
import type { MemoryStore } from '../store/memory.js';
import { EmbeddedKv, type Proposer } from './embedded.js';
import { KvStateMachine, decodeOp, encodeOp, type KvResult } from './statemachine.js';

/** The extension kind of KV records in the store's log and snapshots. Never change it. */
export const KV_STORE_EXTENSION = 'kv';

export interface StoreKvOptions {
  /**
   * Whether this manager leads and has applied everything committed before its term: only then
   * does it propose session expiries (one proposer, or every manager would propose each one).
   */
  leading: () => boolean;
  /** How often the leader looks for expired sessions. Default 250 ms. */
  expiryIntervalMs?: number;
  onExpiryError?: (err: unknown) => void;
}

/** Registers the KV state machine with `store` (before Raft replays anything into it). */
export function storeKv(store: MemoryStore, opts: StoreKvOptions): { kv: EmbeddedKv; sm: KvStateMachine } {
  const sm = new KvStateMachine();
  store.registerExtension(KV_STORE_EXTENSION, {
    // `now` is the proposing leader's clock (StoreTransaction.proposed_at): the same on every replica.
    apply: (data, index, now) => sm.apply(decodeOp(data), { index, now }),
    snapshot: () => sm.snapshot(),
    restore: (data) => sm.restore(data),
  });
  const proposer: Proposer = {
    propose: async (op) => (await store.proposeExtension(KV_STORE_EXTENSION, encodeOp(op))) as KvResult,
  };
  const kv = new EmbeddedKv(sm, proposer, {
    isLeader: opts.leading,
    expiryIntervalMs: opts.expiryIntervalMs ?? 250,
    ...(opts.onExpiryError ? { onExpiryError: opts.onExpiryError } : {}),
  });
  // A restored snapshot replaced the state wholesale: watchers must re-read. (The store and the
  // KV live and die together with their manager, so the listener is never removed.)
  store.on('restore', () => kv.restored());
  return { kv, sm };
}
