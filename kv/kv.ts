// The consul-style key/value interface that holds network state (the overlay peer table). Every
// backend (embedded on the Raft store, Redis) implements `Kv` with the same semantics, so agents
// never know which one serves them. The semantics are Consul's:
//
// - Every change gets a cluster-wide, strictly increasing index. An entry remembers the index that
//   created it (`createIndex`) and the one that last changed it (`modifyIndex`).
// - `put` with `cas` is check-and-set on `modifyIndex`; `cas: 0` means "create only if absent".
// - Keys are paths of `/`-separated segments. A prefix names a directory: `a/b` covers `a/b` itself
//   and everything under `a/b/`, but never the sibling `a/bc`.
// - `watch` blocks until a change to the key (or anything under the prefix) happens at an index
//   above the one given, or until the timeout; it may wake early without a change (a spurious
//   wake-up, like Consul's), so callers compare and loop.
// - Sessions have a TTL; keys put under a session (`put(..., {session})`, Consul's `acquire`) are
//   deleted when the session expires or is destroyed (Consul's `behavior=delete`).

/** One stored key. `value` is a copy: changing it changes nothing in the store. */
export interface KvEntry {
  key: string;
  value: Uint8Array;
  createIndex: number;
  modifyIndex: number;
  /** How many times a session acquired this key (Consul's LockIndex). */
  lockIndex: number;
  /** The session holding the key, if any; the key vanishes with that session. */
  session?: string;
}

export interface PutOptions {
  /** Check-and-set: write only if the key's modifyIndex equals this; 0 = only if absent. */
  cas?: number;
  /** Acquire the key under this session; fails (false) if another session holds it. */
  session?: string;
}

export interface DeleteOptions {
  /** Delete the key and everything under it as a directory. */
  recurse?: boolean;
  /** Delete only if the key's modifyIndex equals this (not allowed with recurse). */
  cas?: number;
}

export interface ListOptions {
  /** true: the prefix key and everything under it; false (default): its direct children only. */
  recurse?: boolean;
}

export interface KeysOptions {
  /** Roll up keys below the next separator into one `dir/` entry, like Consul's `?separator=`. */
  separator?: string;
}

export interface WatchOptions {
  /** Return once a matching change has an index above this; 0 returns at once. */
  index: number;
  /** Watch the prefix as a directory rather than the single key. */
  recurse?: boolean;
  /** Return the unchanged index after this long without a matching change. */
  timeoutMs: number;
  /** Abort the wait; the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface WatchResult {
  /** Pass this as the next `index`. On timeout it is the index that was given. */
  index: number;
  /** The entries now (one or none for a key watch; the whole directory for a prefix watch). */
  entries: KvEntry[];
  /** True if the wait ended by the timeout rather than by a change. */
  timedOut: boolean;
}

export interface SessionOptions {
  /** Time to live: the session dies unless renewed within this many milliseconds. */
  ttlMs: number;
  /** The node that owns the session, for operators reading it. */
  node?: string;
}

export interface SessionInfo {
  id: string;
  ttlMs: number;
  node?: string;
  createIndex: number;
}

export interface Kv {
  get(key: string): Promise<KvEntry | undefined>;
  list(prefix: string, opts?: ListOptions): Promise<KvEntry[]>;
  keys(prefix: string, opts?: KeysOptions): Promise<string[]>;
  /** Returns false if `cas` or the session lock refused the write. */
  put(key: string, value: Uint8Array, opts?: PutOptions): Promise<boolean>;
  /** Returns false only if `cas` refused; deleting a missing key is fine. */
  delete(key: string, opts?: DeleteOptions): Promise<boolean>;
  watch(keyOrPrefix: string, opts: WatchOptions): Promise<WatchResult>;
  sessionCreate(opts: SessionOptions): Promise<string>;
  /** Pushes the deadline out by the session's TTL; throws if the session is gone. */
  sessionRenew(id: string): Promise<void>;
  /** Deletes the session's keys; destroying a session that is already gone is not an error. */
  sessionDestroy(id: string): Promise<void>;
  sessionInfo(id: string): Promise<SessionInfo | undefined>;
  close(): Promise<void>;
}

/** An error a KV user caused (bad key, unknown session); the message names the bad value. */
export class KvError extends Error {
  override name = 'KvError';
  constructor(
    message: string,
    readonly code: 'invalid' | 'no-session' | 'closed' | 'backend',
  ) {
    super(message);
  }
}
