// The Raft node runner with everything real but the process boundary: three members, each with
// its own WAL directory and gRPC transport on loopback. A cluster is founded by one member and
// grown by membership changes; it survives losing its leader; a member restarted from its
// directory catches up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotLeaderError } from '../../../manager/raft/node.js';
import { leaderOf, startMember, stopMember, type Member } from './members.js';
import { waitFor } from '../../support/wait.js';

test('a founder grows a 3-member cluster, which keeps writing through a leader loss and catches a restarted member up', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'raftnode-'));
  const members: Member[] = [];
  t.after(async () => {
    for (const m of members) await stopMember(m).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });

  const m1 = await startMember(1, join(root, '1'), 0, true, 50);
  members.push(m1);
  await waitFor('the founder to lead', () => m1.node.isLeader);
  await m1.node.propose(Buffer.from('a'));
  assert.deepEqual(m1.sm.items, ['a']);

  for (const id of [2, 3]) {
    const m = await startMember(id, join(root, String(id)), 0, false, 50, m1.node.memberList());
    members.push(m);
    await m1.node.addMember(id, m.addr);
  }
  assert.deepEqual(m1.node.voters().sort(), [1, 2, 3]);
  for (let i = 0; i < 120; i++) await m1.node.propose(Buffer.from(`w${i}`));
  const expected = ['a', ...Array.from({ length: 120 }, (_, i) => `w${i}`)];
  for (const m of members) await waitFor(`member ${m.id} to apply everything`, () => m.sm.items.length === expected.length);
  for (const m of members) assert.deepEqual(m.sm.items, expected);

  // A follower refuses writes with the leader's id, for forwarding.
  const follower = members.find((m) => !m.node.isLeader)!;
  await assert.rejects(follower.node.propose(Buffer.from('x')), (e: unknown) => e instanceof NotLeaderError && e.leader === m1.id);

  // Lose the leader: the other two elect one and go on.
  await stopMember(m1);
  members.splice(members.indexOf(m1), 1);
  const next = await waitFor('a new leader', () => leaderOf(members));
  await next.node.propose(Buffer.from('after'));
  await next.node.readBarrier();
  for (const m of members) await waitFor(`member ${m.id} applies the write`, () => m.sm.items.at(-1) === 'after');

  // The old leader comes back from its directory (snapshots and WAL) and catches up.
  const back = await startMember(1, join(root, '1'), Number(m1.addr.split(':')[1]), false, 50);
  members.push(back);
  await waitFor('the restarted member to catch up', () => back.sm.items.at(-1) === 'after');
  assert.deepEqual(back.sm.items, [...expected, 'after']);
});
