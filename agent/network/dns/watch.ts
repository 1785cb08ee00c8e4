// Follows one network's peer table in the KV: a blocking watch on `endpoints/<networkId>` from the
// last index seen, the records rebuilt from the whole directory on every wake-up. The first watch
// (index 0) answers at once with what is there, so there is no gap between "list" and "watch".
// KV errors are logged and retried with backoff until the watch is stopped.
import type { Kv, KvEntry } from '../../../kv/kv.js';
import type { Logger } from '../../../util/log.js';
import { NetworkRecords } from './records.js';

export interface PeerTableWatchOptions {
  kv: Kv;
  networkId: string;
  /** The peer table's root; `endpoints`. */
  prefix: string;
  /** How long one blocking watch waits before asking again. */
  timeoutMs: number;
  /** Called after the records changed (not for a wake-up that changed nothing). */
  onChange: (records: NetworkRecords) => void;
  log: Logger;
}

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5_000;
/** A wake-up without a new index (Consul allows spurious ones): pause so it cannot spin. */
const SPURIOUS_PAUSE_MS = 50;

export class PeerTableWatch {
  private current: NetworkRecords;
  private readonly abort = new AbortController();
  private readonly loaded: Promise<void>;
  private markLoaded!: () => void;
  private loop: Promise<void> | undefined;
  private fingerprint = '';

  constructor(private readonly opts: PeerTableWatchOptions) {
    this.current = new NetworkRecords(opts.networkId, []);
    this.loaded = new Promise((resolve) => (this.markLoaded = resolve));
  }

  get records(): NetworkRecords {
    return this.current;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Resolves after the first successful read, or false once `timeoutMs` passed without one. */
  async ready(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    try {
      return await Promise.race([this.loaded.then(() => true), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { kv, networkId, log } = this.opts;
    const key = `${this.opts.prefix}/${networkId}`;
    let index = 0;
    let backoff = BACKOFF_MIN_MS;
    while (!this.abort.signal.aborted) {
      try {
        const result = await kv.watch(key, { index, recurse: true, timeoutMs: this.opts.timeoutMs, signal: this.abort.signal });
        backoff = BACKOFF_MIN_MS;
        const spurious = !result.timedOut && result.index === index;
        index = result.index;
        if (!result.timedOut || this.fingerprint === '') this.update(result.entries);
        this.markLoaded();
        if (spurious) await pause(SPURIOUS_PAUSE_MS, this.abort.signal);
      } catch (err) {
        if (this.abort.signal.aborted) break;
        log.warn('peer table watch failed; retrying', { network: networkId, index, retryInMs: backoff, error: err });
        await pause(backoff, this.abort.signal);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        // Start over from a fresh read: the KV may have been replaced (a new leader, a restore).
        index = 0;
      }
    }
  }

  private update(entries: readonly KvEntry[]): void {
    // Entries come sorted by key; their keys and modify indexes tell whether anything changed.
    const fingerprint = `#${entries.map((e) => `${e.key}@${e.modifyIndex}`).join(',')}`;
    if (fingerprint === this.fingerprint) return;
    this.fingerprint = fingerprint;
    this.current = NetworkRecords.fromEntries(this.opts.networkId, entries, (problem) =>
      this.opts.log.warn('peer table entry ignored', { network: this.opts.networkId, problem }),
    );
    this.opts.onChange(this.current);
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
