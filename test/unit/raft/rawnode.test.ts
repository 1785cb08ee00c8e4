// RawNode's Ready/advance contract, snapshots for lagging followers (InstallSnapshot), restart
// from storage, and the progress tracker's flow-control pieces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Inflights, Progress, ProgressState as PS, majorityCommitted } from '../../../manager/raft/core/tracker.js';
import { MemoryStorage, ProgressState, RawNode, SeededRandom, StateType, StepLocalMsgError } from '../../../manager/raft/core/index.js';
import { MessageType } from '../../../manager/raft/types.js';
import { TestCluster, bootStorage, data } from './harness.js';

test('ready hands out entries to persist, messages to send after persisting, and committed entries to apply', () => {
  const storage = bootStorage([1]);
  const raw = new RawNode({ id: 1, applied: 1, random: new SeededRandom(1) }, storage);
  raw.campaign();
  let rd = raw.ready();
  assert.equal(rd.softState?.raftState, StateType.Leader);
  assert.equal(rd.hardState?.term, 2);
  assert.equal(rd.mustSync, true);
  assert.equal(rd.entries.length, 1, 'the empty entry of the new term');
  // A single voter commits at once: the entry is handed out to apply in the same Ready, after
  // being persisted.
  assert.deepEqual(rd.committedEntries.map((e) => e.index), [2]);
  storage.append(rd.entries);
  storage.setHardState(rd.hardState!);
  raw.advance();
  assert.equal(raw.hasReady(), false);
  raw.propose(data('x'));
  assert.equal(raw.hasReady(), true);
  rd = raw.ready();
  assert.throws(() => raw.ready(), /before advance/);
  assert.equal(rd.entries.length, 1);
  assert.equal(rd.committedEntries.length, 1);
  storage.append(rd.entries);
  raw.advance();
  assert.equal(raw.status().applied, 3);
});

test('a message type only the node itself may generate is refused from the network', () => {
  const raw = new RawNode({ id: 1 }, bootStorage([1, 2]));
  assert.throws(() => raw.step({ type: MessageType.MsgHup, to: 1, from: 2, term: 0, logTerm: 0, index: 0, entries: [], commit: 0, reject: false, rejectHint: 0, context: new Uint8Array(0) }), StepLocalMsgError);
});

test('a restarted node recovers term, vote, log and commit from storage', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.propose(1, 'a');
  const before = c.raft(2).hardState();
  const storage = c.node(2).storage;
  const raw = new RawNode({ id: 2, applied: 1 }, storage);
  assert.deepEqual(raw.raft.hardState(), before);
  assert.equal(raw.raft.raftLog.lastIndex(), c.raft(2).raftLog.lastIndex());
  // Committed but unapplied entries are handed out again.
  const rd = raw.ready();
  assert.ok(rd.committedEntries.some((e) => new TextDecoder().decode(e.data) === 'a'));
});

test('InstallSnapshot: a follower whose next entries were compacted receives a snapshot', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(3);
  for (let i = 0; i < 10; i++) c.propose(1, `e${i}`);
  const s1 = c.node(1).storage;
  const applied = c.raft(1).raftLog.applied;
  s1.createSnapshot(applied, c.node(1).confState, new Uint8Array([42]));
  s1.compact(applied);
  c.heal();
  c.delivered = [];
  c.tickAll(3);
  const snaps = c.delivered.filter((m) => m.type === MessageType.MsgSnap);
  assert.equal(snaps.length, 1);
  assert.equal(c.node(3).storage.snapshot().metadata.index, applied);
  assert.deepEqual([...c.node(3).storage.snapshot().data], [42]);
  c.node(1).raw.reportSnapshot(3, true);
  c.propose(1, 'after');
  assert.deepEqual(c.appliedData(3), ['after']);
  assert.equal(c.raft(1).trk.progress.get(3)!.state, ProgressState.Replicate);
});

test('a failed snapshot is retried', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(3);
  for (let i = 0; i < 5; i++) c.propose(1, `e${i}`);
  const applied = c.raft(1).raftLog.applied;
  c.node(1).storage.createSnapshot(applied, c.node(1).confState, new Uint8Array(0));
  c.node(1).storage.compact(applied);
  c.heal();
  c.drop = (m) => m.type === MessageType.MsgSnap;
  c.tickAll(3);
  assert.equal(c.raft(1).trk.progress.get(3)!.state, ProgressState.Snapshot);
  c.node(1).raw.reportSnapshot(3, false);
  c.drop = () => false;
  c.delivered = [];
  c.tickAll(3);
  assert.ok(c.delivered.some((m) => m.type === MessageType.MsgSnap));
  assert.equal(c.node(3).storage.snapshot().metadata.index, applied);
});

test('inflights: a window of acknowledged-by-index appends', () => {
  const w = new Inflights(3);
  w.add(5);
  w.add(8);
  w.add(10);
  assert.equal(w.full(), true);
  w.freeLE(8);
  assert.equal(w.count(), 1);
  w.freeFirstOne();
  assert.equal(w.count(), 0);
});

test('progress: probe backs off on rejection, replicate resumes from match', () => {
  const pr = new Progress(10, 4, false, true);
  assert.equal(pr.maybeDecrTo(9, 4), true);
  assert.equal(pr.next, 5);
  assert.equal(pr.maybeDecrTo(9, 4), false, 'stale rejection');
  pr.maybeUpdate(6);
  pr.becomeReplicate();
  assert.equal(pr.state, PS.Replicate);
  assert.equal(pr.next, 7);
  pr.optimisticUpdate(20);
  assert.equal(pr.maybeDecrTo(15, 0), true);
  assert.equal(pr.next, 7);
});

test('quorum: the committed index is what a majority holds', () => {
  const m = new Map([[1, 10], [2, 7], [3, 3], [4, 9], [5, 1]]);
  assert.equal(majorityCommitted(new Set([1, 2, 3]), (id) => m.get(id)), 7);
  assert.equal(majorityCommitted(new Set([1, 2, 3, 4, 5]), (id) => m.get(id)), 7);
  assert.equal(majorityCommitted(new Set([1, 2, 3, 4]), (id) => m.get(id)), 7);
  assert.equal(majorityCommitted(new Set([3, 5]), (id) => m.get(id)), 1);
});

test('status reports the leader\'s view of its followers', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  const st = c.node(1).raw.status();
  assert.equal(st.softState.raftState, StateType.Leader);
  assert.equal(st.progress.size, 3);
  assert.equal(st.progress.get(2)!.match, c.raft(1).raftLog.lastIndex());
  assert.equal(c.node(2).raw.status().progress.size, 0);
  void MemoryStorage;
});
