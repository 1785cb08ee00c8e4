// Membership changes (§4 of Ongaro's thesis): one voter at a time, joint consensus (enter and
// leave, automatically or explicitly), learners, and the removed leader stepping down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ConfChangeTransition,
  ConfChangeType,
  MemoryStorage,
  StateType,
  confChange,
  decodeConfChange,
  encodeConfChange,
  leaveJointChange,
} from '../../../manager/raft/core/index.js';
import { MessageType } from '../../../manager/raft/types.js';
import { TestCluster } from './harness.js';

const add = (nodeId: number) => ({ type: ConfChangeType.AddNode, nodeId });
const remove = (nodeId: number) => ({ type: ConfChangeType.RemoveNode, nodeId });
const learner = (nodeId: number) => ({ type: ConfChangeType.AddLearnerNode, nodeId });

test('conf changes encode and decode losslessly', () => {
  const cc = confChange([add(4), remove(2)], ConfChangeTransition.JointExplicit, new Uint8Array([1, 2]));
  assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
  assert.deepEqual(decodeConfChange(new Uint8Array(0)), leaveJointChange());
});

test('4.1 adding a voter: a new empty node catches up through a snapshot and counts for the quorum', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.propose(1, 'a');
  c.add(4, new MemoryStorage());
  c.node(1).raw.proposeConfChange(confChange([add(4)]));
  c.stabilize();
  assert.deepEqual(c.node(1).confState.voters, [1, 2, 3, 4]);
  assert.deepEqual(c.node(4).confState.voters, [1, 2, 3, 4]);
  c.propose(1, 'b');
  assert.deepEqual(c.appliedData(4), ['b'], 'entries before the snapshot come in the snapshot');
  // With 4 voters, 2 of 4 is not a quorum.
  c.isolate(3);
  c.isolate(4);
  const committed = c.raft(1).raftLog.committed;
  c.propose(1, 'c');
  assert.equal(c.raft(1).raftLog.committed, committed);
});

test('4.1 removing a voter shrinks the quorum', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.node(1).raw.proposeConfChange(confChange([remove(3)]));
  c.stabilize();
  assert.deepEqual(c.node(1).confState.voters, [1, 2]);
  c.isolate(3);
  c.propose(1, 'a');
  assert.deepEqual(c.appliedData(2), ['a']);
});

test('4.1 only one conf change may be pending at a time', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(1);
  c.node(1).raw.proposeConfChange(confChange([remove(3)]));
  c.node(1).raw.proposeConfChange(confChange([remove(2)]));
  c.stabilize();
  c.heal();
  c.tickAll(3);
  assert.deepEqual(c.node(1).confState.voters, [1, 2], 'the second change became a no-op');
});

test('4.2.2 a removed leader steps down', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.node(1).raw.proposeConfChange(confChange([remove(1)]));
  c.stabilize();
  assert.notEqual(c.raft(1).state, StateType.Leader);
  for (let i = 0; i < 40 && c.leaderIds().filter((id) => id !== 1).length === 0; i++) c.tickAll();
  const lead = c.leaderIds().find((id) => id !== 1)!;
  assert.ok(lead === 2 || lead === 3);
  c.propose(lead, 'after');
  assert.deepEqual(c.appliedData(lead === 2 ? 3 : 2), ['after']);
});

test('joint consensus: several voters change at once and the joint config is left automatically', () => {
  const c = new TestCluster([1, 2, 3]);
  c.add(4, new MemoryStorage());
  c.add(5, new MemoryStorage());
  c.campaign(1);
  c.node(1).raw.proposeConfChange(confChange([add(4), add(5), remove(3)]));
  c.stabilize();
  for (const id of [1, 2, 4, 5]) {
    assert.deepEqual(c.node(id).confState.voters, [1, 2, 4, 5], `node ${id}`);
    assert.deepEqual(c.node(id).confState.votersOutgoing, [], `node ${id} left the joint config`);
  }
  c.propose(1, 'x');
  assert.deepEqual(c.appliedData(5), ['x']);
});

test('joint consensus: while joint, a decision needs a majority of both the old and the new config', () => {
  const c = new TestCluster([1, 2, 3]);
  c.add(4, new MemoryStorage());
  c.add(5, new MemoryStorage());
  c.campaign(1);
  c.node(1).raw.proposeConfChange(confChange([add(4), add(5), remove(2), remove(3)], ConfChangeTransition.JointExplicit));
  c.stabilize();
  assert.deepEqual(c.node(1).confState.voters, [1, 4, 5]);
  assert.deepEqual(c.node(1).confState.votersOutgoing, [1, 2, 3]);
  // New config {1,4,5} has a majority, old {1,2,3} does not: nothing commits.
  c.isolate(2);
  c.isolate(3);
  const committed = c.raft(1).raftLog.committed;
  c.propose(1, 'needs-both');
  assert.equal(c.raft(1).raftLog.committed, committed);
  c.heal();
  c.tickAll(2);
  assert.ok(c.raft(1).raftLog.committed > committed);
  // Leave explicitly; afterwards the old voters are not needed.
  c.node(1).raw.proposeConfChange(leaveJointChange());
  c.stabilize();
  assert.deepEqual(c.node(1).confState.votersOutgoing, []);
  c.isolate(2);
  c.isolate(3);
  c.propose(1, 'new-only');
  assert.deepEqual(c.appliedData(4), ['needs-both', 'new-only']);
});

test('joint consensus: a simple change is refused while joint, an empty change refused outside', () => {
  const c = new TestCluster([1, 2, 3]);
  c.add(4, new MemoryStorage());
  c.campaign(1);
  c.node(1).raw.proposeConfChange(leaveJointChange());
  c.stabilize();
  assert.deepEqual(c.node(1).confState.voters, [1, 2, 3]);
  c.node(1).raw.proposeConfChange(confChange([add(4)], ConfChangeTransition.JointExplicit));
  c.stabilize();
  c.node(1).raw.proposeConfChange(confChange([remove(2)]));
  c.stabilize();
  assert.deepEqual(c.node(1).confState.voters, [1, 2, 3, 4], 'the simple change was turned into a no-op');
  assert.deepEqual(c.node(1).confState.votersOutgoing, [1, 2, 3]);
});

test('learners receive the log but do not vote or count for commit', () => {
  const c = new TestCluster([1, 2, 3], {}, [4]);
  c.campaign(1);
  c.propose(1, 'a');
  assert.deepEqual(c.appliedData(4), ['a']);
  assert.equal(c.raft(4).isLearner, true);
  // A learner never campaigns.
  c.isolate(4);
  c.tick(4, 100);
  assert.equal(c.raft(4).state, StateType.Follower);
  // And 1 + learner is not a quorum.
  c.heal();
  c.isolate(2);
  c.isolate(3);
  const committed = c.raft(1).raftLog.committed;
  c.propose(1, 'b');
  assert.equal(c.raft(1).raftLog.committed, committed);
  assert.ok(!c.delivered.some((m) => m.type === MessageType.MsgVote && m.to === 4));
});

test('learners are promoted once caught up, then vote', () => {
  const c = new TestCluster([1, 2, 3]);
  c.add(4, new MemoryStorage());
  c.campaign(1);
  c.node(1).raw.proposeConfChange(confChange([learner(4)]));
  c.stabilize();
  c.propose(1, 'a');
  const pr = c.raft(1).trk.progress.get(4)!;
  assert.equal(pr.match, c.raft(1).raftLog.lastIndex(), 'caught up');
  c.node(1).raw.proposeConfChange(confChange([add(4)]));
  c.stabilize();
  assert.deepEqual(c.node(4).confState.voters, [1, 2, 3, 4]);
  assert.equal(c.raft(4).isLearner, false);
});

test('demoting a voter through a joint config parks it in learnersNext until the config is left', () => {
  const c = new TestCluster([1, 2, 3, 4]);
  c.campaign(1);
  c.drop = (m) => m.type === MessageType.MsgApp && m.entries.some((e) => e.type === 1 && e.data.length === 0);
  c.node(1).raw.proposeConfChange(confChange([learner(4)], ConfChangeTransition.JointImplicit));
  c.stabilize();
  const cs = c.node(1).confState;
  assert.deepEqual(cs.learnersNext, [4]);
  assert.deepEqual(cs.votersOutgoing, [1, 2, 3, 4]);
  c.drop = () => false;
  c.tickAll(3);
  const after = c.node(1).confState;
  assert.deepEqual(after.voters, [1, 2, 3]);
  assert.deepEqual(after.learners, [4]);
  assert.deepEqual(after.learnersNext, []);
});
