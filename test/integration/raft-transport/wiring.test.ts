// The three raft pieces wired as the node runner will wire them: the core (RawNode) persists
// each Ready through DiskStorage (group-committed WAL), sends through RaftTransport over gRPC,
// and feeds received messages back in. Three nodes on loopback elect a leader and commit
// proposals; a node stopped and reopened from its data directory catches up.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RawNode } from '../../../manager/raft/core/index.js';
import { DiskStorage } from '../../../manager/raft/storage/disk-storage.js';
import { RaftTransport } from '../../../manager/raft/transport/transport.js';
import { EntryType, type NodeId } from '../../../manager/raft/types.js';

const VOTERS = [1, 2, 3];

class TestNode {
  applied: string[] = [];
  private node!: RawNode;
  private storage!: DiskStorage;
  private transport!: RaftTransport;
  private ticker: NodeJS.Timeout | null = null;
  private busy = false;
  private again = false;
  stopped = true;
  error: unknown = null;

  constructor(
    readonly id: NodeId,
    readonly dir: string,
    readonly addresses: Map<NodeId, string>,
  ) {}

  async start(port: number): Promise<number> {
    this.storage = await DiskStorage.open(this.dir);
    if (this.storage.lastIndex() === 0) {
      // Bootstrap: every member starts from the same snapshot holding the initial membership.
      await this.storage.saveSnapshot({ metadata: { index: 1, term: 1, confState: { voters: VOTERS, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } }, data: new Uint8Array(0) });
    }
    this.node = new RawNode({ id: this.id, electionTick: 10, heartbeatTick: 1 }, this.storage);
    this.transport = new RaftTransport({
      id: this.id,
      channelCredentials: grpc.credentials.createInsecure(),
      serverCredentials: grpc.ServerCredentials.createInsecure(),
      onMessage: (m) => {
        this.node.step(m);
        this.kick();
      },
      onUnreachable: (id) => this.node.reportUnreachable(id),
      onSnapshotStatus: (id, ok) => this.node.reportSnapshot(id, ok),
      backoffInitialMs: 20,
      backoffMaxMs: 100,
    });
    const bound = await this.transport.listen(`127.0.0.1:${port}`);
    this.addresses.set(this.id, `127.0.0.1:${bound}`);
    this.stopped = false;
    this.ticker = setInterval(() => {
      this.node.tick();
      this.kick();
    }, 10);
    return bound;
  }

  connect(): void {
    for (const [id, addr] of this.addresses) if (id !== this.id) this.transport.addPeer(id, addr);
  }

  storedLastIndex(): number {
    return this.storage.lastIndex();
  }

  isLeader(): boolean {
    return !this.stopped && this.node.status().softState.lead === this.id;
  }

  propose(data: string): void {
    this.node.propose(new TextEncoder().encode(data));
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    while (this.busy) await new Promise((r) => setTimeout(r, 5));
    await this.transport.close();
    await this.storage.close();
  }

  /** The runner loop: one Ready at a time, persisted before its messages go out. */
  private kick(): void {
    if (this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    void this.drain().catch((err: unknown) => (this.error = err));
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.again = false;
        while (!this.stopped && this.node.hasReady()) {
          const rd = this.node.ready();
          if (rd.snapshot) await this.storage.saveSnapshot(rd.snapshot);
          await this.storage.save(rd.hardState ?? null, rd.entries);
          this.transport.send(rd.messages);
          for (const e of rd.committedEntries) {
            if (e.type === EntryType.Normal && e.data.length) this.applied.push(new TextDecoder().decode(e.data));
          }
          this.node.advance();
        }
      } while (this.again && !this.stopped);
    } finally {
      this.busy = false;
    }
  }
}

async function until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('core + DiskStorage + RaftTransport: three nodes commit, a restarted node catches up from disk', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'shoal-raft-wiring-'));
  const addresses = new Map<NodeId, string>();
  const nodes = VOTERS.map((id) => new TestNode(id, join(root, `n${id}`), addresses));
  t.after(async () => {
    for (const n of nodes) if (!n.stopped) await n.stop();
    await rm(root, { recursive: true, force: true });
  });
  const ports = new Map<NodeId, number>();
  for (const n of nodes) ports.set(n.id, await n.start(0));
  for (const n of nodes) n.connect();

  await until(() => nodes.some((n) => n.isLeader()), 'a leader');
  const leader = nodes.find((n) => n.isLeader())!;
  const first = Array.from({ length: 100 }, (_, i) => `a${i}`);
  for (const d of first) leader.propose(d);
  await until(() => nodes.every((n) => n.applied.length >= 100), 'the first proposals applied everywhere');
  for (const n of nodes) assert.deepEqual(n.applied, first, `node ${n.id}`);

  const follower = nodes.find((n) => n !== leader)!;
  await follower.stop();
  const second = Array.from({ length: 50 }, (_, i) => `b${i}`);
  for (const d of second) leader.propose(d);
  const alive = nodes.filter((n) => n !== follower);
  await until(() => alive.every((n) => n.applied.length >= 150), 'proposals committed by the remaining majority');

  // Reopen from its data directory on the same port: it replays the WAL and catches up.
  follower.applied = [];
  await follower.start(ports.get(follower.id)!);
  assert.ok(follower.storedLastIndex() >= 101, `replayed ${follower.storedLastIndex()} entries from its WAL`);
  follower.connect();
  await until(() => follower.applied.length >= 150, 'the restarted follower caught up');
  assert.deepEqual(follower.applied, [...first, ...second]);
  for (const n of nodes) assert.equal(n.error, null, `node ${n.id} runner error`);
});
