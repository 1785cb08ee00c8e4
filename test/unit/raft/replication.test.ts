// §5.3 log replication and §5.4.2 committing entries from previous terms; batching, pipelining
// and flow control of the progress tracker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProgressState, StateType } from '../../../manager/raft/core/index.js';
import { MessageType } from '../../../manager/raft/types.js';
import { TestCluster, data, isType } from './harness.js';

test('5.3 log replication: a proposal is replicated, committed and applied everywhere in order', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  for (const s of ['a', 'b', 'c']) c.propose(1, s);
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['a', 'b', 'c']);
  assert.equal(c.raft(2).raftLog.committed, c.raft(1).raftLog.lastIndex());
});

test('5.3 log replication: an entry stored on a minority is not committed', () => {
  const c = new TestCluster([1, 2, 3, 4, 5]);
  c.campaign(1);
  const before = c.raft(1).raftLog.committed;
  c.cutLink(1, 3);
  c.cutLink(1, 4);
  c.cutLink(1, 5);
  c.propose(1, 'a');
  assert.equal(c.raft(1).raftLog.committed, before);
  assert.deepEqual(c.appliedData(1), []);
  c.heal();
  c.tickAll(2);
  assert.deepEqual(c.appliedData(5), ['a']);
});

test('5.3 log replication: a follower proposal is forwarded to the leader', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.propose(3, 'from-3');
  for (const id of [1, 2, 3]) assert.deepEqual(c.appliedData(id), ['from-3']);
});

test('5.3 log replication: a follower with a conflicting uncommitted tail is overwritten by the leader', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.propose(1, 'committed');
  // 1 appends entries nobody else gets, then loses leadership.
  c.isolate(1);
  c.propose(1, 'orphan-1');
  c.propose(1, 'orphan-2');
  c.tick(2, 30);
  c.tick(3, 30);
  assert.ok([2, 3].some((id) => c.raft(id).state === StateType.Leader));
  const lead = c.raft(2).state === StateType.Leader ? 2 : 3;
  c.propose(lead, 'new');
  c.heal();
  c.tickAll(3);
  assert.deepEqual(c.appliedData(1), ['committed', 'new']);
  const texts = c.raft(1).raftLog.allEntries().map((e) => new TextDecoder().decode(e.data));
  assert.ok(!texts.includes('orphan-1'));
});

test('5.3 log replication: the leader backs off quickly past a divergent term using the reject hint', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(1);
  for (let i = 0; i < 20; i++) c.propose(1, `orphan-${i}`);
  c.tick(2, 30);
  c.tick(3, 30);
  const lead = c.raft(2).state === StateType.Leader ? 2 : 3;
  c.propose(lead, 'new');
  c.heal();
  c.delivered = [];
  c.tickAll(2);
  const rejects = c.delivered.filter((m) => m.type === MessageType.MsgAppResp && m.from === 1 && m.reject);
  assert.ok(rejects.length <= 2, `${rejects.length} rejections: one hint should skip the whole orphan term`);
  assert.deepEqual(c.appliedData(1), ['new']);
});

test('5.4.2 a leader does not commit an entry of an earlier term by counting replicas', () => {
  // One entry per MsgApp, so the old-term entry can travel without the new term's.
  const c = new TestCluster([1, 2, 3], { preVote: false, checkQuorum: false, maxSizePerMsg: 1 });
  c.campaign(1);
  // 1 appends an entry of its term that only it holds.
  c.isolate(1);
  c.propose(1, 'old-term');
  const oldIndex = c.raft(1).raftLog.lastIndex();
  // It steps down (as check-quorum would make it) and campaigns again.
  c.raft(1).becomeFollower(c.raft(1).term, 0);
  // 1 wins a later term with 2's vote (its log is longer); 2 acks the old entry, but the new
  // term's empty entry is dropped, so the only thing a majority holds is the old-term entry.
  c.heal();
  // The first append (the new term's empty entry) is rejected by 2, which lacks the old entry;
  // the leader backs off and sends the old entry alone; later new-term appends are dropped.
  let newTermApps = 0;
  c.drop = (m) => m.type === MessageType.MsgApp && m.entries.some((e) => e.term === c.raft(1).term) && ++newTermApps > 1;
  c.cutLink(1, 3);
  c.campaign(1);
  assert.equal(c.raft(1).state, StateType.Leader);
  assert.equal(c.raft(2).raftLog.lastIndex(), oldIndex, '2 holds the old-term entry');
  assert.ok(c.raft(1).raftLog.committed < oldIndex, 'old-term entry must not be committed by counting');
  // Once the new term's entry reaches the majority, both commit.
  c.drop = () => false;
  c.tickAll(2);
  assert.ok(c.raft(1).raftLog.committed > oldIndex);
  assert.deepEqual(c.appliedData(1), ['old-term']);
});

test('batching: maxSizePerMsg bounds the entries of one MsgApp', () => {
  const c = new TestCluster([1, 2], { maxSizePerMsg: 100, checkQuorum: false });
  c.campaign(1);
  c.isolate(2);
  for (let i = 0; i < 20; i++) c.node(1).raw.propose(data('x'.repeat(40)));
  c.stabilize();
  c.heal();
  c.delivered = [];
  c.tickAll(3);
  const apps = c.delivered.filter((m) => m.type === MessageType.MsgApp && m.entries.length > 0);
  assert.ok(apps.length >= 10, `${apps.length} appends`);
  for (const m of apps) assert.ok(m.entries.length <= 2, `MsgApp with ${m.entries.length} entries`);
  assert.equal(c.appliedData(2).length, 20);
});

test('pipelining: in Replicate state the leader sends several appends without waiting, up to maxInflightMsgs', () => {
  const c = new TestCluster([1, 2], { maxInflightMsgs: 3 });
  c.campaign(1);
  assert.equal(c.raft(1).trk.progress.get(2)!.state, ProgressState.Replicate);
  // Hold back 2's acks: the leader keeps sending until the window is full.
  c.drop = (m) => m.type === MessageType.MsgAppResp;
  c.delivered = [];
  for (let i = 0; i < 6; i++) {
    c.node(1).raw.propose(data(`p${i}`));
    c.stabilize();
  }
  const sent = c.delivered.filter((m) => m.type === MessageType.MsgApp && m.to === 2);
  assert.equal(sent.length, 3);
  assert.equal(c.raft(1).trk.progress.get(2)!.inflights.full(), true);
  c.drop = () => false;
  c.tickAll(3);
  assert.equal(c.appliedData(2).length, 6);
});

test('probe state: after a rejection the leader sends one append at a time', () => {
  const c = new TestCluster([1, 2, 3]);
  c.campaign(1);
  c.isolate(3);
  for (let i = 0; i < 5; i++) c.propose(1, `p${i}`);
  c.node(1).raw.reportUnreachable(3);
  assert.equal(c.raft(1).trk.progress.get(3)!.state, ProgressState.Probe);
  c.heal();
  c.tickAll(3);
  assert.equal(c.appliedData(3).length, 5);
  assert.equal(c.raft(1).trk.progress.get(3)!.state, ProgressState.Replicate);
  assert.ok(c.delivered.some(isType(MessageType.MsgHeartbeatResp)));
});

test('uncommitted quota: a leader refuses proposals beyond maxUncommittedEntriesSize', () => {
  const c = new TestCluster([1, 2, 3], { maxUncommittedEntriesSize: 100 });
  c.campaign(1);
  c.isolate(1);
  c.node(1).raw.propose(data('x'.repeat(60)));
  assert.throws(() => c.node(1).raw.propose(data('y'.repeat(60))), /too many uncommitted/);
});
