// A member that was down while the cluster wrote far past its log catches up through a snapshot:
// the leader compacted the entries it missed, so only a snapshot can bring it back. Three members
// in this process, each with its own WAL directory and gRPC transport on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RaftNode, linkedTransport, NotLeaderError, type StateMachine } from '../../../manager/raft/node.js';
import { RaftTransport } from '../../../manager/raft/transport/index.js';
import { waitFor } from '../../support/wait.js';

const ENTRIES = 100_000;
const IN_FLIGHT = 500;
const SNAPSHOT_INTERVAL = 5000;

/** key=value puts; remembers every restore made after the node was opened (i.e. from a leader). */
class Kv implements StateMachine {
  data = new Map<string, string>();
  opened = false;
  restoresFromLeader: number[] = [];
  apply(entry: Uint8Array): void {
    const s = Buffer.from(entry).toString();
    const eq = s.indexOf('=');
    this.data.set(s.slice(0, eq), s.slice(eq + 1));
  }
  snapshot(): Uint8Array {
    return Buffer.from(JSON.stringify([...this.data]));
  }
  restore(snap: Uint8Array, index: number): void {
    this.data = new Map(snap.length ? (JSON.parse(Buffer.from(snap).toString()) as [string, string][]) : []);
    if (this.opened) this.restoresFromLeader.push(index);
  }
}

interface Member {
  id: number;
  addr: string;
  node: RaftNode;
  transport: RaftTransport;
  sm: Kv;
}

async function startMember(id: number, dir: string, port: number, bootstrap: boolean, join: { id: number; addr: string }[] = []): Promise<Member> {
  let node: RaftNode | null = null;
  const transport = linkedTransport(() => node, {
    id,
    channelCredentials: grpc.credentials.createInsecure(),
    serverCredentials: grpc.ServerCredentials.createInsecure(),
    backoffInitialMs: 20,
    backoffMaxMs: 200,
  });
  const addr = `127.0.0.1:${await transport.listen(`127.0.0.1:${port}`)}`;
  const sm = new Kv();
  // A longer tick than the other tests: two busy cores must not stall the loop into elections.
  node = await RaftNode.open({ id, dataDir: dir, transport, stateMachine: sm, bootstrapAddr: bootstrap ? addr : undefined, join, tickMs: 50, snapshotInterval: SNAPSHOT_INTERVAL, seed: id });
  sm.opened = true;
  node.start();
  return { id, addr, node, transport, sm };
}

async function stopMember(m: Member): Promise<void> {
  await m.node.stop();
  await m.transport.close();
}

test(`a member down for ${ENTRIES} entries catches up through a snapshot`, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'raftcatchup-'));
  const members: Member[] = [];
  t.after(async () => {
    for (const m of members) await stopMember(m).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });

  const m1 = await startMember(1, join(root, '1'), 0, true);
  members.push(m1);
  await waitFor('the founder to lead', () => m1.node.isLeader);
  for (const id of [2, 3]) {
    const m = await startMember(id, join(root, String(id)), 0, false, m1.node.memberList());
    members.push(m);
    await m1.node.addMember(id, m.addr);
  }
  await m1.node.propose(Buffer.from('before=1'));
  const m3 = members[2]!;
  await waitFor('member 3 to apply the first put', () => m3.sm.data.get('before') === '1');

  // Member 3 goes down; the other two write on.
  await stopMember(m3);
  members.splice(2, 1);
  const appliedAtStop = m3.node.applied;

  let next = 0;
  const leaderNode = async (): Promise<RaftNode> => (await waitFor('a leader', () => members.find((m) => m.node.isLeader))).node;
  const put = async (i: number): Promise<void> => {
    const data = Buffer.from(`k${i}=v${i}`);
    for (;;) {
      try {
        return await (await leaderNode()).propose(data);
      } catch (e) {
        // A leader change under load: puts are idempotent, so retrying on the new leader is safe.
        if (!(e instanceof NotLeaderError)) throw e;
      }
    }
  };
  const started = Date.now();
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < ENTRIES) await put(next++);
    }),
  );
  const writeMs = Date.now() - started;
  const leader = await leaderNode();
  const target = leader.applied;
  assert.equal(members.find((m) => m.node === leader)!.sm.data.size, ENTRIES + 1);

  // Member 3 comes back from its directory, same port, and is brought up to date.
  const back = await startMember(3, join(root, '3'), Number(m3.addr.split(':')[1]), false);
  members.push(back);
  const restartedAt = back.node.applied;
  assert.ok(restartedAt <= appliedAtStop + 1, `member 3 reopened at ${restartedAt}, past what it had applied (${appliedAtStop})`);
  await waitFor('member 3 to catch up', () => back.node.applied >= target, { timeoutMs: 40_000 });

  // It could only have: the leader's log no longer holds the entries member 3 missed.
  assert.ok(back.sm.restoresFromLeader.length >= 1, 'member 3 caught up without installing a snapshot from the leader');
  assert.ok(Math.max(...back.sm.restoresFromLeader) > appliedAtStop + SNAPSHOT_INTERVAL, `snapshot at ${back.sm.restoresFromLeader.join(',')} does not skip past ${appliedAtStop}`);
  const leaderSm = members.find((m) => m.node === leader)!.sm;
  await waitFor('member 3 to apply what the leader applied', () => back.node.applied >= leader.applied);
  assert.equal(back.sm.data.size, leaderSm.data.size);
  assert.deepEqual(back.sm.data, leaderSm.data);
  t.diagnostic(`${ENTRIES} puts in ${writeMs} ms (${Math.round((ENTRIES * 1000) / writeMs)}/s, ${IN_FLIGHT} in flight); member 3 stopped at ${appliedAtStop}, installed snapshot(s) at ${back.sm.restoresFromLeader.join(',')}`);
});
