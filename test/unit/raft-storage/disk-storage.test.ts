// DiskStorage and its WAL: what is saved comes back after a reopen, group commit shares fsyncs,
// a torn tail is cut off but corruption anywhere else stops start-up, snapshots compact the log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskStorage } from '../../../manager/raft/storage/disk-storage.js';
import { StorageCorruptionError, StorageFailedError } from '../../../manager/raft/storage/errors.js';
import { Snapshotter } from '../../../manager/raft/storage/snapshotter.js';
import { encodeEntriesRecord } from '../../../manager/raft/storage/wal.js';
import { CompactedError, UnavailableError } from '../../../manager/raft/core/errors.js';
import type { Entry } from '../../../manager/raft/types.js';
import { countingFs, makeEntries, seededBytes, tempDir } from './helpers.js';

const all = (s: DiskStorage): Entry[] => (s.lastIndex() >= s.firstIndex() ? s.entries(s.firstIndex(), s.lastIndex() + 1, Infinity) : []);

async function lastSegment(dir: string): Promise<string> {
  const names = (await readdir(join(dir, 'wal'))).filter((n) => n.endsWith('.wal')).sort();
  return join(dir, 'wal', names[names.length - 1]!);
}

test('round-trip: hard state, entries with binary data and metadata survive a reopen', async (t) => {
  const dir = await tempDir(t);
  const metadata = new Uint8Array([9, 8, 7]);
  const s = await DiskStorage.open(dir, { metadata });
  assert.deepEqual(s.initialState().hardState, { term: 0, vote: 0, commit: 0 });
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.lastIndex(), 0);
  const ents = makeEntries(1, 50, 2, 300);
  await s.save({ term: 2, vote: 3, commit: 40 }, ents);
  assert.deepEqual(all(s), ents);
  await s.close();

  const r = await DiskStorage.open(dir, { metadata: new Uint8Array([1]) });
  t.after(() => r.close());
  assert.deepEqual(r.metadata(), metadata, 'an existing WAL keeps the metadata it was created with');
  assert.deepEqual(r.initialState().hardState, { term: 2, vote: 3, commit: 40 });
  assert.deepEqual(all(r), ents);
  assert.equal(r.term(0), 0);
  assert.equal(r.term(50), 2);
  assert.throws(() => r.term(51), UnavailableError);
  assert.throws(() => r.entries(0, 3, Infinity), CompactedError);
  // maxSize limits the answer but always returns one entry.
  assert.equal(r.entries(1, 51, 0).length, 1);
  assert.equal(r.entries(1, 51, 2 * (300 + 16)).length, 2);
  assert.equal(r.openInfo.truncatedTail, undefined);
});

test('group commit: saves arriving during an fsync share the next one', async (t) => {
  const dir = await tempDir(t);
  const fs = countingFs();
  const s = await DiskStorage.open(dir, { fs });
  t.after(() => s.close());
  const before = fs.syncs;
  const walBefore = s.stats.syncs;

  let release!: () => void;
  fs.hold = new Promise<void>((r) => (release = r));
  const first = s.save({ term: 1, vote: 1, commit: 0 }, makeEntries(1, 1, 1));
  // Let the first flush start and block in its fsync.
  while (fs.held === 0) await new Promise((r) => setImmediate(r));
  const durable: number[] = [];
  const rest = Array.from({ length: 200 }, (_, i) => {
    const index = i + 2;
    return s.save({ term: 1, vote: 1, commit: index - 1 }, makeEntries(index, 1, 1)).then(() => durable.push(index));
  });
  assert.equal(s.lastIndex(), 0, 'nothing is visible before it is durable');
  fs.hold = null;
  release();
  await first;
  await Promise.all(rest);

  assert.equal(fs.syncs - before, 2, '201 saves, 2 fsyncs: the one in flight and one for everything that queued behind it');
  assert.equal(s.stats.syncs - walBefore, 2);
  assert.equal(s.stats.saves, 201);
  assert.deepEqual(durable, Array.from({ length: 200 }, (_, i) => i + 2), 'promises resolve in call order');
  assert.equal(s.lastIndex(), 201);
  assert.equal(s.initialState().hardState.commit, 200);
});

test('saves made in one tick share a single fsync', async (t) => {
  const dir = await tempDir(t);
  const fs = countingFs();
  const s = await DiskStorage.open(dir, { fs });
  t.after(() => s.close());
  const before = fs.syncs;
  await Promise.all(Array.from({ length: 100 }, (_, i) => s.save(null, makeEntries(i + 1, 1, 1))));
  assert.equal(fs.syncs - before, 1);
  assert.equal(s.lastIndex(), 100);
});

test('a failed fsync rejects the batch and every later save', async (t) => {
  const dir = await tempDir(t);
  const fs = countingFs();
  const s = await DiskStorage.open(dir, { fs });
  t.after(() => s.close());
  await s.save(null, makeEntries(1, 3, 1));
  fs.failSync = new Error('EIO: injected');
  await assert.rejects(s.save(null, makeEntries(4, 1, 1)), StorageFailedError);
  fs.failSync = null;
  await assert.rejects(s.save(null, makeEntries(4, 1, 1)), /an earlier write failed.*EIO: injected/);
  assert.equal(s.lastIndex(), 3, 'memory never shows what did not reach disk');
});

test('a torn record at the tail of the last segment is truncated and start-up goes on', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir);
  const ents = makeEntries(1, 20, 1, 64);
  await s.save({ term: 1, vote: 1, commit: 20 }, ents);
  await s.close();

  const seg = await lastSegment(dir);
  const goodSize = (await stat(seg)).size;
  // Half of a real record: the header promises more bytes than the file holds.
  const torn = encodeEntriesRecord(makeEntries(21, 5, 1, 64));
  await appendFile(seg, torn.subarray(0, Math.floor(torn.length / 2)));

  const r = await DiskStorage.open(dir);
  assert.deepEqual(all(r), ents);
  assert.deepEqual(r.initialState().hardState, { term: 1, vote: 1, commit: 20 });
  assert.deepEqual(r.openInfo.truncatedTail, { file: seg, offset: goodSize, bytes: Math.floor(torn.length / 2) });
  assert.equal((await stat(seg)).size, goodSize, 'the torn bytes are cut off the file');
  // Appending after the cut works and survives another reopen.
  await r.save(null, makeEntries(21, 2, 1));
  await r.close();
  const again = await DiskStorage.open(dir);
  t.after(() => again.close());
  assert.equal(again.lastIndex(), 22);
  assert.equal(again.openInfo.truncatedTail, undefined);
});

test('a complete last record with a bad CRC, or zeros, at the tail are torn writes too', async (t) => {
  for (const kind of ['bad-crc', 'zeros', 'garbage']) {
    const dir = await tempDir(t);
    const s = await DiskStorage.open(dir);
    await s.save(null, makeEntries(1, 10, 1));
    await s.close();
    const seg = await lastSegment(dir);
    if (kind === 'bad-crc') {
      const rec = Buffer.from(encodeEntriesRecord(makeEntries(11, 1, 1)));
      rec[rec.length - 1]! ^= 0x40;
      await appendFile(seg, rec);
    } else if (kind === 'zeros') {
      await appendFile(seg, new Uint8Array(4096));
    } else {
      await appendFile(seg, seededBytes(99, 777));
    }
    const r = await DiskStorage.open(dir);
    assert.equal(r.lastIndex(), 10, kind);
    assert.ok(r.openInfo.truncatedTail, kind);
    await r.close();
  }
});

test('an empty last segment (crash right after creating it) is removed and start-up goes on', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir);
  await s.save({ term: 1, vote: 1, commit: 3 }, makeEntries(1, 3, 1));
  await s.close();
  const empty = join(dir, 'wal', '0000000000000002-0000000000000004.wal');
  await writeFile(empty, new Uint8Array(0));
  const r = await DiskStorage.open(dir);
  assert.equal(r.lastIndex(), 3);
  assert.deepEqual(r.openInfo.truncatedTail, { file: empty, offset: 0, bytes: 0 });
  assert.deepEqual(await readdir(join(dir, 'wal')), ['0000000000000001-0000000000000001.wal']);
  await r.save(null, makeEntries(4, 1, 1));
  await r.close();
  const again = await DiskStorage.open(dir);
  t.after(() => again.close());
  assert.equal(again.lastIndex(), 4);
});

test('a new last segment whose header was torn is dropped whole, keeping the older segment', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir, { segmentBytes: 1024 });
  await s.save({ term: 1, vote: 1, commit: 0 }, makeEntries(1, 20, 1, 64)); // fills segment 1
  await s.save({ term: 1, vote: 1, commit: 21 }, makeEntries(21, 1, 1, 64)); // rolls to segment 2
  const segs = s.segmentPaths();
  await s.close();
  assert.equal(segs.length, 2);
  // Keep only the first header record (META) of segment 2, as if the roll's write was torn.
  const buf = await readFile(segs[1]!);
  await writeFile(segs[1]!, buf.subarray(0, 9 + buf.readUInt32LE(0)));
  const r = await DiskStorage.open(dir, { segmentBytes: 1024 });
  t.after(() => r.close());
  assert.equal(r.lastIndex(), 20, 'the batch that rolled was never acknowledged');
  assert.deepEqual(r.segmentPaths(), [segs[0]]);
  assert.equal(r.openInfo.truncatedTail?.offset, 0);
  assert.deepEqual(r.initialState().hardState, { term: 1, vote: 1, commit: 0 });
});

test('corruption in the middle of a segment refuses to start, naming the file and offset', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir);
  await s.save(null, makeEntries(1, 10, 1, 100));
  await s.save(null, makeEntries(11, 10, 1, 100));
  await s.save({ term: 1, vote: 0, commit: 5 }, []);
  await s.close();

  const seg = await lastSegment(dir);
  const buf = await readFile(seg);
  // Find the first ENTRIES record: header records come first; locate it by scanning frames.
  let off = 0;
  while (buf[off + 4] !== 2) off += 9 + buf.readUInt32LE(off);
  buf[off + 9 + 50]! ^= 0x01; // flip a bit inside its payload; valid records follow
  await writeFile(seg, buf);

  await assert.rejects(DiskStorage.open(dir), (err: unknown) => {
    assert.ok(err instanceof StorageCorruptionError);
    assert.equal(err.file, seg);
    assert.equal(err.offset, off);
    assert.match(err.message, new RegExp(`${seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is corrupt at byte offset ${off}: CRC mismatch`));
    return true;
  });
});

test('damage at the end of a segment that is not the last one is corruption, not a torn tail', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir, { segmentBytes: 2048 });
  for (let i = 0; i < 10; i++) await s.save(null, makeEntries(i * 10 + 1, 10, 1, 64));
  const segs = s.segmentPaths();
  await s.close();
  assert.ok(segs.length >= 3, `expected several segments, got ${segs.length}`);
  const first = segs[0]!;
  const size = (await stat(first)).size;
  await appendFile(first, new Uint8Array(5));
  await assert.rejects(DiskStorage.open(dir), (err: unknown) => err instanceof StorageCorruptionError && err.file === first && err.offset === size);
});

test('snapshots: compaction deletes old segments, replay starts after the snapshot', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir, { segmentBytes: 4096, catchUpEntries: 10 });
  for (let i = 0; i < 30; i++) await s.save({ term: 1, vote: 1, commit: (i + 1) * 10 }, makeEntries(i * 10 + 1, 10, 1, 100));
  const before = s.segmentPaths();
  assert.ok(before.length >= 5, `expected several segments, got ${before.length}`);

  const cs = { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  const data = seededBytes(5, 100_000);
  const snap = await s.createSnapshot(250, cs, data);
  assert.deepEqual(snap.metadata, { index: 250, term: 1, confState: cs });
  assert.equal(s.firstIndex(), 241, 'catch-up entries stay in memory below the snapshot');
  assert.equal(s.lastIndex(), 300);
  const deleted = await s.releaseTo(250);
  assert.ok(deleted >= 3, `deleted ${deleted}`);
  const after = s.segmentPaths();
  assert.deepEqual(after, before.slice(deleted));
  assert.deepEqual((await readdir(join(dir, 'wal'))).sort(), after.map((p) => p.slice(p.lastIndexOf('/') + 1)));
  await s.close();

  const r = await DiskStorage.open(dir, { segmentBytes: 4096 });
  t.after(() => r.close());
  assert.equal(r.firstIndex(), 251);
  assert.equal(r.lastIndex(), 300);
  assert.deepEqual(all(r), makeEntries(251, 50, 1, 100));
  assert.equal(r.term(250), 1);
  assert.throws(() => r.term(249), CompactedError);
  assert.deepEqual(r.snapshot().metadata, snap.metadata);
  assert.deepEqual(r.snapshot().data, data);
  assert.deepEqual(r.initialState().confState, cs);
  assert.equal(r.initialState().hardState.commit, 300);
});

test('only the newest snapshots are kept; a file the WAL never recorded is ignored', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir, { snapshotsRetained: 2 });
  await s.save(null, makeEntries(1, 40, 1));
  for (const i of [10, 20, 30]) await s.createSnapshot(i, null, seededBytes(i, 10));
  assert.deepEqual((await readdir(join(dir, 'snap'))).sort(), ['0000000000000001-0000000000000014.snap', '0000000000000001-000000000000001e.snap']);
  await s.close();
  // A crash after writing a snapshot file but before its WAL record: the file is not used.
  await new Snapshotter(join(dir, 'snap')).save({ metadata: { index: 40, term: 1, confState: s.initialState().confState }, data: new Uint8Array(1) });
  const r = await DiskStorage.open(dir);
  t.after(() => r.close());
  assert.equal(r.snapshot().metadata.index, 30);
  assert.equal(r.lastIndex(), 40);
  assert.ok(!(await readdir(join(dir, 'snap'))).some((n) => n.includes('28.snap')), 'the unrecorded file is removed');
});

test('a damaged snapshot file refuses to start, naming the file', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir);
  await s.save(null, makeEntries(1, 5, 1));
  await s.createSnapshot(5, null, seededBytes(1, 1000));
  await s.close();
  const file = join(dir, 'snap', '0000000000000001-0000000000000005.snap');
  const buf = await readFile(file);
  buf[500]! ^= 0xff;
  await writeFile(file, buf);
  await assert.rejects(DiskStorage.open(dir), (err: unknown) => err instanceof StorageCorruptionError && err.file === file && /CRC mismatch/.test(err.message));
});

test('a later record at an existing index overwrites the conflicting suffix', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir);
  await s.save({ term: 1, vote: 1, commit: 3 }, makeEntries(1, 10, 1));
  await s.save({ term: 2, vote: 2, commit: 3 }, makeEntries(6, 3, 2));
  const expected = [...makeEntries(1, 5, 1), ...makeEntries(6, 3, 2)];
  assert.deepEqual(all(s), expected);
  await assert.rejects(s.save(null, makeEntries(10, 1, 2)), /cannot append entry 10: the log ends at 8/);
  await s.close();
  const r = await DiskStorage.open(dir);
  t.after(() => r.close());
  assert.deepEqual(all(r), expected);
  assert.equal(r.lastIndex(), 8);
  assert.deepEqual(r.initialState().hardState, { term: 2, vote: 2, commit: 3 });
});

test("a leader's snapshot beyond the log replaces it; entries after it follow", async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir);
  await s.save({ term: 1, vote: 1, commit: 3 }, makeEntries(1, 5, 1));
  const cs = { voters: [1, 2], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  // Overlapping calls, as a pipelining runner would make them: call order is WAL order.
  const p1 = s.saveSnapshot({ metadata: { index: 100, term: 3, confState: cs }, data: seededBytes(3, 5000) });
  const p2 = s.save({ term: 3, vote: 0, commit: 100 }, makeEntries(101, 5, 3));
  await Promise.all([p1, p2]);
  assert.equal(s.firstIndex(), 101);
  assert.equal(s.lastIndex(), 105);
  await s.close();
  const r = await DiskStorage.open(dir);
  t.after(() => r.close());
  assert.equal(r.firstIndex(), 101);
  assert.deepEqual(all(r), makeEntries(101, 5, 3));
  assert.equal(r.term(100), 3);
  assert.deepEqual(r.initialState(), { hardState: { term: 3, vote: 0, commit: 100 }, confState: cs });
});

test('100,000 small entries written in batches come back intact after a reopen', async (t) => {
  const dir = await tempDir(t);
  const s = await DiskStorage.open(dir, { segmentBytes: 1024 * 1024 });
  const total = 100_000;
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i += 500) pending.push(s.save({ term: 1, vote: 1, commit: i }, makeEntries(i + 1, 500, 1, 8)));
  await Promise.all(pending);
  assert.equal(s.lastIndex(), total);
  assert.ok(s.stats.syncs < pending.length, `group commit: ${s.stats.syncs} fsyncs for ${pending.length} saves`);
  await s.close();
  const r = await DiskStorage.open(dir, { segmentBytes: 1024 * 1024 });
  t.after(() => r.close());
  assert.equal(r.firstIndex(), 1);
  assert.equal(r.lastIndex(), total);
  const got = all(r);
  assert.equal(got.length, total);
  for (const i of [0, 1, 4999, 50_000, 99_999]) assert.deepEqual(got[i], makeEntries(i + 1, 1, 1, 8)[0]);
  for (let i = 0; i < total; i++) if (got[i]!.index !== i + 1) assert.fail(`entry ${i} has index ${got[i]!.index}`);
});
