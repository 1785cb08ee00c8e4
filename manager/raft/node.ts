// The Raft node runner: drives the pure core (core/) with a clock, the disk (storage/) and the
// network (transport/), and hands committed entries to a state machine. This is the only part of
// manager/raft that does I/O on the core's behalf.
//
// The loop, one Ready at a time: persist the snapshot, entries and hard state (one group-committed
// fsync), then send the messages (they may promise what was just written), apply the committed
// entries, serve confirmed reads, advance. A leader sends first when the core allows it
// (Ready.sendBeforePersist): its own fsync then runs in parallel with the followers' round trip.
// Proposals made meanwhile wait in a queue and enter the core together, as one append, before the
// next Ready: that is the batching (one MsgApp per follower per round, not one per proposal).
//
// Membership: each ConfChange carries the member's address in its context, so every member learns
// the addresses from the log itself. Snapshots carry the member table beside the state machine's
// own data, so a member restored from a snapshot knows where its peers are.
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import {
  RawNode,
  ConfChangeType,
  confChange,
  decodeConfChange,
  ProposalDroppedError,
  SeededRandom,
  StateType,
  type ConfChangeV2,
  type Ready,
} from './core/index.js';
import { DiskStorage } from './storage/index.js';
import { RaftTransport, type RaftTransportOptions } from './transport/index.js';
import { EntryType, NONE, type ConfState, type Entry, type NodeId, type Snapshot } from './types.js';

/** What the node replicates: the manager's store. apply() must be deterministic. */
export interface StateMachine {
  apply(data: Uint8Array, index: number): void;
  snapshot(): Uint8Array;
  restore(data: Uint8Array, index: number): void;
}

export interface Member {
  id: NodeId;
  addr: string;
}

export interface RaftNodeOptions {
  id: NodeId;
  dataDir: string;
  transport: RaftTransport;
  stateMachine: StateMachine;
  /** Only for a brand-new cluster: the founding member's own address. */
  bootstrapAddr?: string;
  /**
   * Only for a member joining an existing cluster: the members it was told of, so it can answer
   * the leader before the log (or a snapshot) has taught it the member table.
   */
  join?: Member[];
  /**
   * ms per tick (default 100: etcd's heartbeat interval). With the default electionTick of 10 a
   * silent leader is replaced after 1–2 s; a leader whose process dies is noticed at once (its
   * connections reset). Half that made managers sharing two loaded cores with thousands of nodes
   * trade leadership every few seconds.
   */
  tickMs?: number;
  electionTick?: number;
  heartbeatTick?: number;
  /** Bytes of committed entries applied per Ready (default 512 KiB). */
  maxCommittedSizePerReady?: number;
  /** Take a snapshot and compact the log after this many applied entries. */
  snapshotInterval?: number;
  seed?: number;
  /** Called when the loop meets an error it cannot recover from (a failed fsync): stop the node. */
  onFatal?: (err: Error) => void;
}

/**
 * A transport whose deliveries go to the node `node()` returns. The transport must exist before
 * the node (the node is opened with it), so the link is made through this late lookup.
 */
export function linkedTransport(node: () => RaftNode | null, opts: Omit<RaftTransportOptions, 'onMessage' | 'onUnreachable' | 'onSnapshotStatus'>): RaftTransport {
  return new RaftTransport({
    ...opts,
    onMessage: (m) => node()?.step(m),
    onUnreachable: (id) => node()?.reportUnreachable(id),
    onSnapshotStatus: (id, ok) => node()?.reportSnapshot(id, ok),
  });
}

export class NotLeaderError extends Error {
  override name = 'NotLeaderError';
  constructor(readonly leader: NodeId) {
    super(leader === NONE ? 'no Raft leader is elected: the cluster may have lost quorum' : `this manager is not the leader (leader is member ${leader})`);
  }
}

export class StoppedError extends Error {
  override name = 'StoppedError';
  constructor() {
    super('the Raft node is stopped');
  }
}

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
}

// A proposal's payload is prefixed with an 8-byte id, so the proposer learns when it applied.
const ID_BYTES = 8;

// Random ids come from a pool filled in bulk: one randomBytes call per proposal cost more than
// the rest of propose() together.
const ID_POOL_BYTES = ID_BYTES * 512;
let idPool = Buffer.alloc(0);
let idPoolAt = 0;

function newProposalId(): string {
  if (idPoolAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_POOL_BYTES);
    idPoolAt = 0;
  }
  idPoolAt += ID_BYTES;
  return idPool.toString('hex', idPoolAt - ID_BYTES, idPoolAt);
}

// Snapshot data: [4-byte length][member table JSON][state machine bytes]. The table is
// {"members": [[id, addr], ...], "removed": [id, ...]}; older snapshots hold the bare member list.
interface MemberTable {
  members: Map<NodeId, string>;
  removed: Set<NodeId>;
}

function encodeSnapshotData(table: MemberTable, sm: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify({ members: [...table.members].sort((a, b) => a[0] - b[0]), removed: [...table.removed].sort((a, b) => a - b) }));
  const head = Buffer.alloc(4);
  head.writeUInt32BE(json.length);
  return Buffer.concat([head, json, sm]);
}

function decodeSnapshotData(data: Uint8Array): MemberTable & { sm: Uint8Array } {
  if (data.length === 0) return { members: new Map(), removed: new Set(), sm: data };
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const len = buf.readUInt32BE(0);
  const parsed = JSON.parse(buf.subarray(4, 4 + len).toString()) as [NodeId, string][] | { members: [NodeId, string][]; removed: NodeId[] };
  const sm = buf.subarray(4 + len);
  if (Array.isArray(parsed)) return { members: new Map(parsed), removed: new Set(), sm };
  return { members: new Map(parsed.members), removed: new Set(parsed.removed), sm };
}

export class RaftNode extends EventEmitter {
  readonly id: NodeId;
  private rawNode!: RawNode;
  private storage!: DiskStorage;
  private readonly transport: RaftTransport;
  private readonly sm: StateMachine;
  private readonly members = new Map<NodeId, string>();
  /**
   * Members removed from the cluster. Their messages are dropped (etcd's rule): a removed member
   * that comes back with its old log (after a forced new cluster, say) may carry a higher term,
   * and hearing it would make this node step down for a peer that is no longer one.
   */
  private readonly removed = new Set<NodeId>();
  private confState: ConfState = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  private ticker: NodeJS.Timeout | null = null;
  private busy = false;
  private again = false;
  private stopped = true;
  private readonly proposals = new Map<string, Waiter>();
  /** Payloads proposed since the last round, entering the core together (their waiters are in `proposals`). */
  private queued: { id: string; payload: Uint8Array }[] = [];
  private readonly reads = new Map<string, Waiter>();
  /** Reads confirmed by the leader, waiting for the local apply to reach their index. */
  private readonly pendingReads: { index: number; key: string }[] = [];
  private appliedIndex = 0;
  private snapshotIndex = 0;
  /** Set by a membership change: the next snapshot must name the new member table. */
  private snapshotStale = false;
  private lead: NodeId = NONE;
  private term = 0;

  private constructor(private readonly opts: RaftNodeOptions) {
    super();
    this.id = opts.id;
    this.transport = opts.transport;
    this.sm = opts.stateMachine;
  }

  /** Opens (or creates, with bootstrapAddr) the node's log and restores the state machine from it. */
  static async open(opts: RaftNodeOptions): Promise<RaftNode> {
    const node = new RaftNode(opts);
    await node.load();
    return node;
  }

  private async load(): Promise<void> {
    this.storage = await DiskStorage.open(this.opts.dataDir);
    if (this.storage.lastIndex() === 0 && this.opts.bootstrapAddr) {
      // A new cluster: the founder starts from a snapshot naming itself the only voter.
      const members = new Map([[this.id, this.opts.bootstrapAddr]]);
      const confState: ConfState = { voters: [this.id], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
      await this.storage.saveSnapshot({ metadata: { index: 1, term: 1, confState }, data: encodeSnapshotData({ members, removed: new Set() }, this.sm.snapshot()) });
    }
    const snap = this.storage.snapshot();
    if (snap.metadata.index > 0) this.installSnapshot(snap);
    else for (const m of this.opts.join ?? []) this.members.set(m.id, m.addr);
    this.rawNode = new RawNode(
      {
        id: this.id,
        electionTick: this.opts.electionTick ?? 10,
        heartbeatTick: this.opts.heartbeatTick ?? 1,
        checkQuorum: true,
        preVote: true,
        applied: snap.metadata.index,
        // Applying runs on the event loop between Readies: a few MiB of committed entries (a
        // scale-up of thousands of tasks) applied in one Ready would hold up this node's answers
        // to the leader and its heartbeats for a large part of an election timeout.
        maxCommittedSizePerReady: this.opts.maxCommittedSizePerReady ?? 512 * 1024,
        random: new SeededRandom(this.opts.seed ?? randomBytes(4).readUInt32BE(0)),
      },
      this.storage,
    );
    this.term = this.storage.initialState().hardState.term;
  }

  private installSnapshot(snap: Snapshot): void {
    const { members, removed, sm } = decodeSnapshotData(snap.data);
    this.members.clear();
    for (const [id, addr] of members) this.members.set(id, addr);
    this.removed.clear();
    for (const id of removed) this.removed.add(id);
    this.confState = snap.metadata.confState;
    this.sm.restore(sm, snap.metadata.index);
    this.appliedIndex = snap.metadata.index;
    this.snapshotIndex = snap.metadata.index;
    this.syncPeers();
  }

  /** Points the transport at every member but this one. */
  private syncPeers(): void {
    for (const [id, addr] of this.members) {
      if (id !== this.id && !this.transport.hasPeer(id)) this.transport.addPeer(id, addr);
    }
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.syncPeers();
    this.ticker = setInterval(() => {
      this.rawNode.tick();
      this.kick();
    }, this.opts.tickMs ?? 100);
    this.kick();
  }

  /** Feeds a message from the transport into the core. */
  step(m: Parameters<RawNode['step']>[0]): void {
    if (this.stopped || this.removed.has(m.from)) return;
    try {
      this.rawNode.step(m);
    } catch (e) {
      // Messages from unknown peers or for stale terms are dropped, as etcd does.
      if (process.env.SHOAL_RAFT_DEBUG) console.error('step failed', m.type, e);
      return;
    }
    this.kick();
  }

  reportUnreachable(id: NodeId): void {
    if (!this.stopped) this.rawNode.reportUnreachable(id);
  }

  reportSnapshot(id: NodeId, ok: boolean): void {
    if (!this.stopped) this.rawNode.reportSnapshot(id, ok);
  }

  get isLeader(): boolean {
    return this.lead === this.id;
  }

  get leader(): NodeId {
    return this.lead;
  }

  get currentTerm(): number {
    return this.term;
  }

  get applied(): number {
    return this.appliedIndex;
  }

  get commitIndex(): number {
    return this.rawNode.status().hardState.commit;
  }

  memberList(): Member[] {
    return [...this.members].map(([id, addr]) => ({ id, addr })).sort((a, b) => a.id - b.id);
  }

  /** Leader only: which members answered within the last election timeout (check-quorum's view). */
  activePeers(): Map<NodeId, boolean> {
    const out = new Map<NodeId, boolean>();
    if (!this.isLeader) return out;
    for (const [id, p] of this.rawNode.status().progress) out.set(id, id === this.id || p.recentActive);
    return out;
  }

  voters(): NodeId[] {
    return [...this.confState.voters];
  }

  /** Resolves once `data` is committed and applied here; rejects if this node is not the leader. */
  propose(data: Uint8Array): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (!this.isLeader) return Promise.reject(new NotLeaderError(this.lead));
    const id = newProposalId();
    const payload = Buffer.concat([Buffer.from(id, 'hex'), data]);
    return new Promise<void>((resolve, reject) => {
      this.proposals.set(id, { resolve, reject });
      this.queued.push({ id, payload });
      this.kick();
    });
  }

  /** Hands the queued proposals to the core as one append. */
  private flushProposals(): void {
    if (this.queued.length === 0) return;
    const batch = this.queued;
    this.queued = [];
    const fail = (err: Error) => {
      for (const { id } of batch) {
        const w = this.proposals.get(id);
        this.proposals.delete(id);
        w?.reject(err);
      }
    };
    // Leadership lost since they were queued: refuse them here rather than let the core forward
    // them, so callers learn for sure that they did not happen.
    if (this.rawNode.raft.state !== StateType.Leader) return fail(new NotLeaderError(this.rawNode.raft.lead));
    try {
      this.rawNode.proposeAll(batch.map((q) => q.payload));
    } catch (e) {
      fail(e instanceof ProposalDroppedError ? new NotLeaderError(this.rawNode.raft.lead) : (e as Error));
    }
  }

  /** Adds a member (as a learner first if asked) and resolves once the change is applied. */
  addMember(id: NodeId, addr: string, asLearner = false): Promise<void> {
    return this.changeMembership(confChange([{ type: asLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, nodeId: id }]), addr);
  }

  removeMember(id: NodeId): Promise<void> {
    return this.changeMembership(confChange([{ type: ConfChangeType.RemoveNode, nodeId: id }]), '');
  }

  private changeMembership(cc: ConfChangeV2, addr: string): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (!this.isLeader) return Promise.reject(new NotLeaderError(this.lead));
    const id = newProposalId();
    cc.context = Buffer.from(JSON.stringify({ id, addr }));
    return new Promise<void>((resolve, reject) => {
      this.proposals.set(id, { resolve, reject });
      // Proposals made before the change go into the log before it.
      this.flushProposals();
      try {
        this.rawNode.proposeConfChange(cc);
      } catch (e) {
        this.proposals.delete(id);
        reject(e as Error);
        return;
      }
      this.kick();
    });
  }

  /** Hands leadership to `to` (a caught-up voter); resolves when it has it. */
  async transferLeadership(to: NodeId, timeoutMs = 5000): Promise<void> {
    if (!this.isLeader) throw new NotLeaderError(this.lead);
    this.rawNode.transferLeader(to);
    this.kick();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('leader', onLeader);
        reject(new Error(`leadership transfer to member ${to} did not complete in ${timeoutMs} ms`));
      }, timeoutMs);
      const onLeader = (lead: NodeId) => {
        if (lead === to) {
          clearTimeout(timer);
          this.off('leader', onLeader);
          resolve();
        }
      };
      this.on('leader', onLeader);
    });
  }

  /**
   * A linearizable read barrier (ReadIndex): resolves once this node has applied everything
   * committed before the call, as confirmed by a quorum through the leader.
   */
  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(new StoppedError());
    if (this.lead === NONE) return Promise.reject(new NotLeaderError(NONE));
    const key = newProposalId();
    return new Promise<void>((resolve, reject) => {
      this.reads.set(key, { resolve, reject });
      this.rawNode.readIndex(Buffer.from(key, 'hex'));
      this.kick();
    });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    while (this.busy) await new Promise((r) => setTimeout(r, 2));
    this.failAll(new StoppedError());
    await this.storage.close();
  }

  private failAll(err: Error): void {
    this.queued = [];
    for (const w of this.proposals.values()) w.reject(err);
    this.proposals.clear();
    for (const w of this.reads.values()) w.reject(err);
    this.reads.clear();
    this.pendingReads.length = 0;
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    // Start on the event loop's check phase, not now: the messages and proposals arriving in this
    // turn of the loop (a whole batch from a peer, acks from several, many clients' requests) are
    // stepped first and go into one Ready, one write and one message per peer.
    setImmediate(() => this.drainOrDie());
  }

  private drainOrDie(): void {
    this.drain().catch((err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      this.failAll(e);
      this.stopped = true;
      if (this.ticker) clearInterval(this.ticker);
      if (this.opts.onFatal) this.opts.onFatal(e);
      else this.emit('error', e);
    });
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.again = false;
        for (;;) {
          if (this.stopped) break;
          this.flushProposals();
          if (!this.rawNode.hasReady()) break;
          const wrote = await this.handle(this.rawNode.ready());
          // After waiting on the disk, let the input that arrived meanwhile be stepped first.
          if (wrote) await new Promise<void>((resolve) => setImmediate(resolve));
        }
      } while (this.again && !this.stopped);
    } finally {
      this.busy = false;
    }
  }

  /** Handles one Ready; resolves to whether it waited on a disk write. */
  private async handle(rd: Ready): Promise<boolean> {
    if (rd.softState) this.observeSoftState(rd.softState.lead);
    if (rd.hardState) this.term = rd.hardState.term;
    if (rd.snapshot && rd.snapshot.metadata.index > 0) {
      await this.storage.saveSnapshot(rd.snapshot);
      this.installSnapshot(rd.snapshot);
    }
    if (rd.sendBeforePersist) this.transport.send(rd.messages);
    // A Ready that only advances the commit index needs no write: commit is recoverable from the
    // leader, and an fsync here would sit on every proposal's path (etcd's mustSync rule).
    const write = rd.mustSync || rd.entries.length > 0;
    let applied = 0;
    if (write && rd.sendBeforePersist) {
      // Committed entries below this Ready's new ones are durable already: apply them now rather
      // than after this write, so a busy leader's answers do not wait for the next batch's fsync.
      // Only where the messages left already: a follower's acks (and heartbeat answers) go out
      // first, since a leader hearing from no follower within an election timeout steps down.
      const firstNew = rd.entries.length > 0 ? rd.entries[0]!.index : Number.POSITIVE_INFINITY;
      while (applied < rd.committedEntries.length && rd.committedEntries[applied]!.index < firstNew) this.applyEntry(rd.committedEntries[applied++]!);
    }
    if (write) await this.storage.save(rd.hardState ?? null, rd.entries);
    if (!rd.sendBeforePersist) this.transport.send(rd.messages);
    for (; applied < rd.committedEntries.length; applied++) this.applyEntry(rd.committedEntries[applied]!);
    for (const rs of rd.readStates) {
      const key = Buffer.from(rs.requestCtx).toString('hex');
      if (this.reads.has(key)) this.pendingReads.push({ index: rs.index, key });
    }
    this.serveReads();
    this.rawNode.advance();
    await this.maybeSnapshot();
    return write || rd.snapshot !== undefined;
  }

  private observeSoftState(lead: NodeId): void {
    if (lead === this.lead) return;
    const wasLeader = this.isLeader;
    this.lead = lead;
    if (wasLeader && !this.isLeader) {
      // Proposals in flight may still commit under the new leader, but this node can no longer
      // tell: fail them so callers retry against the leader.
      const err = new NotLeaderError(lead);
      this.queued = [];
      for (const w of this.proposals.values()) w.reject(err);
      this.proposals.clear();
    }
    this.emit('leader', lead);
  }

  private applyEntry(e: Entry): void {
    if (e.index <= this.appliedIndex) return;
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      this.confState = this.rawNode.applyConfChange(cc);
      let ctx: { id?: string; addr?: string } = {};
      if (cc.context.length) ctx = JSON.parse(Buffer.from(cc.context).toString()) as { id?: string; addr?: string };
      for (const ch of cc.changes) {
        if (ch.type === ConfChangeType.RemoveNode) {
          this.members.delete(ch.nodeId);
          if (ch.nodeId !== this.id) {
            this.removed.add(ch.nodeId);
            this.transport.removePeer(ch.nodeId);
          }
        } else {
          this.removed.delete(ch.nodeId); // an id added back is a member again
          if (ctx.addr) this.members.set(ch.nodeId, ctx.addr);
        }
      }
      this.syncPeers();
      this.appliedIndex = e.index;
      // A member added now may need a snapshot to catch up, and a snapshot taken before the change
      // does not list it (raft refuses to restore a snapshot that leaves itself out): take one.
      this.snapshotStale = true;
      this.emit('membership', this.memberList());
      if (ctx.id) this.settle(ctx.id);
      return;
    }
    this.appliedIndex = e.index;
    // Empty entries are the ones a new leader appends to commit its term.
    if (e.data.length < ID_BYTES) return;
    const id = Buffer.from(e.data.buffer, e.data.byteOffset, ID_BYTES).toString('hex');
    this.sm.apply(e.data.subarray(ID_BYTES), e.index);
    this.settle(id);
  }

  private settle(id: string): void {
    const w = this.proposals.get(id);
    if (w) {
      this.proposals.delete(id);
      w.resolve();
    }
  }

  private serveReads(): void {
    for (let i = 0; i < this.pendingReads.length; ) {
      const r = this.pendingReads[i]!;
      if (r.index <= this.appliedIndex) {
        this.pendingReads.splice(i, 1);
        const w = this.reads.get(r.key);
        this.reads.delete(r.key);
        w?.resolve();
      } else {
        i++;
      }
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const interval = this.opts.snapshotInterval ?? 10_000;
    if (this.appliedIndex - this.snapshotIndex < interval && !this.snapshotStale) return;
    if (this.appliedIndex <= this.snapshotIndex) return;
    this.snapshotStale = false;
    const index = this.appliedIndex;
    const data = encodeSnapshotData({ members: this.members, removed: this.removed }, this.sm.snapshot());
    await this.storage.createSnapshot(index, this.confState, data);
    await this.storage.releaseTo(index);
    this.snapshotIndex = index;
  }
}
