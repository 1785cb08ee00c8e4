// Blocking watches, shared by every backend: a waiter names a key (or a directory) and an index,
// and wakes when a change to a matching key at a higher index is published, when its timeout
// passes, or when its signal aborts. Backends publish the changes they see (the embedded backend
// after each apply, the Redis backend from its change stream) and check their own history between
// the waiter's index and now right after registering, so no change slips between the two.
import { KvError } from './kv.js';
import { watchMatches } from './keys.js';

export type WaitOutcome = 'change' | 'timeout';

export interface WaitHandle {
  done: Promise<WaitOutcome>;
  /** Wake the waiter now (the backend found a matching change in its history). */
  wake(): void;
  /**
   * Start the timeout. Separate from registration so a backend checks its history first: a change
   * already there must win over a timeout of 0.
   */
  startTimeout(ms: number): void;
}

interface Waiter {
  target: string;
  recurse: boolean;
  afterIndex: number;
  settle: (outcome: WaitOutcome | Error) => void;
}

export class WatchHub {
  private readonly waiters = new Set<Waiter>();
  private closed = false;

  get size(): number {
    return this.waiters.size;
  }

  wait(target: string, recurse: boolean, afterIndex: number, signal?: AbortSignal): WaitHandle {
    let settle: Waiter['settle'] | undefined;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<WaitOutcome>((resolve, reject) => {
      if (this.closed) {
        reject(new KvError('kv is closed', 'closed'));
        return;
      }
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      const onAbort = () => waiter.settle(abortReason(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });
      const waiter: Waiter = {
        target,
        recurse,
        afterIndex,
        settle: (outcome) => {
          if (!this.waiters.delete(waiter)) return; // already settled
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          if (outcome instanceof Error) reject(outcome);
          else resolve(outcome);
        },
      };
      settle = waiter.settle;
      this.waiters.add(waiter);
    });
    // Callers may still be busy (checking history) when the waiter rejects: never "unhandled".
    done.catch(() => {});
    return {
      done,
      wake: () => settle?.('change'),
      startTimeout: (ms) => {
        if (settle && timer === undefined) timer = setTimeout(() => settle?.('timeout'), ms);
      },
    };
  }

  /** Wake every waiter interested in one of `keys` changed at `index`. */
  publish(index: number, keys: readonly string[]): void {
    for (const waiter of [...this.waiters]) {
      if (index <= waiter.afterIndex) continue;
      if (keys.some((key) => watchMatches(key, waiter.target, waiter.recurse))) waiter.settle('change');
    }
  }

  /** Wake everyone (e.g. after a snapshot restore, when history is unknown). */
  wakeAll(): void {
    for (const waiter of [...this.waiters]) waiter.settle('change');
  }

  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) waiter.settle(new KvError('kv is closed', 'closed'));
  }
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException('watch aborted', 'AbortError');
}

/**
 * The recent changes a replica has seen, to answer "did anything under X change after index N?"
 * for a watch that starts late. Bounded: for an N older than what it remembers it answers yes,
 * which costs the caller one spurious wake-up, never a missed change.
 */
export class ChangeLog {
  private readonly changes: { index: number; keys: readonly string[] }[] = [];

  /** @param knownFrom changes after this index are all recorded from now on */
  constructor(
    private knownFrom: number,
    private readonly capacity = 4096,
  ) {}

  record(index: number, keys: readonly string[]): void {
    this.changes.push({ index, keys });
    if (this.changes.length > this.capacity) this.knownFrom = this.changes.shift()!.index;
  }

  /** Forget everything (after a restore): only changes after `index` will be known. */
  reset(index: number): void {
    this.changes.length = 0;
    this.knownFrom = index;
  }

  changedSince(target: string, recurse: boolean, afterIndex: number): boolean {
    if (afterIndex < this.knownFrom) return true;
    for (let i = this.changes.length - 1; i >= 0; i--) {
      const change = this.changes[i]!;
      if (change.index <= afterIndex) break;
      if (change.keys.some((key) => watchMatches(key, target, recurse))) return true;
    }
    return false;
  }
}
