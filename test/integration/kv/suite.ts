// The KV specification, written once and run against every backend (embedded.test.ts,
// redis.test.ts): whatever serves the peer table, agents see the same semantics.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { KvError, type Kv, type KvEntry } from '../../../kv/kv.js';

export interface Backend {
  /** A new client on the same store as every other client this backend opened. */
  open(): Promise<Kv>;
  /**
   * The TTL of the expiry case's session (default 300 ms). A backend whose every renewal is a
   * round trip through consensus and an fsync (the managers' Raft log, on a machine shared with
   * other tests) needs more headroom than the time between two renewals the case allows.
   */
  sessionTtlMs?: number;
}

/** Makes a fresh, empty store for one test case; registers its cleanup with `t.after`. */
export type BackendFactory = (t: TestContext) => Promise<Backend>;

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : new TextDecoder().decode(b));
const keysOf = (entries: KvEntry[]): string[] => entries.map((e) => e.key);

/** Polls until `check` is true; fails naming `what` after the deadline. Never a fixed sleep. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function kvSuite(t: TestContext, newBackend: BackendFactory): Promise<void> {
  const clientOf = async (t: TestContext): Promise<{ kv: Kv; backend: Backend }> => {
    const backend = await newBackend(t);
    return { kv: await backend.open(), backend };
  };

  await t.test('a put creates with createIndex = modifyIndex; later puts raise modifyIndex only', async (t) => {
    const { kv } = await clientOf(t);
    assert.equal(await kv.put('peers/a', enc('1')), true);
    const first = (await kv.get('peers/a'))!;
    assert.equal(first.createIndex, first.modifyIndex);
    assert.ok(first.createIndex > 0);
    assert.equal(first.lockIndex, 0);
    assert.equal(first.session, undefined);
    assert.equal(await kv.put('peers/b', enc('x')), true);
    assert.equal(await kv.put('peers/a', enc('2')), true);
    const second = (await kv.get('peers/a'))!;
    const other = (await kv.get('peers/b'))!;
    assert.equal(second.createIndex, first.createIndex);
    assert.ok(other.modifyIndex > first.modifyIndex, 'indexes grow across keys');
    assert.ok(second.modifyIndex > other.modifyIndex, 'indexes grow across keys');
    assert.equal(dec(second.value), '2');
    assert.equal(await kv.get('peers/missing'), undefined);
  });

  await t.test('values are bytes and round-trip exactly', async (t) => {
    const { kv } = await clientOf(t);
    const value = Uint8Array.from([0, 255, 10, 13, 0x80, 1, 2, 3]);
    await kv.put('bin', value);
    assert.deepEqual((await kv.get('bin'))!.value, value);
    await kv.put('empty', new Uint8Array(0));
    assert.equal((await kv.get('empty'))!.value.byteLength, 0);
  });

  await t.test('check-and-set: the current modifyIndex writes, a stale one does not; cas=0 only creates', async (t) => {
    const { kv } = await clientOf(t);
    assert.equal(await kv.put('cfg', enc('v1'), { cas: 0 }), true);
    assert.equal(await kv.put('cfg', enc('v2'), { cas: 0 }), false, 'cas=0 on an existing key');
    const v1 = (await kv.get('cfg'))!;
    assert.equal(await kv.put('cfg', enc('v2'), { cas: v1.modifyIndex }), true);
    assert.equal(await kv.put('cfg', enc('v3'), { cas: v1.modifyIndex }), false, 'stale cas');
    assert.equal(dec((await kv.get('cfg'))!.value), 'v2');
    assert.equal(await kv.put('absent', enc('x'), { cas: 5 }), false, 'cas>0 on a missing key');
    const v2 = (await kv.get('cfg'))!;
    assert.equal(await kv.delete('cfg', { cas: v1.modifyIndex }), false, 'stale cas delete');
    assert.ok(await kv.get('cfg'));
    assert.equal(await kv.delete('cfg', { cas: v2.modifyIndex }), true);
    assert.equal(await kv.get('cfg'), undefined);
    assert.equal(await kv.delete('cfg'), true, 'deleting a missing key is fine');
  });

  await t.test('check-and-set makes concurrent read-modify-write from two clients lose nothing', async (t) => {
    const { backend } = await clientOf(t);
    const clients = [await backend.open(), await backend.open()];
    const perClient = 15;
    await Promise.all(
      clients.map(async (kv) => {
        for (let done = 0; done < perClient; ) {
          const cur = await kv.get('counter');
          const n = cur ? Number(dec(cur.value)) : 0;
          if (await kv.put('counter', enc(String(n + 1)), { cas: cur?.modifyIndex ?? 0 })) done++;
        }
      }),
    );
    assert.equal(dec((await clients[0]!.get('counter'))!.value), String(2 * perClient));
  });

  await t.test('recursive get and delete cover a directory, never its siblings (a/b vs a/bc)', async (t) => {
    const { kv } = await clientOf(t);
    for (const key of ['a/b', 'a/b/c', 'a/b/d/e', 'a/bc', 'a/bc/x', 'a/a', 'b']) await kv.put(key, enc(key));
    assert.deepEqual(keysOf(await kv.list('a/b', { recurse: true })), ['a/b', 'a/b/c', 'a/b/d/e']);
    assert.deepEqual(keysOf(await kv.list('a/b/', { recurse: true })), ['a/b', 'a/b/c', 'a/b/d/e'], 'a trailing / names the same directory');
    assert.deepEqual(keysOf(await kv.list('a/b')), ['a/b/c'], 'without recurse: direct children only');
    assert.deepEqual(keysOf(await kv.list('a')), ['a/a', 'a/b', 'a/bc']);
    assert.deepEqual(keysOf(await kv.list('', { recurse: true })), ['a/a', 'a/b', 'a/b/c', 'a/b/d/e', 'a/bc', 'a/bc/x', 'b']);
    assert.deepEqual(await kv.keys('a'), ['a/a', 'a/b', 'a/b/c', 'a/b/d/e', 'a/bc', 'a/bc/x']);
    assert.deepEqual(await kv.keys('a', { separator: '/' }), ['a/a', 'a/b', 'a/b/', 'a/bc', 'a/bc/']);
    assert.deepEqual(await kv.keys('', { separator: '/' }), ['a/', 'b']);
    assert.equal(await kv.delete('a/b', { recurse: true }), true);
    assert.deepEqual(await kv.keys(''), ['a/a', 'a/bc', 'a/bc/x', 'b']);
    await kv.delete('', { recurse: true });
    assert.deepEqual(await kv.keys(''), []);
  });

  await t.test('a watch wakes when another writer moves the key past the index', async (t) => {
    const { kv, backend } = await clientOf(t);
    const writer = await backend.open();
    await kv.put('w/key', enc('old'));
    const start = await kv.watch('w/key', { index: 0, timeoutMs: 0 });
    assert.equal(dec(start.entries[0]?.value), 'old');
    const watching = kv.watch('w/key', { index: start.index, timeoutMs: 30_000 });
    await writer.put('w/key', enc('new'));
    const woke = await watching;
    assert.equal(woke.timedOut, false);
    assert.ok(woke.index > start.index, `index ${woke.index} passed ${start.index}`);
    assert.equal(dec(woke.entries[0]?.value), 'new');
    assert.equal(woke.index >= woke.entries[0]!.modifyIndex, true);
    // A watch that starts after the change (an old index) returns at once.
    const late = await kv.watch('w/key', { index: start.index, timeoutMs: 30_000 });
    assert.equal(late.timedOut, false);
    // Deleting wakes a key watch too.
    const deleting = kv.watch('w/key', { index: woke.index, timeoutMs: 30_000 });
    await writer.delete('w/key');
    const gone = await deleting;
    assert.equal(gone.timedOut, false);
    assert.deepEqual(gone.entries, []);
  });

  await t.test('a watch times out with the same index when nothing it watches changes', async (t) => {
    const { kv } = await clientOf(t);
    await kv.put('w/key', enc('v'));
    const start = await kv.watch('w/key', { index: 0, timeoutMs: 0 });
    const watching = kv.watch('w/key', { index: start.index, timeoutMs: 300 });
    await kv.put('w/keyx', enc('a sibling, not the key'));
    await kv.put('w/key/child', enc('under the key, but this is not a prefix watch'));
    const result = await watching;
    assert.equal(result.timedOut, true);
    assert.equal(result.index, start.index);
    assert.equal(dec(result.entries[0]?.value), 'v');
  });

  await t.test('a prefix watch wakes on a nested key and not on a sibling directory', async (t) => {
    const { kv, backend } = await clientOf(t);
    const writer = await backend.open();
    await kv.put('endpoints/net1/ep0', enc('0'));
    const start = await kv.watch('endpoints/net1', { index: 0, recurse: true, timeoutMs: 0 });
    assert.deepEqual(keysOf(start.entries), ['endpoints/net1/ep0']);
    await writer.put('endpoints/net10/ep9', enc('sibling'));
    const quiet = await kv.watch('endpoints/net1', { index: start.index, recurse: true, timeoutMs: 200 });
    assert.equal(quiet.timedOut, true, 'a write to endpoints/net10 must not wake endpoints/net1');
    const watching = kv.watch('endpoints/net1/', { index: quiet.index, recurse: true, timeoutMs: 30_000 });
    await writer.put('endpoints/net1/deep/ep1', enc('1'));
    const woke = await watching;
    assert.equal(woke.timedOut, false);
    assert.ok(woke.index > start.index);
    assert.deepEqual(keysOf(woke.entries), ['endpoints/net1/deep/ep1', 'endpoints/net1/ep0']);
  });

  await t.test('an aborted watch rejects with the abort reason', async (t) => {
    const { kv } = await clientOf(t);
    await kv.put('w/key', enc('v'));
    const start = await kv.watch('w/key', { index: 0, timeoutMs: 0 });
    const controller = new AbortController();
    const watching = kv.watch('w/key', { index: start.index, timeoutMs: 30_000, signal: controller.signal });
    controller.abort(new Error('agent leaving'));
    await assert.rejects(watching, /agent leaving/);
  });

  await t.test('session keys vanish when the TTL passes; renewing keeps them', async (t) => {
    const { kv, backend } = await clientOf(t);
    const observer = await backend.open();
    const ttlMs = backend.sessionTtlMs ?? 300;
    const id = await kv.sessionCreate({ ttlMs, node: 'node-1' });
    assert.equal((await kv.sessionInfo(id))?.node, 'node-1');
    assert.equal(await kv.put('endpoints/n/ep1', enc('1'), { session: id }), true);
    assert.equal(await kv.put('endpoints/n/ep2', enc('2'), { session: id }), true);
    await kv.put('endpoints/n/static', enc('no session'));
    const held = (await kv.get('endpoints/n/ep1'))!;
    assert.equal(held.session, id);
    assert.equal(held.lockIndex, 1);

    // Renew well inside the TTL for several TTLs: the keys stay. (The sleep paces the renewals;
    // the check is skipped for a round where the machine stalled past half the TTL.)
    let renewedAt = Date.now();
    for (let round = 0; round < 10; round++) {
      await sleep(ttlMs / 6);
      if (Date.now() - renewedAt < ttlMs / 2) {
        assert.equal((await observer.keys('endpoints/n')).length, 3, `round ${round}: keys kept while renewed`);
      }
      await kv.sessionRenew(id);
      renewedAt = Date.now();
    }

    const before = await observer.watch('endpoints/n', { index: 0, recurse: true, timeoutMs: 0 });
    await waitFor('the session keys to vanish after the TTL', async () => (await observer.keys('endpoints/n')).length === 1);
    assert.deepEqual(await observer.keys('endpoints/n'), ['endpoints/n/static']);
    const after = await observer.watch('endpoints/n', { index: before.index, recurse: true, timeoutMs: 0 });
    assert.ok(after.index > before.index, `expiry deleted the keys at a new index: ${before.index} -> ${after.index}`);
    await waitFor('the session to be gone', async () => (await kv.sessionInfo(id)) === undefined);
    await assert.rejects(kv.sessionRenew(id), (err: Error) => err instanceof KvError && err.message.includes(id));
    await assert.rejects(kv.put('endpoints/n/ep3', enc('3'), { session: id }), (err: Error) => err.message.includes(id));
  });

  await t.test('destroying a session deletes its keys; another session cannot take a held key', async (t) => {
    const { kv, backend } = await clientOf(t);
    const other = await backend.open();
    const id = await kv.sessionCreate({ ttlMs: 60_000 });
    const rival = await other.sessionCreate({ ttlMs: 60_000 });
    assert.equal(await kv.put('locks/leader', enc('me'), { session: id }), true);
    assert.equal(await other.put('locks/leader', enc('them'), { session: rival }), false, 'held by another session');
    assert.equal(await kv.put('locks/leader', enc('me again'), { session: id }), true, 'the holder may write');
    assert.equal((await kv.get('locks/leader'))!.lockIndex, 1, 're-acquiring by the holder does not bump lockIndex');
    const watching = other.watch('locks/leader', { index: (await kv.get('locks/leader'))!.modifyIndex, timeoutMs: 30_000 });
    await kv.sessionDestroy(id);
    assert.equal(await kv.get('locks/leader'), undefined);
    assert.equal((await watching).timedOut, false, 'destroy wakes watchers');
    assert.equal(await other.put('locks/leader', enc('them'), { session: rival }), true, 'free after destroy');
    assert.equal((await other.get('locks/leader'))!.lockIndex, 1);
    await kv.sessionDestroy(id); // already gone: not an error
    await other.delete('locks/leader');
    await other.sessionDestroy(rival);
  });

  await t.test('bad input is refused with an error naming the value', async (t) => {
    const { kv } = await clientOf(t);
    const invalid = (pattern: RegExp) => (err: Error) => err instanceof KvError && err.code === 'invalid' && pattern.test(err.message);
    await assert.rejects(kv.put('', enc('x')), invalid(/key ""/));
    await assert.rejects(kv.put('a/../b', enc('x')), invalid(/"a\/\.\.\/b".*'\.\.'/));
    await assert.rejects(kv.get('a//b'), invalid(/"a\/\/b"/));
    await assert.rejects(kv.put('/abs', enc('x')), invalid(/"\/abs"/));
    await assert.rejects(kv.put('line\nbreak', enc('x')), invalid(/control character/));
    await assert.rejects(kv.list('../up', { recurse: true }), invalid(/"\.\.\/up"/));
    await assert.rejects(kv.sessionCreate({ ttlMs: -5 }), invalid(/TTL -5/));
    await assert.rejects(kv.sessionCreate({ ttlMs: 1.5 }), invalid(/TTL 1\.5/));
    await assert.rejects(kv.put('k', enc('x'), { cas: -1 }), invalid(/cas -1/));
    await assert.rejects(kv.delete('a', { recurse: true, cas: 3 }), invalid(/"a"/));
    await assert.rejects(kv.watch('k', { index: -2, timeoutMs: 10 }), invalid(/index -2/));
    await assert.rejects(kv.sessionRenew('no such session!'), invalid(/"no such session!"/));
    await assert.rejects(
      kv.put('k', enc('x'), { session: '00000000-0000-0000-0000-000000000000' }),
      (err: Error) => err instanceof KvError && err.code === 'no-session' && /00000000-0000-0000-0000-000000000000.*"k"/.test(err.message),
    );
    await assert.rejects(kv.put('big', new Uint8Array(512 * 1024 + 1)), invalid(/"big".*524289 bytes/));
    assert.deepEqual(await kv.keys(''), [], 'nothing was written');
  });

  await t.test('a closed client refuses calls and ends its watches', async (t) => {
    const { kv } = await clientOf(t);
    await kv.put('k', enc('v'));
    const start = await kv.watch('k', { index: 0, timeoutMs: 0 });
    const watching = kv.watch('k', { index: start.index, timeoutMs: 30_000 });
    await kv.close();
    await assert.rejects(watching, (err: Error) => err instanceof KvError && err.code === 'closed');
    await assert.rejects(kv.get('k'), /closed/);
  });
}
