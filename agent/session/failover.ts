// The loop every long-lived agent stream to the managers runs (the session, the log publisher):
// connect to one manager; when the stream ends, retry the same manager if it had been up, move on
// to the next if it never came up, and go straight to the leader when a follower names it
// (LEADER_ADDR_METADATA), with a doubling backoff. The managers list is shared and may grow.
//
// Every wait is jittered, and a connection that was up and ended waits a random part of a spread
// first: when a leader goes, all of the cluster's nodes lose their sessions at the same moment,
// and thousands of TLS handshakes landing on the new leader together would keep it too busy to
// answer Raft (it would lose its leadership in turn, and the storm would move on).
import type * as grpc from '@grpc/grpc-js';
import { LEADER_ADDR_METADATA } from '../../proto/metadata.js';

export interface FailoverOptions {
  managers: string[];
  /** First delay before trying again; doubles up to maxBackoffMs. Default 100 ms. */
  backoffMs?: number;
  /** Default 5 s. */
  maxBackoffMs?: number;
  /**
   * Over how long the reconnects of a whole cluster are spread after a connection that was up
   * ends (each node waits a random part of it). The session passes half the heartbeat period,
   * which the managers stretch as the cluster grows. Default 0.
   */
  spreadMs?: () => number;
  /** Uniform in [0, 1); Math.random by default (tests pass a seeded one). */
  random?: () => number;
  /** Told of each wait before the next attempt, in ms (tests). */
  onWait?: (ms: number) => void;
  /** Told of every stream that ended with an error (not of one ended by stop()). */
  onEnded?: (manager: string, err: unknown) => void;
}

/** One connection: settles (always with an error) when it ends; calls onEstablished once it is up. */
export type Connect = (manager: string, onEstablished: () => void) => Promise<void>;

export class FailoverLoop {
  private stoppedFlag = false;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly options: FailoverOptions) {}

  get stopped(): boolean {
    return this.stoppedFlag;
  }

  start(connect: Connect): void {
    this.loop ??= this.run(connect);
  }

  /** Ends the loop: `abort` ends the connection in progress; resolves once the loop is over. */
  async stop(abort?: () => void): Promise<void> {
    this.stoppedFlag = true;
    abort?.();
    this.wake?.();
    await this.loop;
  }

  private async run(connect: Connect): Promise<void> {
    const { managers } = this.options;
    const base = this.options.backoffMs ?? 100;
    const max = this.options.maxBackoffMs ?? 5000;
    const random = this.options.random ?? Math.random;
    // Equal jitter: between half the delay and the whole of it.
    const jittered = (ms: number) => ms / 2 + random() * (ms / 2);
    let delay = base;
    let next = 0;
    while (!this.stoppedFlag) {
      const manager = managers[next % managers.length]!;
      let established = false;
      try {
        await connect(manager, () => {
          established = true;
          delay = base;
        });
      } catch (err) {
        if (this.stoppedFlag) break;
        this.options.onEnded?.(manager, err);
        // A follower names the leader: go there next, even if no message listed it yet.
        const leader = (err as Partial<grpc.ServiceError>).metadata?.get(LEADER_ADDR_METADATA)[0];
        if (typeof leader === 'string' && leader) {
          if (!managers.includes(leader)) managers.push(leader);
          next = managers.indexOf(leader);
          await this.sleep(jittered(base));
          continue;
        }
      }
      if (this.stoppedFlag) break;
      // A connection that was up is retried on the same manager first; a failed connect moves on.
      if (!established) next++;
      const spread = established ? random() * (this.options.spreadMs?.() ?? 0) : 0;
      await this.sleep(spread + jittered(delay));
      delay = Math.min(delay * 2, max);
    }
  }

  private sleep(ms: number): Promise<void> {
    this.options.onWait?.(ms);
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
