// A Kv whose backend arrives later: an agent starts before it can reach any manager (a restart
// while the managers are down, say), and its network drivers must exist from the start. Every
// call waits for the backend; close() before it arrived closes it when it does.
import type { Kv } from './kv.js';

export class DeferredKv implements Kv {
  private backend: Kv | undefined;
  private closed = false;
  private readonly ready: Promise<Kv>;

  constructor(connect: Promise<Kv>) {
    this.ready = connect.then(async (kv) => {
      if (this.closed) {
        await kv.close();
        throw new Error('the KV connection was closed before it was made');
      }
      this.backend = kv;
      return kv;
    });
    this.ready.catch(() => undefined); // failures surface on the calls that wait for it
  }

  private kv(): Promise<Kv> {
    return this.backend ? Promise.resolve(this.backend) : this.ready;
  }

  get: Kv['get'] = async (...a) => (await this.kv()).get(...a);
  list: Kv['list'] = async (...a) => (await this.kv()).list(...a);
  keys: Kv['keys'] = async (...a) => (await this.kv()).keys(...a);
  put: Kv['put'] = async (...a) => (await this.kv()).put(...a);
  delete: Kv['delete'] = async (...a) => (await this.kv()).delete(...a);
  watch: Kv['watch'] = async (...a) => (await this.kv()).watch(...a);
  sessionCreate: Kv['sessionCreate'] = async (...a) => (await this.kv()).sessionCreate(...a);
  sessionRenew: Kv['sessionRenew'] = async (...a) => (await this.kv()).sessionRenew(...a);
  sessionDestroy: Kv['sessionDestroy'] = async (...a) => (await this.kv()).sessionDestroy(...a);
  sessionInfo: Kv['sessionInfo'] = async (...a) => (await this.kv()).sessionInfo(...a);

  async close(): Promise<void> {
    this.closed = true;
    await this.backend?.close();
  }
}

/** Retries `connect` with a capped backoff until it succeeds or `stopped()` says to give up. */
export async function connectWithRetry(connect: () => Promise<Kv>, stopped: () => boolean, onError: (e: unknown) => void, maxDelayMs = 5000): Promise<Kv> {
  let delay = 100;
  for (;;) {
    try {
      return await connect();
    } catch (e) {
      if (stopped()) throw e;
      onError(e);
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, maxDelayMs);
    }
  }
}
