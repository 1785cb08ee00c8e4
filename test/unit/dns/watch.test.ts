// The peer-table watch against a scripted KV: it starts from index 0, follows the returned index,
// rebuilds only on real changes, and rides out KV errors (starting over from a fresh read).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeerTableWatch } from '../../../agent/network/dns/watch.js';
import type { Kv, KvEntry, WatchOptions, WatchResult } from '../../../kv/kv.js';
import { silentLogger } from '../../../util/log.js';
import { waitFor } from '../../support/wait.js';
import { peerEntry } from './peers.js';

type Step = WatchResult | Error;

/** Answers watch() from a script, then blocks until aborted; records every call. */
function scriptedKv(steps: Step[]): { kv: Kv; calls: { key: string; index: number; recurse: boolean }[] } {
  const calls: { key: string; index: number; recurse: boolean }[] = [];
  const watch = (key: string, opts: WatchOptions): Promise<WatchResult> => {
    calls.push({ key, index: opts.index, recurse: opts.recurse ?? false });
    const step = steps.shift();
    if (step instanceof Error) return Promise.reject(step);
    if (step) return Promise.resolve(step);
    return new Promise((_, reject) => opts.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }));
  };
  const unused = () => Promise.reject(new Error('not used by the watch'));
  const kv: Kv = { watch, get: unused, list: unused, keys: unused, put: unused, delete: unused, sessionCreate: unused, sessionRenew: unused, sessionDestroy: unused, sessionInfo: unused, close: () => Promise.resolve() };
  return { kv, calls };
}

const web1 = peerEntry('n1', { ip: '10.0.0.11', serviceName: 'web', endpointMode: 'dnsrr' });
const web2 = peerEntry('n1', { ip: '10.0.0.12', serviceName: 'web', slot: 2, endpointMode: 'dnsrr' });
const result = (index: number, entries: KvEntry[], timedOut = false): WatchResult => ({ index, entries, timedOut });

test('follows the index, rebuilds on change only, survives errors', async (t) => {
  const { kv, calls } = scriptedKv([
    result(10, [web1]),
    result(10, [web1], true), // timeout: nothing changed
    result(12, [web1]), // woke for a key elsewhere in the KV: same rows, no rebuild
    new Error('connection reset'),
    result(15, [web1, web2]),
  ]);
  const changes: string[][] = [];
  const watch = new PeerTableWatch({ kv, networkId: 'n1', prefix: 'endpoints', timeoutMs: 1_000, log: silentLogger, onChange: (r) => changes.push(r.resolve('web')?.ips ?? []) });
  t.after(() => watch.stop());
  watch.start();
  assert.equal(await watch.ready(5_000), true);
  await waitFor('the second task seen after the error', () => changes.length === 2);
  assert.deepEqual(changes, [['10.0.0.11'], ['10.0.0.11', '10.0.0.12']]);
  assert.deepEqual(
    calls.map((c) => c.index),
    [0, 10, 10, 12, 0, 15],
    'index 0 first, then the last index; after an error a fresh read from 0',
  );
  assert.ok(calls.every((c) => c.key === 'endpoints/n1' && c.recurse));
  assert.deepEqual(watch.records.resolve('tasks.web')?.ips, ['10.0.0.11', '10.0.0.12']);
});

test('ready() says false when the KV never answers in time; stop() ends the loop', async () => {
  const { kv } = scriptedKv([new Error('down'), new Error('down'), new Error('down')]);
  const watch = new PeerTableWatch({ kv, networkId: 'n1', prefix: 'endpoints', timeoutMs: 1_000, log: silentLogger, onChange: () => {} });
  watch.start();
  assert.equal(await watch.ready(20), false);
  await watch.stop();
});
