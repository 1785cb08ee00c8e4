// The embedded KV backend: `Kv` on top of the deterministic state machine. Writes go through a
// `Proposer` (in a manager, the Raft store: the op is replicated, then applied on every manager in
// log order); reads and watches are served from the local replica. `LocalProposer` applies directly
// with a monotonically increasing index, for a single node and for tests.
//
// Session TTLs: the state machine never reads a clock, so the leader runs an expiry loop here that
// proposes `expireSessions` once a deadline has passed; the op carries the leader's time and every
// replica deletes the same keys at the same index.
import { randomUUID } from 'node:crypto';
import {
  KvError,
  type DeleteOptions,
  type KeysOptions,
  type Kv,
  type KvEntry,
  type ListOptions,
  type PutOptions,
  type SessionInfo,
  type SessionOptions,
  type WatchOptions,
  type WatchResult,
} from '../../kv/kv.js';
import {
  normalizePrefix,
  rollUpKeys,
  validateIndex,
  validateKey,
  validateSessionId,
  validateTimeout,
  validateTtl,
  validateValue,
} from '../../kv/keys.js';
import { KvStateMachine, type KvOp, type KvResult } from './statemachine.js';
import { ChangeLog, WatchHub } from '../../kv/watchhub.js';

/** Gets an op applied to the state machine (through consensus in production) and returns its result. */
export interface Proposer {
  propose(op: KvOp): Promise<KvResult>;
}

/** Applies ops straight to a local state machine, stamping the local clock: one node, no Raft. */
export class LocalProposer implements Proposer {
  constructor(
    private readonly sm: KvStateMachine,
    private readonly clock: () => number = Date.now,
  ) {}

  propose(op: KvOp): Promise<KvResult> {
    return Promise.resolve(this.sm.apply(op, { index: this.sm.index + 1, now: this.clock() }));
  }
}

export interface EmbeddedKvOptions {
  /** How often the expiry loop looks for sessions past their deadline; 0 disables it (followers). */
  expiryIntervalMs?: number;
  clock?: () => number;
  /**
   * Whether this replica should propose expiries: only the Raft leader should, or every manager
   * would propose the same expiry. Default: always (a single node).
   */
  isLeader?: () => boolean;
  /** Called when proposing an expiry fails (e.g. leadership lost); the loop keeps going. */
  onExpiryError?: (err: unknown) => void;
}

export class EmbeddedKv implements Kv {
  private readonly hub = new WatchHub();
  private readonly log: ChangeLog;
  private readonly unsubscribe: () => void;
  private readonly clock: () => number;
  private readonly expiryTimer: NodeJS.Timeout | undefined;
  private expiring = false;
  private closed = false;

  constructor(
    private readonly sm: KvStateMachine,
    private readonly proposer: Proposer,
    opts: EmbeddedKvOptions = {},
  ) {
    this.clock = opts.clock ?? Date.now;
    this.log = new ChangeLog(sm.index);
    this.unsubscribe = sm.onChange((change) => {
      this.log.record(change.index, change.keys);
      this.hub.publish(change.index, change.keys);
    });
    const interval = opts.expiryIntervalMs ?? 250;
    if (interval > 0) {
      const isLeader = opts.isLeader ?? (() => true);
      this.expiryTimer = setInterval(() => {
        if (isLeader()) this.expireDue(opts.onExpiryError);
      }, interval);
      this.expiryTimer.unref();
    }
  }

  /** After the replica restored a snapshot: history is unknown, so wake every watcher to resync. */
  restored(): void {
    this.log.reset(this.sm.index);
    this.hub.wakeAll();
  }

  private expireDue(onError: ((err: unknown) => void) | undefined): void {
    const next = this.sm.nextExpiry();
    if (this.expiring || next === undefined || next > this.clock()) return;
    this.expiring = true;
    this.proposer
      .propose({ type: 'expireSessions' })
      .catch((err: unknown) => onError?.(err))
      .finally(() => {
        this.expiring = false;
      });
  }

  /**
   * For a manager that just became leader: restart every session's TTL from now (the
   * `resetSessionTimers` op), so agents that could not renew during the election keep their keys.
   */
  async resetSessionTimers(): Promise<void> {
    // No session, nothing to restart: spare the log an entry at every election.
    if (this.sm.nextExpiry() === undefined) return;
    await this.submit({ type: 'resetSessionTimers' });
  }

  private open(): void {
    if (this.closed) throw new KvError('kv is closed', 'closed');
  }

  private async submit(op: KvOp): Promise<boolean> {
    this.open();
    const result = await this.proposer.propose(op);
    if (result.error) throw new KvError(result.error.message, result.error.code);
    return result.ok;
  }

  get(key: string): Promise<KvEntry | undefined> {
    return Promise.resolve().then(() => {
      this.open();
      return this.sm.get(validateKey(key));
    });
  }

  list(prefix: string, opts: ListOptions = {}): Promise<KvEntry[]> {
    return Promise.resolve().then(() => {
      this.open();
      return this.sm.list(normalizePrefix(prefix), opts.recurse ?? false);
    });
  }

  keys(prefix: string, opts: KeysOptions = {}): Promise<string[]> {
    return Promise.resolve().then(() => {
      this.open();
      return rollUpKeys(this.sm.allKeys(), normalizePrefix(prefix), opts.separator);
    });
  }

  async put(key: string, value: Uint8Array, opts: PutOptions = {}): Promise<boolean> {
    validateKey(key);
    validateValue(key, value);
    if (opts.cas !== undefined) validateIndex('cas', opts.cas);
    if (opts.session !== undefined) validateSessionId(opts.session);
    const op: KvOp = { type: 'put', key, value };
    if (opts.cas !== undefined) op.cas = opts.cas;
    if (opts.session !== undefined) op.session = opts.session;
    return this.submit(op);
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<boolean> {
    if (opts.recurse) {
      normalizePrefix(key);
      if (opts.cas !== undefined) throw new KvError(`cas cannot be combined with a recursive delete of ${JSON.stringify(key)}`, 'invalid');
    } else {
      validateKey(key);
    }
    if (opts.cas !== undefined) validateIndex('cas', opts.cas);
    const op: KvOp = { type: 'delete', key };
    if (opts.recurse) op.recurse = true;
    if (opts.cas !== undefined) op.cas = opts.cas;
    return this.submit(op);
  }

  async watch(keyOrPrefix: string, opts: WatchOptions): Promise<WatchResult> {
    this.open();
    const recurse = opts.recurse ?? false;
    const target = recurse ? normalizePrefix(keyOrPrefix) : validateKey(keyOrPrefix);
    const index = validateIndex('watch index', opts.index);
    validateTimeout(opts.timeoutMs);
    const read = (): KvEntry[] => (recurse ? this.sm.list(target, true) : [this.sm.get(target)].filter((e) => e !== undefined));
    const now = (): WatchResult => ({ index: Math.max(this.sm.index, 1), entries: read(), timedOut: false });
    // Index 0, an index from the future (another replica, a restore) or a change already in the
    // history: answer at once. The state machine applies synchronously, so nothing can change
    // between this check and the registration below.
    if (index === 0 || index > this.sm.index || this.log.changedSince(target, recurse, index)) return now();
    const handle = this.hub.wait(target, recurse, index, opts.signal);
    handle.startTimeout(opts.timeoutMs);
    const outcome = await handle.done;
    if (outcome === 'timeout') return { index, entries: read(), timedOut: true };
    return now();
  }

  async sessionCreate(opts: SessionOptions): Promise<string> {
    const ttlMs = validateTtl(opts.ttlMs);
    const id = randomUUID();
    const op: KvOp = { type: 'sessionCreate', id, ttlMs };
    if (opts.node !== undefined) op.node = opts.node;
    await this.submit(op);
    return id;
  }

  async sessionRenew(id: string): Promise<void> {
    validateSessionId(id);
    await this.submit({ type: 'sessionRenew', id });
  }

  async sessionDestroy(id: string): Promise<void> {
    validateSessionId(id);
    await this.submit({ type: 'sessionDestroy', id });
  }

  sessionInfo(id: string): Promise<SessionInfo | undefined> {
    return Promise.resolve().then(() => {
      this.open();
      return this.sm.session(validateSessionId(id));
    });
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      if (this.expiryTimer) clearInterval(this.expiryTimer);
      this.unsubscribe();
      this.hub.close();
    }
    return Promise.resolve();
  }
}

/** A single-node embedded KV: a fresh state machine applied locally. */
export function localKv(opts: EmbeddedKvOptions = {}): { kv: EmbeddedKv; sm: KvStateMachine; proposer: LocalProposer } {
  const sm = new KvStateMachine();
  const proposer = new LocalProposer(sm, opts.clock);
  return { kv: new EmbeddedKv(sm, proposer, opts), sm, proposer };
}
