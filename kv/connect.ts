// The one call an agent makes to get its KV: ask the managers which backend the cluster uses
// (ClusterSpec.kv_url, chosen at `swarm init --kv`), then hand back the managers' KV service
// (RemoteKv) or a direct Redis connection (RedisKv). Either way the caller sees only `Kv`.
import { KvError, type Kv } from './kv.js';
import { RemoteKv, type RemoteKvOptions } from './remote.js';
import { RedisKv, type RedisKvOptions } from './redis.js';

export interface ConnectKvOptions extends RemoteKvOptions {
  /** Options for the Redis backend, when the cluster uses one. */
  redis?: RedisKvOptions;
}

export async function connectKv(opts: ConnectKvOptions): Promise<Kv> {
  const remote = new RemoteKv(opts);
  let backend;
  try {
    backend = await remote.backend();
  } catch (err) {
    await remote.close();
    throw err;
  }
  if (backend.kind === 'embedded') return remote;
  await remote.close();
  try {
    return await RedisKv.connect(backend.url, opts.redis);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new KvError(`the cluster keeps its KV in Redis, which cannot be reached: ${message}`, err instanceof KvError ? err.code : 'backend');
  }
}
