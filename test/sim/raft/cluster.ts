// The seeded simulation: a cluster of RawNodes driven by one event queue, a network that drops,
// duplicates, delays, reorders and partitions, disks whose unsynced writes vanish in a crash,
// an admin that changes membership and transfers leadership, and clients running a KV workload.
// Safety is checked as it runs (election safety, log matching, leader completeness, state
// machine safety) and the client history is checked for linearizability at the end.
import {
  ConfChangeTransition,
  ConfChangeType,
  MemoryStorage,
  ProposalDroppedError,
  RawNode,
  StateType,
  StepPeerNotFoundError,
  cloneConfState,
  confChange,
  decodeConfChange,
  leaveJointChange,
  type ConfChangeSingle,
  type ConfChangeV2,
  type Ready,
} from '../../../manager/raft/core/index.js';
import { EntryType, MessageType, type ConfState, type Entry, type Message, type NodeId, type Snapshot } from '../../../manager/raft/types.js';
import { EventQueue } from './events.js';
import { KvStateMachine, decodeCommand, encodeCommand, type Op, type Output } from './kv.js';
import { checkHistory, describeOp, type HistoryOp } from './linearizability.js';
import { Rng } from './prng.js';

export interface SimOptions {
  seed: number;
  /** Initial voters: 3 or 5. */
  nodes: number;
  /** Simulated milliseconds of faults. */
  duration: number;
  /** Simulated milliseconds of calm at the end (everything healed) before checking. */
  calm: number;
  clients: number;
  /** Print a trace of faults and leadership. */
  verbose?: boolean;
  /** Debug hook: lines of trace go here. */
  log?: (line: string) => void;
}

export interface SimStats {
  opsInvoked: number;
  opsCompleted: number;
  opsUnknown: number;
  reads: number;
  leadersElected: number;
  maxTerm: number;
  crashes: number;
  partitions: number;
  snapshotsInstalled: number;
  confChangesApplied: number;
  jointConfigsEntered: number;
  transfers: number;
  messagesSent: number;
  messagesDropped: number;
  messagesDuplicated: number;
  committedIndex: number;
  calmWrites: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  violations: string[];
  stats: SimStats;
  /** The client history (invocations and completions in simulated time). */
  history: HistoryOp[];
}

const TICK_MS = 10;
const CLIENT_TIMEOUT_MS = 600;
const KEYS = ['x', 'y', 'z'];

interface Request {
  client: SimClient;
  hop: HistoryOp;
}

class SimClient {
  seq = 0;
  current: HistoryOp | null = null;
  /** The node this client talks to until it times out (clients stick to a node, even a stale one). */
  target: NodeId | null = null;
  lastSeen = new Map<string, string | null>();
  constructor(
    readonly id: number,
    readonly rng: Rng,
  ) {}
}

class SimNode {
  storage = new MemoryStorage();
  raw: RawNode | null = null;
  up = false;
  removed = false;
  wasMember = false;
  epoch = 0;
  busy = false;
  /** A paused process (GC pause, SIGSTOP): no ticks, no processing; input waits in `inbox`. */
  paused = false;
  inbox: (() => void)[] = [];
  /** While leading: the term and the commit index last seen, to learn in which term entries commit. */
  leaderCommitSeen: { term: number; index: number; inMemory: number } | null = null;
  kv = new KvStateMachine();
  confState: ConfState = { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
  applied = 0;
  pendingWrites = new Map<string, Request>();
  pendingReads = new Map<string, Request>();
  waitingReads: { index: number; req: Request }[] = [];
  constructor(
    readonly id: NodeId,
    readonly rng: Rng,
    readonly snapshotEvery: number,
    readonly keepTail: number,
  ) {}
}

interface NetProfile {
  loss: number;
  dup: number;
  minDelay: number;
  maxDelay: number;
  /** Chance of an extra long delay (reorders across heartbeats). */
  slow: number;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function bytesStr(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += String.fromCharCode(x);
  return s;
}

function cloneMessage(m: Message): Message {
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: e.data.slice() })),
    snapshot: m.snapshot ? { metadata: { ...m.snapshot.metadata, confState: cloneConfState(m.snapshot.metadata.confState) }, data: m.snapshot.data } : null,
    context: m.context.slice(),
  };
}

function isMember(cs: ConfState, id: NodeId): boolean {
  return cs.voters.includes(id) || cs.learners.includes(id) || cs.votersOutgoing.includes(id);
}

export class Simulation {
  readonly q = new EventQueue();
  readonly rng: Rng;
  readonly nodes = new Map<NodeId, SimNode>();
  readonly clients: SimClient[] = [];
  readonly history: HistoryOp[] = [];
  readonly violations: string[] = [];
  readonly stats: SimStats = {
    opsInvoked: 0,
    opsCompleted: 0,
    opsUnknown: 0,
    reads: 0,
    leadersElected: 0,
    maxTerm: 0,
    crashes: 0,
    partitions: 0,
    snapshotsInstalled: 0,
    confChangesApplied: 0,
    jointConfigsEntered: 0,
    transfers: 0,
    messagesSent: 0,
    messagesDropped: 0,
    messagesDuplicated: 0,
    committedIndex: 0,
    calmWrites: 0,
  };
  /** Group of each node; nodes in different groups cannot talk. */
  private group = new Map<NodeId, number>();
  /** One-way blocks "from>to". */
  private blocked = new Set<string>();
  private net: NetProfile = { loss: 0, dup: 0, minDelay: 1, maxDelay: 5, slow: 0 };
  private faulty = true;
  private clientsOn = true;
  private calmStart = Number.POSITIVE_INFINITY;
  private nextId: NodeId;
  private readonly maxNodes: number;
  /** term -> leader */
  private leaders = new Map<number, NodeId>();
  /** index -> the committed entry as first applied anywhere. */
  private committed = new Map<number, { term: number; type: EntryType; data: string }>();
  /**
   * index -> the earliest term in which a leader committed it, and the entry's term. Leader
   * completeness is about these terms: a leader of any later term must hold the entry.
   */
  private commitTerm = new Map<number, { commitTerm: number; entryTerm: number }>();
  private snapshotDigests = new Map<number, string>();
  private failedOps = new Set<string>();
  /** How often a new leader crashes right after its election (varies by seed). */
  private readonly leaderCrashChance: number;
  /** How often a leader crashes right after accepting a proposal or advancing its commit index. */
  private readonly crashPointChance: number;

  constructor(readonly opts: SimOptions) {
    this.rng = new Rng(opts.seed);
    this.nextId = opts.nodes + 1;
    this.maxNodes = opts.nodes + 2;
    this.leaderCrashChance = this.rng.pick([0.05, 0.2, 0.5]);
    this.crashPointChance = this.rng.pick([0, 0.005, 0.02, 0.05]);
  }

  private trace(line: string): void {
    if (this.opts.verbose) (this.opts.log ?? console.log)(`${String(this.q.now).padStart(7)} ${line}`);
  }

  private violation(what: string): void {
    this.violations.push(`t=${this.q.now}: ${what}`);
    this.trace(`VIOLATION ${what}`);
  }

  run(): SimResult {
    try {
      this.setup();
      const stop = (): boolean => this.violations.length > 0;
      this.q.runUntil(this.opts.duration, stop);
      if (!stop()) this.beginCalm();
      this.q.runUntil(this.opts.duration + this.opts.calm, stop);
      if (!stop()) {
        this.clientsOn = false;
        this.q.runUntil(this.opts.duration + this.opts.calm + CLIENT_TIMEOUT_MS + 100, stop);
      }
      if (!stop()) this.finalChecks();
    } catch (e) {
      this.violation(`exception: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
    this.stats.opsInvoked = this.history.length;
    this.stats.opsCompleted = this.history.filter((h) => h.complete !== null).length;
    this.stats.opsUnknown = this.history.filter((h) => h.complete === null && !this.failedOps.has(h.id)).length;
    return { seed: this.opts.seed, ok: this.violations.length === 0, violations: this.violations, stats: this.stats, history: this.history };
  }

  // ---- setup -----------------------------------------------------------------------------

  private setup(): void {
    const voters: NodeId[] = [];
    for (let id = 1; id <= this.opts.nodes; id++) voters.push(id);
    // Bootstrap: every initial node starts from the same snapshot at index 1 naming the voters.
    const boot: Snapshot = {
      metadata: { index: 1, term: 1, confState: { voters, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false } },
      data: new KvStateMachine().encode(),
    };
    for (const id of voters) {
      const n = this.newNode(id);
      n.storage.applySnapshot(boot);
      n.storage.setHardState({ term: 1, vote: 0, commit: 1 });
      this.startNode(n);
    }
    for (let c = 0; c < this.opts.clients; c++) {
      const client = new SimClient(c + 1, this.rng.fork());
      this.clients.push(client);
      this.q.after(this.rng.range(50, 300), () => this.clientNext(client));
    }
    this.net = this.randomNetProfile();
    this.q.after(this.rng.range(100, 400), () => this.faultLoop());
    this.q.after(500, () => this.periodicChecks());
  }

  private newNode(id: NodeId): SimNode {
    const n = new SimNode(id, this.rng.fork(), this.rng.range(5, 60), this.rng.range(0, 10));
    this.nodes.set(id, n);
    return n;
  }

  private startNode(n: SimNode): void {
    n.epoch++;
    n.up = true;
    n.busy = false;
    n.pendingReads.clear();
    n.pendingWrites.clear();
    n.waitingReads = [];
    n.paused = false;
    n.inbox = [];
    const snap = n.storage.snapshot();
    n.kv = KvStateMachine.decode(snap.data);
    n.confState = cloneConfState(snap.metadata.confState);
    if (isMember(n.confState, n.id)) n.wasMember = true;
    n.applied = snap.metadata.index;
    n.raw = new RawNode(
      {
        id: n.id,
        electionTick: 10,
        heartbeatTick: 1,
        checkQuorum: true,
        preVote: true,
        maxSizePerMsg: n.rng.pick([1, 64, 256, 1024, 1 << 20]),
        maxInflightMsgs: n.rng.pick([1, 2, 4, 16, 256]),
        maxUncommittedEntriesSize: n.rng.pick([0, 0, 4096]),
        applied: n.applied,
        random: n.rng.fork(),
      },
      n.storage,
    );
    const epoch = n.epoch;
    this.q.after(n.rng.range(1, TICK_MS), () => this.tickLoop(n, epoch));
    this.pump(n);
  }

  private tickLoop(n: SimNode, epoch: number): void {
    if (n.epoch !== epoch || !n.up) return;
    // A paused process misses its ticks (a ticker drops them), it does not replay them.
    if (!n.paused) {
      n.raw!.tick();
      this.pump(n);
    }
    // Clocks drift a little: ticks are 9-11 ms apart.
    this.q.after(TICK_MS + n.rng.range(-1, 1), () => this.tickLoop(n, epoch));
  }

  private crash(n: SimNode): void {
    this.trace(`crash ${n.id}${n.busy ? ' (losing an unsynced write)' : ''}`);
    this.stats.crashes++;
    n.up = false;
    n.epoch++;
    n.raw = null;
    n.busy = false;
    n.pendingReads.clear();
    n.pendingWrites.clear();
    n.waitingReads = [];
    n.paused = false;
    n.inbox = [];
  }

  /** Run `f` now, or when the node resumes if it is paused. */
  private whenRunning(n: SimNode, f: () => void): void {
    if (n.paused) n.inbox.push(f);
    else f();
  }

  private pause(n: SimNode): void {
    n.paused = true;
    const epoch = n.epoch;
    this.trace(`pause ${n.id}`);
    this.q.after(this.rng.range(50, 1500), () => {
      if (n.epoch !== epoch || !n.paused) return;
      this.trace(`resume ${n.id} (${n.inbox.length} inputs waiting)`);
      n.paused = false;
      const inbox = n.inbox;
      n.inbox = [];
      for (const f of inbox) f();
    });
  }

  // ---- the node runner loop --------------------------------------------------------------

  private pump(n: SimNode): void {
    if (n.up && n.raw) this.observeLeaderCommit(n);
    if (!n.up || n.busy || !n.raw || !n.raw.hasReady()) return;
    const raw = n.raw;
    const rd = raw.ready();
    if (rd.softState) {
      if (rd.softState.raftState === StateType.Leader) this.onLeader(n, raw.raft.term);
      this.trace(`${n.id} is ${StateType[rd.softState.raftState]} term ${raw.raft.term} lead ${rd.softState.lead}`);
    }
    n.busy = true;
    const epoch = n.epoch;
    // A leader may replicate while it writes (as the node runner does): its messages leave now,
    // and a crash before the fsync below loses its copy of the entries they carry.
    if (rd.sendBeforePersist) this.sendReadyMessages(n, rd);
    // Committed entries already durable here (below this Ready's new ones) are applied without
    // waiting for the write, as the node runner does.
    let appliedEarly = 0;
    if (rd.mustSync && !rd.snapshot) {
      const firstNew = rd.entries.length > 0 ? rd.entries[0]!.index : Number.POSITIVE_INFINITY;
      while (appliedEarly < rd.committedEntries.length && rd.committedEntries[appliedEarly]!.index < firstNew) this.applyEntry(n, rd.committedEntries[appliedEarly++]!);
    }
    // The write reaches the disk (fsync) after a while; a crash before then loses it all.
    this.q.after(rd.mustSync ? n.rng.range(0, 4) : 0, () => {
      if (n.epoch !== epoch) return;
      this.whenRunning(n, () => {
        if (n.epoch === epoch) this.handleReady(n, rd, appliedEarly);
      });
    });
  }

  private handleReady(n: SimNode, rd: Ready, appliedEarly: number): void {
    const raw = n.raw!;
    if (rd.snapshot) {
      n.storage.applySnapshot(rd.snapshot);
      n.kv = KvStateMachine.decode(rd.snapshot.data);
      n.confState = cloneConfState(rd.snapshot.metadata.confState);
      n.applied = rd.snapshot.metadata.index;
      this.stats.snapshotsInstalled++;
      this.checkSnapshotDigest(rd.snapshot.metadata.index, rd.snapshot.data, `${n.id} installing`);
      this.trace(`${n.id} installed snapshot at ${rd.snapshot.metadata.index}`);
    }
    n.storage.append(rd.entries);
    if (rd.hardState) n.storage.setHardState(rd.hardState);
    if (!rd.sendBeforePersist) this.sendReadyMessages(n, rd);
    for (const e of rd.committedEntries.slice(appliedEarly)) this.applyEntry(n, e);
    for (const rs of rd.readStates) {
      const req = n.pendingReads.get(dec.decode(rs.requestCtx));
      if (!req) continue;
      n.pendingReads.delete(req.hop.id);
      n.waitingReads.push({ index: rs.index, req });
    }
    this.serveReads(n);
    this.maybeSnapshot(n);
    raw.advance();
    n.busy = false;
    if (n.wasMember && !isMember(n.confState, n.id)) {
      // Like a swarm manager that learns it was removed: it shuts down for good.
      this.trace(`${n.id} removed from the cluster: shutting down`);
      n.removed = true;
      this.crash(n);
      this.stats.crashes--;
      return;
    }
    this.pump(n);
  }

  private sendReadyMessages(n: SimNode, rd: Ready): void {
    for (const m of rd.messages) {
      if (m.type === MessageType.MsgSnap && m.snapshot && !isMember(m.snapshot.metadata.confState, m.to)) {
        // Our latest snapshot predates the recipient joining, so it would refuse it: take a fresh
        // one. (A node runner must do the same, or new members never catch up.)
        if (n.applied > n.storage.snapshot().metadata.index) {
          const data = n.kv.encode();
          n.storage.createSnapshot(n.applied, n.confState, data);
          this.checkSnapshotDigest(n.applied, data, `${n.id} creating for ${m.to}`);
        }
        m.snapshot = n.storage.snapshot();
      }
      this.send(n, m);
    }
  }

  private applyEntry(n: SimNode, e: Entry): void {
    if (e.index !== n.applied + 1) {
      this.violation(`${n.id} applied index ${e.index} after ${n.applied} (gap or repeat)`);
      return;
    }
    n.applied = e.index;
    this.recordCommitted(n, e);
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      const before = n.confState;
      n.confState = n.raw!.applyConfChange(cc);
      if (isMember(n.confState, n.id)) n.wasMember = true;
      this.stats.confChangesApplied++;
      if (before.votersOutgoing.length === 0 && n.confState.votersOutgoing.length > 0) this.stats.jointConfigsEntered++;
      this.trace(`${n.id} applied conf change at ${e.index}: voters ${n.confState.voters} out ${n.confState.votersOutgoing} learners ${n.confState.learners} next ${n.confState.learnersNext}`);
      return;
    }
    if (e.data.length === 0) return;
    const cmd = decodeCommand(e.data);
    const out = n.kv.apply(cmd);
    const req = n.pendingWrites.get(cmd.id);
    if (req) {
      n.pendingWrites.delete(cmd.id);
      this.respond(req, out);
    }
  }

  private serveReads(n: SimNode): void {
    const still: { index: number; req: Request }[] = [];
    for (const w of n.waitingReads) {
      if (w.index <= n.applied) this.respond(w.req, { kind: 'get', value: n.kv.get(w.req.hop.op.key) });
      else still.push(w);
    }
    n.waitingReads = still;
  }

  private maybeSnapshot(n: SimNode): void {
    const snapIndex = n.storage.snapshot().metadata.index;
    if (n.applied - snapIndex < n.snapshotEvery) return;
    const data = n.kv.encode();
    n.storage.createSnapshot(n.applied, n.confState, data);
    this.checkSnapshotDigest(n.applied, data, `${n.id} creating`);
    const compactTo = n.applied - n.keepTail;
    if (compactTo > n.storage.firstIndex() - 1) n.storage.compact(compactTo);
  }

  // ---- network ---------------------------------------------------------------------------

  private canTalk(from: NodeId, to: NodeId): boolean {
    return (this.group.get(from) ?? 0) === (this.group.get(to) ?? 0) && !this.blocked.has(`${from}>${to}`);
  }

  private delay(): number {
    let d = this.rng.range(this.net.minDelay, this.net.maxDelay);
    if (this.rng.chance(this.net.slow)) d += this.rng.range(20, 200);
    return d;
  }

  private send(from: SimNode, m: Message): void {
    this.stats.messagesSent++;
    const to = this.nodes.get(m.to);
    if (!to || !this.canTalk(from.id, m.to) || this.rng.chance(this.net.loss)) {
      this.stats.messagesDropped++;
      this.undelivered(from, m);
      return;
    }
    const copies = this.rng.chance(this.net.dup) ? 2 : 1;
    if (copies === 2) this.stats.messagesDuplicated++;
    for (let i = 0; i < copies; i++) {
      const copy = cloneMessage(m);
      this.q.after(this.delay(), () => this.deliver(from, to, copy));
    }
  }

  private undelivered(from: SimNode, m: Message): void {
    const epoch = from.epoch;
    if (m.type === MessageType.MsgSnap) {
      this.q.after(this.delay(), () => {
        if (from.epoch !== epoch || !from.up) return;
        this.whenRunning(from, () => {
          if (from.epoch !== epoch) return;
          from.raw!.reportSnapshot(m.to, false);
          this.pump(from);
        });
      });
    } else if (this.rng.chance(0.2)) {
      // Sometimes the transport notices (connection refused) and says so.
      this.q.after(this.delay(), () => {
        if (from.epoch !== epoch || !from.up) return;
        this.whenRunning(from, () => {
          if (from.epoch !== epoch) return;
          from.raw!.reportUnreachable(m.to);
          this.pump(from);
        });
      });
    }
  }

  private deliver(from: SimNode, to: SimNode, m: Message): void {
    if (!to.up || !to.raw || !this.canTalk(from.id, to.id)) {
      this.stats.messagesDropped++;
      this.undelivered(from, m);
      return;
    }
    const toEpoch = to.epoch;
    this.whenRunning(to, () => {
      if (to.epoch !== toEpoch || !to.raw) return;
      try {
        to.raw.step(m);
      } catch (e) {
        if (!(e instanceof StepPeerNotFoundError)) throw e;
      }
      this.pump(to);
    });
    if (m.type === MessageType.MsgSnap) {
      const epoch = from.epoch;
      this.q.after(this.delay(), () => {
        if (from.epoch !== epoch || !from.up) return;
        this.whenRunning(from, () => {
          if (from.epoch !== epoch) return;
          from.raw!.reportSnapshot(to.id, true);
          this.pump(from);
        });
      });
    }
  }

  // ---- clients ---------------------------------------------------------------------------

  private members(): SimNode[] {
    return [...this.nodes.values()].filter((n) => !n.removed && n.wasMember);
  }

  private leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const n of this.nodes.values()) {
      if (!n.up || !n.raw || n.raw.raft.state !== StateType.Leader) continue;
      if (!best || n.raw.raft.term > best.raw!.raft.term) best = n;
    }
    return best;
  }

  private clientNext(c: SimClient): void {
    if (!this.clientsOn) return;
    const key = this.rng.pick(KEYS);
    const id = `c${c.id}.${++c.seq}`;
    const roll = c.rng.float();
    let op: Op;
    if (roll < 0.4) op = { kind: 'put', key, value: id };
    else if (roll < 0.8) op = { kind: 'get', key };
    else op = { kind: 'cas', key, expected: c.lastSeen.get(key) ?? null, value: id };
    const hop: HistoryOp = { id, client: c.id, op, invoke: this.q.now, complete: null, output: null };
    this.history.push(hop);
    c.current = hop;
    let target = c.target === null ? undefined : this.nodes.get(c.target);
    if (!target || target.removed || c.rng.chance(0.05)) {
      const lead = this.leader();
      target = lead && c.rng.chance(0.6) ? lead : c.rng.pick(this.members());
      c.target = target.id;
    }
    const req: Request = { client: c, hop };
    const node = target;
    this.q.after(c.rng.range(1, 5), () => this.nodeReceive(node, req));
    this.q.after(CLIENT_TIMEOUT_MS, () => {
      if (c.current !== hop) return;
      // The client gives up: the outcome stays unknown (it may still take effect). It will
      // try another node next.
      c.current = null;
      c.target = null;
      this.q.after(c.rng.range(0, 30), () => this.clientNext(c));
    });
  }

  private nodeReceive(n: SimNode, req: Request): void {
    if (!n.up || !n.raw) return;
    if (n.paused) {
      const epoch = n.epoch;
      n.inbox.push(() => {
        if (n.epoch === epoch) this.nodeReceive(n, req);
      });
      return;
    }
    const { hop } = req;
    if (hop.op.kind === 'get') {
      n.pendingReads.set(hop.id, req);
      n.raw.readIndex(enc.encode(hop.id));
      this.stats.reads++;
    } else {
      n.pendingWrites.set(hop.id, req);
      if (n.raw.raft.state === StateType.Leader) this.maybeCrashSoon(n);
      try {
        n.raw.propose(encodeCommand({ id: hop.id, op: hop.op }));
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e;
        // Refused before reaching any log: it definitely did not happen.
        n.pendingWrites.delete(hop.id);
        this.failedOps.add(hop.id);
        const c = req.client;
        if (c.current === hop) {
          c.current = null;
          c.target = null;
          this.q.after(c.rng.range(5, 30), () => this.clientNext(c));
        }
      }
    }
    this.pump(n);
  }

  private respond(req: Request, out: Output): void {
    const { client: c, hop } = req;
    this.q.after(c.rng.range(1, 5), () => {
      if (c.current !== hop) return; // too late: the client gave up on it
      hop.complete = this.q.now;
      hop.output = out;
      c.current = null;
      if (out.kind === 'get') c.lastSeen.set(hop.op.key, out.value);
      if (out.kind === 'cas' && out.ok && hop.op.kind === 'cas') c.lastSeen.set(hop.op.key, hop.op.value);
      if (out.kind !== 'get' && this.q.now >= this.calmStart) this.stats.calmWrites++;
      this.q.after(c.rng.range(0, 30), () => this.clientNext(c));
    });
  }

  // ---- faults ----------------------------------------------------------------------------

  private randomNetProfile(): NetProfile {
    const r = this.rng;
    return {
      loss: r.pick([0, 0.01, 0.05, 0.15]),
      dup: r.pick([0, 0.02, 0.1]),
      minDelay: r.range(1, 3),
      maxDelay: r.pick([5, 15, 40]),
      slow: r.pick([0, 0.02, 0.1]),
    };
  }

  private faultLoop(): void {
    if (!this.faulty) return;
    const r = this.rng;
    const roll = r.float();
    const live = this.members();
    if (roll < 0.18) this.partitionRandomly(live);
    else if (roll < 0.3) this.heal();
    else if (roll < 0.45) {
      const up = live.filter((n) => n.up);
      const down = live.filter((n) => !n.up);
      if (down.length >= 2 || (down.length > 0 && r.chance(0.5))) {
        const n = r.pick(down);
        this.trace(`restart ${n.id}`);
        this.startNode(n);
      } else if (up.length > 0) {
        const lead = this.leader();
        const n = lead && r.chance(0.4) ? lead : r.pick(up);
        this.crash(n);
        this.q.after(r.range(50, 1500), () => {
          if (this.faulty && !n.up && !n.removed) {
            this.trace(`restart ${n.id}`);
            this.startNode(n);
          }
        });
      }
    } else if (roll < 0.6) this.adminChange();
    else if (roll < 0.7) this.transferLeadership();
    else if (roll < 0.8) this.net = this.randomNetProfile();
    else if (roll < 0.88) {
      const running = live.filter((n) => n.up && !n.paused);
      const lead = this.leader();
      if (running.length > 0) this.pause(lead && !lead.paused && r.chance(0.6) ? lead : r.pick(running));
    }
    this.q.after(r.range(30, 300), () => this.faultLoop());
  }

  private partitionRandomly(live: SimNode[]): void {
    const r = this.rng;
    this.stats.partitions++;
    this.group = new Map();
    this.blocked = new Set();
    const kind = r.intn(3);
    if (kind === 0) {
      const n = r.pick(live);
      this.group.set(n.id, 1);
      this.trace(`partition: isolate ${n.id}`);
    } else if (kind === 1) {
      for (const n of live) this.group.set(n.id, r.intn(2));
      this.trace(`partition: groups ${[...this.group].map(([id, g]) => `${id}:${g}`).join(' ')}`);
    } else {
      // Asymmetric: some directions fail, the reverse works.
      for (const a of live) for (const b of live) if (a !== b && r.chance(0.25)) this.blocked.add(`${a.id}>${b.id}`);
      this.trace(`partition: one-way blocks ${[...this.blocked].join(' ')}`);
    }
  }

  private heal(): void {
    this.group = new Map();
    this.blocked = new Set();
    this.trace('heal');
  }

  private transferLeadership(): void {
    const lead = this.leader();
    if (!lead) return;
    const voters = lead.raw!.raft.trk.voterIds().filter((id) => id !== lead.id);
    if (voters.length === 0) return;
    const to = this.rng.pick(voters);
    this.stats.transfers++;
    this.trace(`transfer leadership ${lead.id} -> ${to}`);
    lead.raw!.transferLeader(to);
    this.pump(lead);
  }

  private adminChange(): void {
    const lead = this.leader();
    if (!lead) return;
    const r = lead.raw!.raft;
    if (r.pendingConfIndex > r.raftLog.applied) return; // one change at a time
    const cs = r.trk.confState();
    const rng = this.rng;
    let cc: ConfChangeV2 | null = null;
    if (cs.votersOutgoing.length > 0) {
      if (!cs.autoLeave) cc = leaveJointChange();
    } else {
      const learners = cs.learners;
      const voters = cs.voters;
      const choices: (() => ConfChangeV2 | null)[] = [];
      if (this.nodes.size < this.maxNodes + 4 && learners.length + voters.length < this.maxNodes) {
        choices.push(() => {
          const id = this.nextId++;
          const n = this.newNode(id);
          this.startNode(n);
          return confChange([{ type: ConfChangeType.AddLearnerNode, nodeId: id }]);
        });
      }
      if (learners.length > 0 && voters.length < 5) {
        choices.push(() => confChange([{ type: ConfChangeType.AddNode, nodeId: rng.pick(learners) }]));
      }
      if (voters.length > 3) {
        choices.push(() => confChange([{ type: ConfChangeType.RemoveNode, nodeId: rng.pick(voters) }]));
        // Demote a voter to learner through a joint configuration (learnersNext).
        choices.push(() => confChange([{ type: ConfChangeType.AddLearnerNode, nodeId: rng.pick(voters) }], ConfChangeTransition.JointImplicit));
      }
      if (learners.length > 0) {
        choices.push(() => confChange([{ type: ConfChangeType.RemoveNode, nodeId: rng.pick(learners) }]));
        // Replace a voter by a learner in one joint step.
        choices.push(() => {
          const changes: ConfChangeSingle[] = [
            { type: ConfChangeType.AddNode, nodeId: rng.pick(learners) },
            { type: ConfChangeType.RemoveNode, nodeId: rng.pick(voters) },
          ];
          return confChange(changes, rng.pick([ConfChangeTransition.Auto, ConfChangeTransition.JointImplicit, ConfChangeTransition.JointExplicit]));
        });
      }
      if (choices.length > 0) cc = rng.pick(choices)();
    }
    if (!cc) return;
    this.trace(`admin proposes conf change at ${lead.id}: ${JSON.stringify(cc.changes)} transition ${cc.transition}`);
    try {
      lead.raw!.proposeConfChange(cc);
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
    this.pump(lead);
  }

  private beginCalm(): void {
    this.faulty = false;
    this.calmStart = this.q.now;
    this.heal();
    this.net = { loss: 0, dup: 0, minDelay: 1, maxDelay: 5, slow: 0 };
    for (const n of this.members()) {
      if (!n.up) this.startNode(n);
      else if (n.paused) {
        n.paused = false;
        const inbox = n.inbox;
        n.inbox = [];
        for (const f of inbox) f();
      }
    }
    this.trace('calm: faults stop, everything heals');
    // An explicit joint config must still be left by the admin.
    const leaveLoop = (): void => {
      this.adminLeaveJointOnly();
      if (this.q.now < this.opts.duration + this.opts.calm) this.q.after(100, leaveLoop);
    };
    this.q.after(100, leaveLoop);
  }

  private adminLeaveJointOnly(): void {
    const lead = this.leader();
    if (!lead) return;
    const r = lead.raw!.raft;
    const cs = r.trk.confState();
    if (cs.votersOutgoing.length === 0 || cs.autoLeave || r.pendingConfIndex > r.raftLog.applied) return;
    try {
      lead.raw!.proposeConfChange(leaveJointChange());
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
    this.pump(lead);
  }

  // ---- safety checks ---------------------------------------------------------------------

  /** Learn in which term a leader committed entries (its commit index moving forward). */
  private observeLeaderCommit(n: SimNode): void {
    const r = n.raw!.raft;
    if (r.state !== StateType.Leader) {
      n.leaderCommitSeen = null;
      return;
    }
    const c = r.raftLog.committed;
    if (!n.leaderCommitSeen || n.leaderCommitSeen.term !== r.term) {
      // Entries committed before this leadership began were committed in earlier terms.
      n.leaderCommitSeen = { term: r.term, index: c, inMemory: c };
      return;
    }
    // Any advance is a moment to crash at, durable yet or not (see maybeCrashSoon).
    if (c > n.leaderCommitSeen.inMemory) this.maybeCrashSoon(n);
    n.leaderCommitSeen.inMemory = Math.max(n.leaderCommitSeen.inMemory, c);
    // A leader that replicates before its own fsync (Ready.sendBeforePersist) counts its unsynced
    // copy in the quorum, so its commit index can run ahead of what is durable on a quorum. That
    // index cannot have left the node yet (it goes out in the next Ready, after the fsync), and a
    // crash meanwhile takes it back: entries are committed once the leader's own copy is durable.
    if (c > n.storage.lastIndex()) return;
    for (let i = n.leaderCommitSeen.index + 1; i <= c; i++) {
      const seen = this.commitTerm.get(i);
      if (!seen || seen.commitTerm > r.term) {
        const entryTerm = r.raftLog.termOrNull(i);
        if (entryTerm !== null) this.commitTerm.set(i, { commitTerm: r.term, entryTerm });
        // A leader of a later term that is already in office must hold it too.
        for (const other of this.nodes.values()) {
          if (other !== n && other.up && other.raw && other.raw.raft.state === StateType.Leader && entryTerm !== null) {
            this.checkLeaderHas(other, i, r.term, entryTerm);
          }
        }
      }
    }
    n.leaderCommitSeen.index = c;
  }

  /**
   * Crash a leader at an interesting moment: it just appended or committed something and its
   * messages may not have left yet (the Figure 8 scenario of the Raft paper needs exactly this).
   */
  private maybeCrashSoon(n: SimNode): void {
    if (!this.faulty || !this.rng.chance(this.crashPointChance)) return;
    const epoch = n.epoch;
    this.q.after(this.rng.range(0, 5), () => {
      if (n.epoch !== epoch || !n.up || n.removed) return;
      this.crash(n);
      this.q.after(this.rng.range(20, 600), () => {
        if (this.faulty && !n.up && !n.removed) {
          this.trace(`restart ${n.id}`);
          this.startNode(n);
        }
      });
    });
  }

  private onLeader(n: SimNode, term: number): void {
    this.stats.leadersElected++;
    this.stats.maxTerm = Math.max(this.stats.maxTerm, term);
    const prev = this.leaders.get(term);
    if (prev !== undefined && prev !== n.id) {
      this.violation(`election safety: ${prev} and ${n.id} both leaders of term ${term}`);
      return;
    }
    this.leaders.set(term, n.id);
    if (this.faulty && this.rng.chance(this.leaderCrashChance)) {
      // New leaders dying before their first entry spreads is where commit rules go wrong (§5.4.2).
      const epoch = n.epoch;
      // Sometimes before its first append leaves (the disk takes up to 4 ms), sometimes after.
      this.q.after(this.rng.chance(0.5) ? this.rng.range(0, 4) : this.rng.range(1, 40), () => {
        if (n.epoch !== epoch || !n.up) return;
        this.crash(n);
        this.q.after(this.rng.range(50, 800), () => {
          if (this.faulty && !n.up && !n.removed) {
            this.trace(`restart ${n.id}`);
            this.startNode(n);
          }
        });
      });
    }
    // Leader completeness: every entry committed so far must be in the new leader's log.
    for (const [index, c] of this.commitTerm) if (!this.checkLeaderHas(n, index, c.commitTerm, c.entryTerm)) return;
  }

  /** A leader of a term after `commitTerm` must hold the entry (index, entryTerm). */
  private checkLeaderHas(n: SimNode, index: number, commitTerm: number, entryTerm: number): boolean {
    const log = n.raw!.raft.raftLog;
    const term = n.raw!.raft.term;
    if (index < log.firstIndex() || commitTerm >= term) return true; // compacted: committed at this node anyway
    const t = log.termOrNull(index);
    if (t !== entryTerm) {
      this.violation(`leader completeness: leader ${n.id} of term ${term} has term ${t} at index ${index}, committed in term ${commitTerm} with entry term ${entryTerm}`);
      return false;
    }
    return true;
  }

  private recordCommitted(n: SimNode, e: Entry): void {
    const data = bytesStr(e.data);
    const seen = this.committed.get(e.index);
    if (seen) {
      if (seen.term !== e.term || seen.type !== e.type || seen.data !== data) {
        this.violation(`state machine safety: ${n.id} applied (term ${e.term}, ${JSON.stringify(data)}) at ${e.index} where another node applied (term ${seen.term}, ${JSON.stringify(seen.data)})`);
      }
      return;
    }
    this.committed.set(e.index, { term: e.term, type: e.type, data });
    this.stats.committedIndex = Math.max(this.stats.committedIndex, e.index);
    const ct = this.commitTerm.get(e.index);
    if (ct && ct.entryTerm !== e.term) {
      this.violation(`state machine safety: ${n.id} applied term ${e.term} at ${e.index} but a leader committed term ${ct.entryTerm} there`);
    }
  }

  private checkSnapshotDigest(index: number, data: Uint8Array, who: string): void {
    const d = bytesStr(data);
    const seen = this.snapshotDigests.get(index);
    if (seen === undefined) this.snapshotDigests.set(index, d);
    else if (seen !== d) this.violation(`state machine safety: ${who} snapshot at ${index} differs from another snapshot at the same index`);
  }

  private periodicChecks(): void {
    this.checkLogMatching();
    if (this.violations.length === 0) this.q.after(500, () => this.periodicChecks());
  }

  /** If two logs hold an entry with the same index and term, they agree on everything before it. */
  private checkLogMatching(): void {
    const logs: { id: NodeId; first: number; ents: Map<number, Entry> }[] = [];
    for (const n of this.nodes.values()) {
      if (!n.up || !n.raw) continue;
      const ents = new Map<number, Entry>();
      for (const e of n.raw.raft.raftLog.allEntries()) ents.set(e.index, e);
      logs.push({ id: n.id, first: n.raw.raft.raftLog.firstIndex(), ents });
    }
    for (let i = 0; i < logs.length; i++) {
      for (let j = i + 1; j < logs.length; j++) {
        const a = logs[i]!;
        const b = logs[j]!;
        const lo = Math.max(a.first, b.first);
        const hi = Math.min(a.first + a.ents.size - 1, b.first + b.ents.size - 1);
        let matched = false;
        for (let k = hi; k >= lo; k--) {
          const ea = a.ents.get(k)!;
          const eb = b.ents.get(k)!;
          if (ea.term === eb.term) {
            if (bytesStr(ea.data) !== bytesStr(eb.data) || ea.type !== eb.type) {
              this.violation(`log matching: ${a.id} and ${b.id} hold different entries at index ${k} of term ${ea.term}`);
              return;
            }
            matched = true;
          } else if (matched) {
            this.violation(`log matching: ${a.id} and ${b.id} agree at a later index but differ in term at ${k} (${ea.term} vs ${eb.term})`);
            return;
          }
        }
      }
    }
  }

  private finalChecks(): void {
    this.checkLogMatching();
    if (this.stats.calmWrites === 0) {
      this.violation('liveness: no write completed during the calm period after every fault healed');
    }
    const history = this.history.filter((h) => !this.failedOps.has(h.id));
    const res = checkHistory(history);
    if (!res.ok) {
      const lines = (res.ops ?? []).map((h) => `    ${describeOp(h)}`).join('\n');
      this.violation(`${res.timedOut ? 'linearizability check gave up (search too large)' : 'linearizability'}: history of key ${res.key} is not linearizable:\n${lines}`);
    }
  }
}

export function runSimulation(opts: SimOptions): SimResult {
  return new Simulation(opts).run();
}
