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

test('a leader may send before persisting, but never with a term or vote change, nor when its commit counts unpersisted entries', () => {
  // Three voters: the leader's appends go out while it writes; its commit index covers only what
  // is already durable (the followers' acks for the new entries come later).
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  const leader = c.node(1).raw;
  leader.propose(data('x'));
  let rd = leader.ready();
  assert.equal(rd.entries.length, 1);
  assert.ok(rd.messages.some((m) => m.type === MessageType.MsgApp && m.entries.length === 1));
  assert.equal(rd.sendBeforePersist, true);
  assert.ok(rd.messages.every((m) => m.commit < rd.entries[0]!.index), 'no message promises a commit of the unpersisted entry');
  c.node(1).storage.append(rd.entries);
  leader.advance();

  // A follower's acks must wait for its own write.
  c.stabilize();
  const follower = c.node(2).raw;
  leader.propose(data('y'));
  for (const m of leader.ready().messages) if (m.to === 2) follower.step(m);
  rd = follower.ready();
  assert.ok(rd.messages.some((m) => m.type === MessageType.MsgAppResp));
  assert.equal(rd.sendBeforePersist, false);

  // A candidate's vote requests carry a term that must be durable first.
  const cand = new RawNode({ id: 1, applied: 1, random: new SeededRandom(1) }, bootStorage([1, 2, 3]));
  cand.campaign();
  rd = cand.ready();
  assert.ok(rd.messages.some((m) => m.type === MessageType.MsgPreVote));
  assert.equal(rd.sendBeforePersist, false);

  // A lone voter commits its entries by itself at once: telling a learner so before they are
  // durable would let a crash undo a commit the learner already applied.
  const solo = new TestCluster([1], {}, [2]);
  solo.campaign(1);
  solo.node(1).raw.propose(data('z'));
  rd = solo.node(1).raw.ready();
  assert.ok(rd.messages.some((m) => m.to === 2 && m.type === MessageType.MsgApp));
  assert.equal(rd.hardState?.commit, rd.entries[0]!.index);
  assert.equal(rd.sendBeforePersist, false);
});

test('a follower refuses a snapshot while committed entries it was handed are not yet applied', () => {
  // The entries of the Ready in flight may hold a ConfChange that the application will apply:
  // switching to the snapshot's configuration under it would apply that change to the wrong one.
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.propose(1, 'a');
  const f = c.node(3);
  // Node 3 stores 'b' but does not hear that it committed...
  c.drop = (m) => m.to === 3 && (m.type === MessageType.MsgHeartbeat || (m.type === MessageType.MsgApp && m.entries.length === 0));
  c.propose(1, 'b');
  c.drop = () => false;
  assert.ok(f.raw.raft.raftLog.committed < c.raft(1).raftLog.committed);
  // ...until the next heartbeat, which leaves it with a Ready of committed entries in flight.
  c.node(1).raw.tick();
  const leaderRd = c.node(1).raw.ready();
  c.node(1).raw.advance();
  for (const m of leaderRd.messages) if (m.to === 3) f.raw.step(m);
  const pending = f.raw.ready();
  assert.ok(pending.committedEntries.length > 0, 'node 3 holds committed entries to apply');
  const committed = f.raw.raft.raftLog.committed;
  const snap = { metadata: { index: committed + 5, term: c.raft(1).term, confState: { voters: [1, 2, 3], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) };
  f.raw.step({ type: MessageType.MsgSnap, to: 3, from: 1, term: c.raft(1).term, logTerm: 0, index: 0, entries: [], commit: 0, snapshot: snap, reject: false, rejectHint: 0, context: new Uint8Array(0) });
  assert.equal(f.raw.raft.raftLog.hasPendingSnapshot(), false, 'refused while applying');
  f.storage.append(pending.entries);
  f.raw.advance();
  // Once applied, the same snapshot is accepted.
  f.raw.step({ type: MessageType.MsgSnap, to: 3, from: 1, term: c.raft(1).term, logTerm: 0, index: 0, entries: [], commit: 0, snapshot: snap, reject: false, rejectHint: 0, context: new Uint8Array(0) });
  assert.equal(f.raw.raft.raftLog.hasPendingSnapshot(), true);
});
