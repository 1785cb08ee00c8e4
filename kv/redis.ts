// The Redis KV backend (`--kv redis://host:port/db?prefix=shoal/kv/`): `Kv` with ioredis against a
// real Redis. Writes are Lua scripts (redis-scripts.ts), so check-and-set, the global index bump and
// session cleanup are atomic however many clients share the server.
//
// Watches tail a Redis stream of changes (one XADD per index, in the same script as the change)
// rather than keyspace notifications: pub/sub is fire-and-forget, so a watcher that registers
// between two notifications, or whose connection blips, loses changes, while a stream keeps history
// with ids equal to the KV index. A watch for "after N" can therefore read exactly what changed
// since N (XRANGE), then wait on one shared tailing connection (XREAD BLOCK) for what comes next.
//
// Session TTLs: a session is a key with PEXPIRE. When Redis expires it, its keys must go too. This
// client subscribes to expiry events (`notify-keyspace-events Ex`, turned on with CONFIG SET when
// the server allows it) and cleans up at once; a sweeper also runs every `sweepIntervalMs` and
// cleans up any session whose key is gone, for servers where CONFIG is disabled and for events
// lost while disconnected. Cleanup is idempotent, so many clients may race on it.
import { createHash, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
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
} from './kv.js';
import {
  normalizePrefix,
  rollUpKeys,
  validateIndex,
  validateKey,
  validateSessionId,
  validateTimeout,
  validateTtl,
  validateValue,
  watchMatches,
} from './keys.js';
import * as scripts from './redis-scripts.js';
import { WatchHub } from './watchhub.js';

export interface RedisKvOptions {
  /** Namespace for every Redis key this KV uses; overrides the URL's `?prefix=`. */
  prefix?: string;
  /** How often to clean up expired sessions without waiting for an expiry event. */
  sweepIntervalMs?: number;
  /** Approximate cap on the change stream; older history makes late watchers wake and resync. */
  streamMaxLen?: number;
  /** Subscribe to expiry events (and enable them with CONFIG SET if needed). Default true. */
  keyspaceNotifications?: boolean;
  /** Errors from background work (sweeper, stream tail, expiry events). */
  onBackgroundError?: (err: unknown) => void;
}

export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  prefix: string;
  username?: string;
  password?: string;
  tls: boolean;
}

const DEFAULT_PREFIX = 'shoal/kv/';

/** Parses `redis://[user:pass@]host[:port][/db][?prefix=...]` (or rediss:// for TLS). */
export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new KvError(`invalid kv url ${JSON.stringify(url)}: expected redis://host:port/db?prefix=...`, 'invalid');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new KvError(`invalid kv url ${JSON.stringify(url)}: scheme must be redis:// or rediss://`, 'invalid');
  }
  const dbText = u.pathname.replace(/^\//, '') || '0';
  const db = Number(dbText);
  if (!/^\d+$/.test(dbText) || db > 15) throw new KvError(`invalid kv url ${JSON.stringify(url)}: database ${JSON.stringify(dbText)} must be 0-15`, 'invalid');
  const port = u.port === '' ? 6379 : Number(u.port);
  const target: RedisTarget = {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port,
    db,
    prefix: u.searchParams.get('prefix') ?? DEFAULT_PREFIX,
    tls: u.protocol === 'rediss:',
  };
  if (u.username) target.username = decodeURIComponent(u.username);
  if (u.password) target.password = decodeURIComponent(u.password);
  return target;
}

class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}

const PUT = new Script(scripts.PUT);
const DELETE = new Script(scripts.DELETE);
const READ = new Script(scripts.READ);
const SESSION_CREATE = new Script(scripts.SESSION_CREATE);
const SESSION_RENEW = new Script(scripts.SESSION_RENEW);
const SESSION_DESTROY = new Script(scripts.SESSION_DESTROY);
const SWEEP = new Script(scripts.SWEEP);

type Reply = Buffer | number | null | Reply[];

export class RedisKv implements Kv {
  private readonly hub = new WatchHub();
  private readonly prefix: string;
  private readonly maxLen: number;
  private readonly onError: (err: unknown) => void;
  private readonly sweepTimer: NodeJS.Timeout;
  private sweeping = false;
  private subscriber: Redis | undefined;
  private tailer: Redis | undefined;
  private tailStarted: Promise<void> | undefined;
  private closed = false;

  /** Connects, checks the server answers, and starts session cleanup. */
  static async connect(url: string, opts: RedisKvOptions = {}): Promise<RedisKv> {
    const target = parseRedisUrl(url);
    const redis = new Redis({
      host: target.host,
      port: target.port,
      db: target.db,
      lazyConnect: true,
      maxRetriesPerRequest: 3,
      ...(target.username !== undefined ? { username: target.username } : {}),
      ...(target.password !== undefined ? { password: target.password } : {}),
      ...(target.tls ? { tls: {} } : {}),
    });
    redis.on('error', () => {
      // ioredis reconnects by itself; commands that fail report their own error.
    });
    try {
      await redis.connect();
      await redis.ping();
    } catch (err) {
      redis.disconnect();
      throw new KvError(`cannot reach kv redis at ${target.host}:${target.port}: ${(err as Error).message}`, 'backend');
    }
    const kv = new RedisKv(redis, target.db, { prefix: target.prefix, ...opts });
    if (opts.keyspaceNotifications ?? true) await kv.subscribeExpiry();
    return kv;
  }

  constructor(
    private readonly redis: Redis,
    private readonly db: number,
    opts: RedisKvOptions = {},
  ) {
    this.prefix = opts.prefix ?? DEFAULT_PREFIX;
    this.maxLen = opts.streamMaxLen ?? 10_000;
    this.onError = opts.onBackgroundError ?? (() => {});
    this.sweepTimer = setInterval(() => this.sweep(), opts.sweepIntervalMs ?? 1000);
    this.sweepTimer.unref();
  }

  /** Whether expiry events arrive (false: the sweeper alone cleans up expired sessions). */
  notificationsEnabled = false;

  private async run(script: Script, args: (string | Buffer | number)[]): Promise<Reply> {
    if (this.closed) throw new KvError('kv is closed', 'closed');
    const all = [this.prefix, this.maxLen, ...args];
    try {
      return (await this.redis.callBuffer('EVALSHA', script.sha, 0, ...all)) as Reply;
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw this.wrap(err);
    }
    try {
      return (await this.redis.callBuffer('EVAL', script.source, 0, ...all)) as Reply;
    } catch (err) {
      throw this.wrap(err);
    }
  }

  private async subscribeExpiry(): Promise<void> {
    try {
      const reply = (await this.redis.call('CONFIG', 'GET', 'notify-keyspace-events')) as string[];
      const flags = reply[1] ?? '';
      const hasExpired = flags.includes('x') || flags.includes('A');
      if (!flags.includes('E') || !hasExpired) {
        await this.redis.call('CONFIG', 'SET', 'notify-keyspace-events', flags + (flags.includes('E') ? '' : 'E') + (hasExpired ? '' : 'x'));
      }
    } catch (err) {
      // Managed Redis often disables CONFIG: the sweeper still cleans up, only later.
      this.onError(err);
      return;
    }
    const sub = this.redis.duplicate();
    sub.on('error', () => {});
    this.subscriber = sub;
    const sessionPrefix = this.prefix + 's:';
    sub.on('message', (_channel: string, key: string) => {
      if (!key.startsWith(sessionPrefix)) return;
      const id = key.slice(sessionPrefix.length);
      this.run(SESSION_DESTROY, [id]).catch((err: unknown) => this.onError(err));
    });
    await sub.subscribe(`__keyevent@${this.db}__:expired`);
    this.notificationsEnabled = true;
  }

  private sweep(): void {
    if (this.sweeping || this.closed) return;
    this.sweeping = true;
    this.run(SWEEP, [])
      .catch((err: unknown) => this.onError(err))
      .finally(() => {
        this.sweeping = false;
      });
  }

  async get(key: string): Promise<KvEntry | undefined> {
    return (await this.read(validateKey(key), 'key')).entries[0];
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<KvEntry[]> {
    return (await this.read(normalizePrefix(prefix), opts.recurse ? 'recurse' : 'children')).entries;
  }

  async keys(prefix: string, opts: KeysOptions = {}): Promise<string[]> {
    const p = normalizePrefix(prefix);
    const reply = (await this.run(READ, [p, 'keys'])) as Reply[];
    return rollUpKeys(
      reply.slice(1).map((b) => (b as Buffer).toString('utf8')),
      p,
      opts.separator,
    );
  }

  private async read(target: string, mode: 'key' | 'recurse' | 'children'): Promise<{ index: number; entries: KvEntry[] }> {
    const reply = (await this.run(READ, [target, mode])) as Reply[];
    const entries: KvEntry[] = [];
    for (let i = 1; i + 5 < reply.length; i += 6) {
      const str = (n: number) => (reply[i + n] as Buffer).toString('utf8');
      const entry: KvEntry = {
        key: str(0),
        value: new Uint8Array(reply[i + 1] as Buffer),
        createIndex: Number(str(2)),
        modifyIndex: Number(str(3)),
        lockIndex: Number(str(4)),
      };
      const session = str(5);
      if (session !== '') entry.session = session;
      entries.push(entry);
    }
    return { index: reply[0] as number, entries };
  }

  async put(key: string, value: Uint8Array, opts: PutOptions = {}): Promise<boolean> {
    validateKey(key);
    validateValue(key, value);
    const cas = opts.cas === undefined ? '' : String(validateIndex('cas', opts.cas));
    const session = opts.session === undefined ? '' : validateSessionId(opts.session);
    const [status] = (await this.run(PUT, [key, Buffer.from(value.buffer, value.byteOffset, value.byteLength), cas, session])) as number[];
    if (status === -1) throw new KvError(`session ${session} not found (expired or destroyed): cannot put ${JSON.stringify(key)} under it`, 'no-session');
    return status === 1;
  }

  async delete(key: string, opts: DeleteOptions = {}): Promise<boolean> {
    let target: string;
    if (opts.recurse) {
      target = normalizePrefix(key);
      if (opts.cas !== undefined) throw new KvError(`cas cannot be combined with a recursive delete of ${JSON.stringify(key)}`, 'invalid');
    } else {
      target = validateKey(key);
    }
    const cas = opts.cas === undefined ? '' : String(validateIndex('cas', opts.cas));
    const [status] = (await this.run(DELETE, [target, opts.recurse ? '1' : '0', cas])) as number[];
    return status === 1;
  }

  async watch(keyOrPrefix: string, opts: WatchOptions): Promise<WatchResult> {
    if (this.closed) throw new KvError('kv is closed', 'closed');
    const recurse = opts.recurse ?? false;
    const target = recurse ? normalizePrefix(keyOrPrefix) : validateKey(keyOrPrefix);
    const index = validateIndex('watch index', opts.index);
    validateTimeout(opts.timeoutMs);
    const mode = recurse ? 'recurse' : 'key';
    if (index > 0) {
      // Register first, then look at history: a change lands in one or the other, never between.
      await this.startTail().catch((err: unknown) => {
        throw this.wrap(err);
      });
      const handle = this.hub.wait(target, recurse, index, opts.signal);
      try {
        if (await this.changedSince(target, recurse, index)) handle.wake();
        else handle.startTimeout(opts.timeoutMs);
      } catch (err) {
        handle.wake();
        await handle.done.catch(() => {});
        throw this.wrap(err);
      }
      if ((await handle.done) === 'timeout') {
        return { index, entries: (await this.read(target, mode)).entries, timedOut: true };
      }
    }
    const now = await this.read(target, mode);
    return { index: Math.max(now.index, 1), entries: now.entries, timedOut: false };
  }

  /** Whether the stream shows a change to target after `index`, or cannot rule one out. */
  private async changedSince(target: string, recurse: boolean, index: number): Promise<boolean> {
    const stream = this.prefix + 'changes';
    const current = Number((await this.redis.get(this.prefix + 'index')) ?? '0');
    if (index > current) return true; // an index from the future: the data was reset, resync
    let expected = index + 1;
    while (expected <= current) {
      const batch = (await this.redis.xrange(stream, `(${expected - 1}-0`, `${current}-0`, 'COUNT', 512)) as [string, string[]][];
      if (batch.length === 0) return true;
      for (const [id, fields] of batch) {
        const at = Number(id.split('-')[0]);
        if (at !== expected) return true; // trimmed history: cannot rule a change out
        if (changedKeys(fields).some((k) => watchMatches(k, target, recurse))) return true;
        expected = at + 1;
      }
    }
    return false;
  }

  /** Starts (once) the loop that tails the change stream and wakes local watchers. */
  private startTail(): Promise<void> {
    if (!this.tailStarted) {
      const tailer = this.redis.duplicate();
      tailer.on('error', () => {});
      this.tailer = tailer;
      this.tailStarted = (async () => {
        const last = (await this.redis.xrevrange(this.prefix + 'changes', '+', '-', 'COUNT', 1)) as [string, string[]][];
        const from = last[0]?.[0] ?? '0-0';
        void this.tailLoop(tailer, from);
      })();
      this.tailStarted.catch(() => {
        this.tailStarted = undefined; // let the next watch try again
      });
    }
    return this.tailStarted;
  }

  private async tailLoop(tailer: Redis, from: string): Promise<void> {
    const stream = this.prefix + 'changes';
    let last = from;
    while (!this.closed) {
      try {
        const reply = (await tailer.xread('BLOCK', 5000, 'STREAMS', stream, last)) as [string, [string, string[]][]][] | null;
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            this.hub.publish(Number(id.split('-')[0]), changedKeys(fields));
          }
        }
      } catch (err) {
        if (this.closed) return;
        this.onError(err);
        // We may have missed changes (or the stream was trimmed): wake everyone to resync.
        this.hub.wakeAll();
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  async sessionCreate(opts: SessionOptions): Promise<string> {
    const ttlMs = validateTtl(opts.ttlMs);
    const id = randomUUID();
    const created = (await this.run(SESSION_CREATE, [id, ttlMs, opts.node ?? ''])) as number;
    if (created !== 1) throw new KvError(`session id ${id} already exists`, 'backend');
    return id;
  }

  async sessionRenew(id: string): Promise<void> {
    validateSessionId(id);
    if ((await this.run(SESSION_RENEW, [id])) !== 1) throw new KvError(`session ${id} not found (expired or destroyed)`, 'no-session');
  }

  async sessionDestroy(id: string): Promise<void> {
    validateSessionId(id);
    await this.run(SESSION_DESTROY, [id]);
  }

  async sessionInfo(id: string): Promise<SessionInfo | undefined> {
    validateSessionId(id);
    if (this.closed) throw new KvError('kv is closed', 'closed');
    const [ttl, node, ci] = await this.redis.hmget(this.prefix + 's:' + id, 'ttl', 'node', 'ci');
    if (ttl == null) return undefined;
    const info: SessionInfo = { id, ttlMs: Number(ttl), createIndex: Number(ci ?? 0) };
    if (node) info.node = node;
    return info;
  }

  private wrap(err: unknown): Error {
    if (err instanceof KvError) return err;
    if (this.closed) return new KvError('kv is closed', 'closed');
    return new KvError(`kv redis: ${err instanceof Error ? err.message : String(err)}`, 'backend');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweepTimer);
    this.hub.close();
    this.tailer?.disconnect();
    this.subscriber?.disconnect();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

function changedKeys(fields: string[]): string[] {
  const at = fields.indexOf('keys');
  return at >= 0 && fields[at + 1] ? fields[at + 1]!.split('\n') : [];
}

