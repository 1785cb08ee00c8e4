// MemoryStorage: the read side the core relies on, with etcd's index conventions (a dummy entry
// at the snapshot index, CompactedError below it, UnavailableError past the end).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompactedError, MemoryStorage, SnapshotOutOfDateError, UnavailableError, emptyConfState } from '../../../manager/raft/core/index.js';
import type { Entry } from '../../../manager/raft/types.js';

const ent = (index: number, term: number, size = 0): Entry => ({ index, term, type: 0, data: new Uint8Array(size) });

function storageWith(ents: Entry[]): MemoryStorage {
  const s = new MemoryStorage();
  s.append(ents);
  return s;
}

test('an empty storage starts at index 1 with nothing stored', () => {
  const s = new MemoryStorage();
  assert.equal(s.firstIndex(), 1);
  assert.equal(s.lastIndex(), 0);
  assert.equal(s.term(0), 0);
  assert.throws(() => s.term(1), UnavailableError);
});

test('entries and terms are served in [firstIndex, lastIndex] and refused outside', () => {
  const s = storageWith([ent(1, 1), ent(2, 1), ent(3, 2), ent(4, 3)]);
  assert.deepEqual(s.entries(2, 4, Infinity).map((e) => e.index), [2, 3]);
  assert.equal(s.term(3), 2);
  s.compact(2);
  assert.equal(s.firstIndex(), 3);
  assert.equal(s.term(2), 1, 'the term of the compacted index is kept for matching');
  assert.throws(() => s.term(1), CompactedError);
  assert.throws(() => s.entries(2, 4, Infinity), CompactedError);
  assert.throws(() => s.term(5), UnavailableError);
  assert.throws(() => s.compact(1), CompactedError);
});

test('entries respects maxSize but always returns at least one entry', () => {
  const s = storageWith([ent(1, 1, 100), ent(2, 1, 100), ent(3, 1, 100)]);
  assert.equal(s.entries(1, 4, 0).length, 1);
  assert.equal(s.entries(1, 4, 240).length, 2);
  assert.equal(s.entries(1, 4, Infinity).length, 3);
});

test('append truncates a conflicting tail and ignores compacted prefixes', () => {
  const s = storageWith([ent(1, 1), ent(2, 1), ent(3, 1)]);
  s.append([ent(2, 2), ent(3, 2), ent(4, 2)]);
  assert.deepEqual([1, 2, 3, 4].map((i) => s.term(i)), [1, 2, 2, 2]);
  s.compact(3);
  s.append([ent(2, 2), ent(3, 2), ent(4, 2), ent(5, 3)]);
  assert.equal(s.lastIndex(), 5);
  assert.equal(s.term(5), 3);
  assert.throws(() => s.append([ent(9, 3)]), /missing log entry/);
});

test('createSnapshot records index, term and conf state; older snapshots are refused', () => {
  const s = storageWith([ent(1, 1), ent(2, 2), ent(3, 2)]);
  const cs = { ...emptyConfState(), voters: [1, 2, 3] };
  const snap = s.createSnapshot(2, cs, new Uint8Array([7]));
  assert.deepEqual(snap.metadata, { index: 2, term: 2, confState: cs });
  assert.throws(() => s.createSnapshot(1, cs, new Uint8Array(0)), SnapshotOutOfDateError);
  assert.deepEqual(s.initialState().confState, cs);
});

test('applySnapshot replaces the log', () => {
  const s = storageWith([ent(1, 1), ent(2, 1)]);
  s.applySnapshot({ metadata: { index: 10, term: 4, confState: emptyConfState() }, data: new Uint8Array(0) });
  assert.equal(s.firstIndex(), 11);
  assert.equal(s.lastIndex(), 10);
  assert.equal(s.term(10), 4);
  assert.throws(() => s.applySnapshot({ metadata: { index: 5, term: 4, confState: emptyConfState() }, data: new Uint8Array(0) }), SnapshotOutOfDateError);
});
