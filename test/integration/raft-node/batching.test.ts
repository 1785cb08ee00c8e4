// The node runner batches: proposals made together enter the log as one append and reach each
// follower in a handful of messages, not one per proposal; they still apply in call order on
// every member.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startMember, stopMember, type Member } from './members.js';
import { waitFor } from '../../support/wait.js';

test('300 proposals made at once share appends and apply in call order everywhere', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'raftbatch-'));
  const members: Member[] = [];
  t.after(async () => {
    for (const m of members) await stopMember(m).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });
  const m1 = await startMember(1, join(root, '1'), 0, true);
  members.push(m1);
  await waitFor('the founder to lead', () => m1.node.isLeader);
  for (const id of [2, 3]) {
    const m = await startMember(id, join(root, String(id)), 0, false, 10_000, m1.node.memberList());
    members.push(m);
    await m1.node.addMember(id, m.addr);
  }
  await m1.node.propose(Buffer.from('warm-up'));
  for (const m of members) await waitFor(`member ${m.id} to apply the warm-up`, () => m.sm.items.at(-1) === 'warm-up');

  const sentBefore = m1.transport.peerStats(2)!.sent;
  const values = Array.from({ length: 300 }, (_, i) => `p${i}`);
  await Promise.all(values.map((v) => m1.node.propose(Buffer.from(v))));
  const sent = m1.transport.peerStats(2)!.sent - sentBefore;
  // One append for the lot, a commit notice, and whatever heartbeats fell in meanwhile; one
  // message per proposal would be 300 or more.
  assert.ok(sent < 100, `${sent} messages to a follower for 300 proposals`);
  for (const m of members) await waitFor(`member ${m.id} to apply all`, () => m.sm.items.length === values.length + 1);
  for (const m of members) assert.deepEqual(m.sm.items, ['warm-up', ...values]);
});
