// The peer table in the KV: `endpoints/<network id>/<task id>` → one JSON record per endpoint,
// written by the agent whose task it is under that agent's session (so it vanishes when the host
// dies and the session expires), and watched by every agent that has a sandbox for the network.
import { KvError, type Kv, type KvEntry } from '../../kv/kv.js';
import type { Logger } from '../../util/log.js';

export const PEERS_PREFIX = 'endpoints';

/** One endpoint as published. */
export interface PeerRecord {
  ip: string;
  mac: string;
  node: string;
  /** The underlay address of the host the endpoint is on. */
  vtep: string;
  task: string;
  taskName: string;
  serviceId: string;
  serviceName: string;
  slot: number;
  aliases: string[];
  /** The service's virtual IP on this network (no prefix). */
  vip?: string;
  /** How the service's name resolves: to its VIP, or to its tasks' addresses (DNS round robin). */
  endpointMode: 'vip' | 'dnsrr';
  driver: string;
  /**
   * Whether service discovery sends traffic here (the service's names, tasks.NAME, VIP backends).
   * The record is published from prepare on, for the overlays' FDB and neighbour entries, with
   * false; the worker turns it true once the task runs (and is healthy, if it has a health check)
   * and false again before it stops the container. Absent (records of an older agent): serving.
   */
  serving?: boolean;
}

/** Whether a record takes traffic from service discovery (see PeerRecord.serving). */
export function isServing(p: Pick<PeerRecord, 'serving'>): boolean {
  return p.serving !== false;
}

export function peerKey(networkId: string, endpointId: string): string {
  return `${PEERS_PREFIX}/${networkId}/${endpointId}`;
}

export function networkPrefix(networkId: string): string {
  return `${PEERS_PREFIX}/${networkId}`;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export function encodePeer(p: PeerRecord): string {
  return JSON.stringify(p);
}

/** The record in an entry, or undefined if it is not one (written by something else). */
export function decodePeer(entry: KvEntry): PeerRecord | undefined {
  try {
    const p = JSON.parse(decoder.decode(entry.value)) as Partial<PeerRecord>;
    if (typeof p.ip !== 'string' || typeof p.mac !== 'string' || typeof p.vtep !== 'string' || typeof p.node !== 'string') return undefined;
    return p as PeerRecord;
  } catch {
    return undefined;
  }
}

export interface PublisherOptions {
  kv: Kv;
  nodeId: string;
  ttlMs: number;
  log: Logger;
  /** The keys and values this host should have in the table now (re-put under a new session). */
  current(): Array<[string, string]>;
  /** A new session was created (or none is held any more): persist it. */
  onSession(id: string | undefined): Promise<void>;
  /** Runs the republishing after a lost session exclusively of the attacher's own changes. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Called at every renewal (the attacher retries deletions that failed). */
  onRenew?(): Promise<void>;
}

/**
 * Puts this host's endpoints under one KV session, created when the first is published, renewed
 * every third of its TTL and destroyed when the last is withdrawn. A session the KV lost (expired
 * while the host was cut off) is replaced and every endpoint put again.
 */
export class EndpointPublisher {
  private session: string | undefined;
  private creating: Promise<string> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private renewing: Promise<void> = Promise.resolve();

  constructor(private readonly opts: PublisherOptions) {}

  get sessionId(): string | undefined {
    return this.session;
  }

  /** Takes over a session from before a restart and checks it at once. */
  resume(session: string | undefined): void {
    this.session = session;
    if (session !== undefined || this.opts.current().length > 0) this.schedule(0);
  }

  /** Puts one endpoint under the session (replacing a session the KV no longer has). */
  async publish(key: string, value: string): Promise<void> {
    const session = await this.ensureSession();
    try {
      await this.put(key, value, session);
    } catch (err) {
      if (!(err instanceof KvError && err.code === 'no-session')) throw err;
      await this.replaceSession(session);
      await this.put(key, value, this.session!);
    }
  }

  async withdraw(key: string): Promise<void> {
    await this.opts.kv.delete(key);
  }

  /** Destroys the session when no endpoint is left to hold. */
  async idle(): Promise<void> {
    if (this.session === undefined || this.opts.current().length > 0) return;
    const id = this.session;
    this.session = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.opts.onSession(undefined);
    await this.opts.kv.sessionDestroy(id).catch((err: unknown) => this.opts.log.warn('destroying the peer-table session failed', { session: id, err: String(err) }));
  }

  /** Stops renewing; the session (and the keys) stay until the TTL runs out. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.renewing;
  }

  private ensureSession(): Promise<string> {
    if (this.session !== undefined) return Promise.resolve(this.session);
    this.creating ??= (async () => {
      const id = await this.opts.kv.sessionCreate({ ttlMs: this.opts.ttlMs, node: this.opts.nodeId });
      this.session = id;
      await this.opts.onSession(id);
      this.schedule(this.opts.ttlMs / 3);
      return id;
    })().finally(() => (this.creating = undefined));
    return this.creating;
  }

  private async put(key: string, value: string, session: string): Promise<void> {
    const bytes = encoder.encode(value);
    if (await this.opts.kv.put(key, bytes, { session })) return;
    // Held by another session: ours from before a restart, or a dead one whose TTL has not run out.
    await this.opts.kv.delete(key);
    if (!(await this.opts.kv.put(key, bytes, { session }))) throw new Error(`put ${key} in the KV: held by another session`);
  }

  /**
   * The KV lost session `lost` (it expired while this host was cut off, or the KV was reset): a
   * new one holds every endpoint again. Runs exclusively of the attacher's changes.
   */
  private async replaceSession(lost: string | undefined): Promise<void> {
    if (this.session !== lost) return; // replaced meanwhile
    this.session = undefined;
    if (this.opts.current().length === 0) {
      await this.opts.onSession(undefined);
      return;
    }
    const fresh = await this.ensureSession();
    for (const [key, value] of this.opts.current()) await this.put(key, value, fresh);
    this.opts.log.info('peer-table session replaced; endpoints published again', { old: lost, session: fresh });
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.renewing = this.renew();
    }, ms);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    if (this.closed) return;
    const id = this.session;
    let alive = false;
    if (id !== undefined) {
      try {
        await this.opts.kv.sessionRenew(id);
        alive = true;
      } catch (err) {
        this.opts.log.warn('renewing the peer-table session failed', { session: id, err: String(err) });
      }
    }
    if (!alive && !this.closed) {
      try {
        await this.opts.exclusive(() => this.replaceSession(id));
      } catch (err) {
        this.opts.log.warn('publishing the endpoints under a new session failed; trying again', { err: String(err) });
      }
    }
    await this.opts.onRenew?.().catch((err: unknown) => this.opts.log.warn('peer-table housekeeping failed', { err: String(err) }));
    if (this.session !== undefined) this.schedule(this.opts.ttlMs / 3);
    else if (this.opts.current().length > 0) this.schedule(1000);
  }
}

/**
 * Follows one network's directory in the peer table with blocking watches and hands every new
 * view (all entries) to `onChange`. Errors (an unreachable KV) are logged and retried.
 */
export class PeerWatcher {
  private readonly abort = new AbortController();
  private readonly loop: Promise<void>;

  constructor(
    private readonly kv: Kv,
    private readonly networkId: string,
    private readonly onChange: (entries: KvEntry[]) => Promise<void>,
    private readonly log: Logger,
    private readonly timeoutMs = 60_000,
  ) {
    this.loop = this.run();
  }

  get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  async stop(): Promise<void> {
    this.abort.abort(new Error(`peer watch of network ${this.networkId} stopped`));
    await this.loop;
  }

  private async run(): Promise<void> {
    const signal = this.abort.signal;
    let index = 0;
    let delay = 100;
    while (!signal.aborted) {
      try {
        const result = await this.kv.watch(networkPrefix(this.networkId), { index, recurse: true, timeoutMs: this.timeoutMs, signal });
        if (signal.aborted) break;
        if (result.timedOut && index !== 0) continue;
        await this.onChange(result.entries);
        // Only now: a view that failed to apply is fetched again (at once) from the old index.
        index = result.index;
        delay = 100;
      } catch (err) {
        if (signal.aborted) break;
        this.log.warn('watching the peer table failed; retrying', { network: this.networkId, err: String(err) });
        await sleep(delay, signal);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
