// Leader transfer (§3.10 of Ongaro's thesis: MsgTimeoutNow) and linearizable reads by ReadIndex
// (§6.4: the leader confirms it still leads with a heartbeat round before answering).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StateType } from '../../../manager/raft/core/index.js';
import { MessageType } from '../../../manager/raft/types.js';
import { TestCluster, data, isType, text } from './harness.js';

test('leader transfer: the transferee campaigns on MsgTimeoutNow and becomes leader', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  const term = c.raft(1).term;
  c.node(1).raw.transferLeader(3);
  c.stabilize();
  assert.equal(c.raft(3).state, StateType.Leader);
  assert.equal(c.raft(1).state, StateType.Follower);
  assert.equal(c.raft(3).term, term + 1);
  assert.ok(c.delivered.some(isType(MessageType.MsgTimeoutNow)));
});

test('leader transfer: a lagging transferee is caught up first', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(3);
  c.propose(1, 'a');
  c.heal();
  c.node(1).raw.transferLeader(3);
  c.stabilize();
  assert.equal(c.raft(3).state, StateType.Leader);
  assert.deepEqual(c.appliedData(3), ['a']);
});

test('leader transfer: proposals are refused while a transfer is in progress, and it aborts after an election timeout', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(3);
  c.node(1).raw.transferLeader(3);
  c.stabilize();
  assert.equal(c.raft(1).leadTransferee, 3);
  assert.throws(() => c.node(1).raw.propose(data('x')), /transferred/);
  for (let i = 0; i < 10; i++) c.tick(1);
  assert.equal(c.raft(1).leadTransferee, 0);
  assert.equal(c.raft(1).state, StateType.Leader);
  c.propose(1, 'after');
  assert.deepEqual(c.appliedData(2), ['after']);
});

test('leader transfer: a request on a follower is forwarded to the leader', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.node(2).raw.transferLeader(2);
  c.stabilize();
  assert.equal(c.raft(2).state, StateType.Leader);
});

test('6.4 ReadIndex: the leader answers with its commit index after a heartbeat quorum', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.propose(1, 'a');
  c.delivered = [];
  c.node(1).raw.readIndex(data('req-1'));
  c.stabilize();
  const rs = c.node(1).readStates;
  assert.equal(rs.length, 1);
  assert.equal(text(rs[0]!.requestCtx), 'req-1');
  assert.equal(rs[0]!.index, c.raft(1).raftLog.committed);
  assert.ok(c.delivered.some((m) => m.type === MessageType.MsgHeartbeat && text(m.context) === 'req-1'));
});

test('6.4 ReadIndex: a leader cut off from the quorum never answers (no stale reads)', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(1);
  c.node(1).raw.readIndex(data('req-1'));
  c.stabilize();
  assert.equal(c.node(1).readStates.length, 0);
});

test('6.4 ReadIndex: a follower forwards the request and gets the leader\'s index', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.propose(1, 'a');
  c.node(3).raw.readIndex(data('req-3'));
  c.stabilize();
  const rs = c.node(3).readStates;
  assert.equal(rs.length, 1);
  assert.equal(text(rs[0]!.requestCtx), 'req-3');
  assert.equal(rs[0]!.index, c.raft(1).raftLog.committed);
});

test('6.4 ReadIndex: a new leader defers reads until an entry of its term commits', () => {
  const c = new TestCluster([1, 2, 3]);
  // Block appends so the new leader's empty entry cannot commit.
  c.drop = (m) => m.type === MessageType.MsgApp;
  c.campaign(1);
  c.node(1).raw.readIndex(data('early'));
  c.stabilize();
  assert.equal(c.node(1).readStates.length, 0);
  c.drop = () => false;
  c.tickAll(2);
  assert.equal(c.node(1).readStates.length, 1);
  assert.equal(c.node(1).readStates[0]!.index, c.raft(1).raftLog.committed);
});

test('6.4 ReadIndex: a single-voter cluster answers at once', () => {
  const c = new TestCluster([1]);
  c.campaign(1);
  c.node(1).raw.readIndex(data('solo'));
  c.stabilize();
  assert.equal(c.node(1).readStates.length, 1);
});
