// §5.2 leader election, with the pre-vote and check-quorum extensions (§9.6 of Ongaro's thesis).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStorage, RawNode, SeededRandom, StateType } from '../../../manager/raft/core/index.js';
import { MessageType, NONE } from '../../../manager/raft/types.js';
import { TestCluster, isType } from './harness.js';

test('5.2 leader election: a candidate with votes from a majority becomes leader', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  assert.equal(c.raft(1).state, StateType.Leader);
  assert.equal(c.raft(2).state, StateType.Follower);
  assert.equal(c.raft(2).lead, 1);
  assert.equal(c.raft(1).term, 2);
});

test('5.2 leader election: a candidate cut off from the majority does not become leader', () => {
  const c = new TestCluster([1, 2, 3, 4, 5], { preVote: false });
  c.cutLink(1, 2);
  c.cutLink(1, 3);
  c.cutLink(1, 4);
  c.campaign(1);
  assert.equal(c.raft(1).state, StateType.Candidate);
});

test('5.2 leader election: a node times out into an election after a randomized timeout in [et, 2et)', () => {
  const storage = new MemoryStorage();
  const raw = new RawNode({ id: 1, electionTick: 10, random: new SeededRandom(7) }, storage);
  const timeout = raw.raft.randomizedElectionTimeout;
  assert.ok(timeout >= 10 && timeout < 20, `timeout ${timeout}`);
  const c = new TestCluster([1, 2, 3], { electionTick: 10 });
  for (let i = 0; i < 20 && c.leaderIds().length === 0; i++) c.tickAll();
  assert.equal(c.leaderIds().length, 1);
});

test('5.2 leader election: a node grants at most one vote per term', () => {
  const c = new TestCluster([1, 2, 3], { preVote: false });
  // 2 and 3 campaign in the same term; 1 votes for whichever asked first, never both.
  c.cutLink(2, 3);
  c.node(2).raw.campaign();
  c.node(3).raw.campaign();
  c.stabilize();
  assert.equal(c.leaderIds().length, 1);
  const votes = c.delivered.filter((m) => m.type === MessageType.MsgVoteResp && m.from === 1 && !m.reject);
  assert.equal(votes.length, 1);
});

test('5.4.1 election restriction: a voter rejects a candidate whose log is behind its own', () => {
  const c = new TestCluster([1, 2, 3], { preVote: false, checkQuorum: false });
  c.campaign(1);
  c.isolate(3);
  c.propose(1, 'a');
  c.heal();
  // 3 missed 'a': its log is shorter, so 1 and 2 refuse it even at a higher term.
  c.drop = (m) => m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat;
  c.node(3).raw.campaign();
  c.stabilize();
  assert.notEqual(c.raft(3).state, StateType.Leader);
  const rejections = c.delivered.filter((m) => m.type === MessageType.MsgVoteResp && m.to === 3 && m.reject);
  assert.equal(rejections.length, 2);
});

test('pre-vote: a partitioned node does not inflate its term, so it cannot disrupt the leader on return', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  const term = c.raft(1).term;
  c.isolate(3);
  c.tick(3, 100);
  assert.equal(c.raft(3).term, term, 'pre-candidate must not bump its term');
  assert.equal(c.raft(3).state, StateType.PreCandidate);
  c.heal();
  c.tickAll(5);
  assert.equal(c.raft(1).state, StateType.Leader);
  assert.equal(c.raft(1).term, term);
  assert.equal(c.raft(3).lead, 1);
});

test('pre-vote off: the same partitioned node forces a new election when it returns', () => {
  const c = new TestCluster([1, 2, 3], { preVote: false, checkQuorum: false });
  c.campaign(1);
  const term = c.raft(1).term;
  c.isolate(3);
  c.tick(3, 100);
  assert.ok(c.raft(3).term > term + 3);
  c.heal();
  c.tickAll(30);
  assert.ok(c.raft(1).term > term, 'the old leader was deposed by the higher term');
});

test('check-quorum: a leader that cannot hear from a quorum steps down within an election timeout', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(1);
  c.tick(1, 21);
  assert.equal(c.raft(1).state, StateType.Follower);
  assert.equal(c.raft(1).lead, NONE);
});

test('check-quorum lease: followers that heard from the leader recently ignore a vote request', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  const term = c.raft(1).term;
  // 3 skips pre-vote by asking for a real vote: still ignored because 2 is in its lease.
  c.cutLink(1, 3);
  c.drop = (m) => m.type === MessageType.MsgPreVote;
  c.node(3).raw.raft.becomeCandidate();
  c.node(3).raw.raft.step({ ...c.delivered[0]!, type: MessageType.MsgHup, to: 3, from: 3, term: 0, context: new Uint8Array(0), entries: [] });
  c.stabilize();
  assert.equal(c.raft(2).term, term);
  assert.equal(c.raft(1).state, StateType.Leader);
});

test('a follower that loses its connection to the leader gives up the lease and campaigns within one more election stretch', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  const term = c.raft(1).term;
  // The leader dies: 2 and 3 hear nothing more, and their transports report it unreachable.
  c.isolate(1);
  // A report about a peer that is not the leader changes nothing.
  c.node(2).raw.reportUnreachable(3);
  assert.equal(c.raft(2).electionElapsed, 0);
  c.node(2).raw.reportUnreachable(1);
  c.node(3).raw.reportUnreachable(1);
  assert.equal(c.raft(2).electionElapsed, c.raft(2).electionTimeout);
  // Within electionTick more ticks (not the 2 x electionTick a silent death can take) one of them
  // leads, the other having granted its pre-vote and vote despite the lease.
  const et = c.raft(2).electionTimeout;
  let ticks = 0;
  while (c.leaderIds().filter((id) => id !== 1).length === 0 && ticks < et) {
    c.node(2).raw.tick();
    c.node(3).raw.tick();
    c.stabilize();
    ticks++;
  }
  const [lead] = c.leaderIds().filter((id) => id !== 1);
  assert.ok(lead === 2 || lead === 3, `a new leader within ${et} ticks (after ${ticks})`);
  assert.equal(c.raft(lead).term, term + 1);
});

test('a false alarm about the leader does not disrupt it: the other follower still holds the lease', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  const term = c.raft(1).term;
  c.node(3).raw.reportUnreachable(1);
  // 3 times out at once; its pre-vote is ignored by 2 (in the lease) and by the leader.
  for (let i = 0; i < c.raft(3).electionTimeout; i++) {
    c.node(3).raw.tick();
    c.stabilize();
  }
  assert.equal(c.raft(1).state, StateType.Leader);
  assert.equal(c.raft(1).term, term);
  assert.equal(c.raft(2).term, term);
});

test('a stale leader learns the new term from a MsgAppResp and steps down', () => {
  // No check-quorum: 3 would otherwise ignore 2 while in 1's lease.
  const c = new TestCluster([1, 2, 3], { checkQuorum: false });
  c.campaign(1);
  c.isolate(1);
  c.campaign(2);
  assert.equal(c.raft(2).state, StateType.Leader);
  assert.equal(c.raft(1).state, StateType.Leader, 'still thinks it leads (no tick yet)');
  c.heal();
  c.propose(1, 'lost');
  assert.equal(c.raft(1).state, StateType.Follower);
  c.propose(2, 'kept');
  c.tickAll(2);
  assert.equal(c.raft(1).lead, 2);
  assert.deepEqual(c.appliedData(1), ['kept']);
  assert.ok(c.delivered.some(isType(MessageType.MsgAppResp)));
});
