// Forcing a new cluster from the survivor of a 3-member cluster that lost two members for good:
// the survivor's directory is rewritten (manager/raft/storage/force-new-cluster.ts) and it comes
// back as the single member of the same cluster with all its state. The lost members, back with
// their old data, cannot disturb it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotLeaderError } from '../../../manager/raft/node.js';
import { NONE } from '../../../manager/raft/types.js';
import { forceNewCluster, ForceNewClusterError } from '../../../manager/raft/storage/index.js';
import { startMember, stopMember, type Member } from './members.js';
import { waitFor } from '../../support/wait.js';

const portOf = (m: Member) => Number(m.addr.split(':')[1]);

test('a survivor of a lost quorum forces a new cluster, keeps its state and ignores the removed members', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'raft-fnc-'));
  const running = new Set<Member>();
  const start = async (...args: Parameters<typeof startMember>) => {
    const m = await startMember(...args);
    running.add(m);
    return m;
  };
  const stop = async (m: Member) => {
    running.delete(m);
    await stopMember(m);
  };
  t.after(async () => {
    for (const m of running) await stopMember(m).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });

  // A 3-member cluster with a history that spans snapshots (interval 50) and the WAL.
  const m1 = await start(1, join(root, '1'), 0, true, 50);
  await waitFor('the founder to lead', () => m1.node.isLeader);
  const others: Member[] = [];
  for (const id of [2, 3]) {
    const m = await start(id, join(root, String(id)), 0, false, 50, m1.node.memberList());
    others.push(m);
    await m1.node.addMember(id, m.addr);
  }
  const expected = Array.from({ length: 130 }, (_, i) => `w${i}`);
  for (const w of expected) await m1.node.propose(Buffer.from(w));
  for (const m of others) await waitFor(`member ${m.id} to apply everything`, () => m.sm.items.length === expected.length);

  // Two members are lost. A write made now reaches the survivor's log but can never commit.
  for (const m of others) await stop(m);
  const leaderAtLoss = m1.node.isLeader;
  const stranded = m1.node.propose(Buffer.from('stranded'));
  stranded.catch(() => {});
  await waitFor('the survivor to notice it lost quorum', () => m1.node.leader === NONE);
  await assert.rejects(stranded, NotLeaderError);
  await assert.rejects(m1.node.propose(Buffer.from('x')), (e: unknown) => e instanceof NotLeaderError && e.leader === NONE);
  const oldTerm = m1.node.currentTerm;
  await stop(m1);

  // Only a voter may force a new cluster, and only from a directory that holds a cluster.
  await assert.rejects(forceNewCluster(join(root, '1'), 99), (e: unknown) => e instanceof ForceNewClusterError && /member 99 is not a voter/.test(e.message));
  await assert.rejects(forceNewCluster(join(root, 'empty'), 1), ForceNewClusterError);

  const res = await forceNewCluster(join(root, '1'), 1);
  assert.deepEqual(res.removed, [2, 3]);
  assert.ok(res.term > oldTerm, `the new term ${res.term} is above the old ${oldTerm}`);

  const survivor = await start(1, join(root, '1'), portOf(m1), false, 50);
  await waitFor('the survivor to lead its new cluster alone', () => survivor.node.isLeader);
  assert.deepEqual(survivor.node.memberList(), [{ id: 1, addr: m1.addr }]);
  assert.deepEqual(survivor.node.voters(), [1]);
  // Everything is there; the stranded write too (the tail past the commit index is kept).
  assert.deepEqual(survivor.sm.items, leaderAtLoss ? [...expected, 'stranded'] : expected);
  await survivor.node.propose(Buffer.from('after'));
  assert.equal(survivor.sm.items.at(-1), 'after');

  // The lost members come back with their old data. They still count each other as a quorum of
  // the old configuration and elect a leader of their own, which keeps sending to member 1: the
  // new cluster drops those messages, keeps its leader and its term, and goes on writing.
  const term = survivor.node.currentTerm;
  const back: Member[] = [];
  for (const m of others) back.push(await start(m.id, m.dir, portOf(m), false, 50));
  await waitFor('the removed members to elect a leader of their own', () => back.some((m) => m.node.isLeader));
  for (let i = 0; i < 20; i++) await survivor.node.propose(Buffer.from(`later${i}`));
  assert.ok(survivor.node.isLeader);
  assert.equal(survivor.node.currentTerm, term);
  for (const m of back) assert.ok(!m.sm.items.includes('after'), `removed member ${m.id} never hears the new cluster`);

  // A restart of the survivor keeps all of it: the removal survives in its snapshot.
  const items = [...survivor.sm.items];
  await stop(survivor);
  const again = await start(1, join(root, '1'), portOf(m1), false, 50);
  await waitFor('the survivor to lead again after a restart', () => again.node.isLeader);
  assert.deepEqual(again.sm.items, items);
  assert.deepEqual(again.node.voters(), [1]);
  await again.node.propose(Buffer.from('after-restart'));
  assert.equal(again.node.currentTerm, term + 1);
});
