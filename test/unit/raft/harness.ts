// A synchronous in-memory cluster for unit tests (like etcd's newNetwork): each node persists its
// Ready to a MemoryStorage, applies committed entries, and hands its messages to the network,
// which delivers them (unless dropped by a filter) until nothing moves.
import {
  MemoryStorage,
  RawNode,
  SeededRandom,
  StateType,
  StepPeerNotFoundError,
  decodeConfChange,
  type RaftConfig,
} from '../../../manager/raft/core/index.js';
import { EntryType, MessageType, type ConfState, type Entry, type Message, type NodeId, type ReadState } from '../../../manager/raft/types.js';

export interface TestNode {
  id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  /** Normal entries with data, in apply order. */
  applied: Entry[];
  readStates: ReadState[];
  confState: ConfState;
}

export function bootStorage(voters: NodeId[], learners: NodeId[] = []): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot({
    metadata: { index: 1, term: 1, confState: { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false } },
    data: new Uint8Array(0),
  });
  s.setHardState({ term: 1, vote: 0, commit: 1 });
  return s;
}

export const data = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

export class TestCluster {
  nodes = new Map<NodeId, TestNode>();
  /** Drop a message when this returns true. */
  drop: (m: Message) => boolean = () => false;
  /** Every message delivered, for assertions. */
  delivered: Message[] = [];
  private cut = new Set<string>();

  constructor(voters: NodeId[], config: Partial<RaftConfig> = {}, learners: NodeId[] = []) {
    for (const id of [...voters, ...learners]) this.add(id, bootStorage(voters, learners), config);
  }

  add(id: NodeId, storage: MemoryStorage, config: Partial<RaftConfig> = {}): TestNode {
    const raw = new RawNode({ id, random: new SeededRandom(id), applied: storage.snapshot().metadata.index, ...config }, storage);
    const node: TestNode = { id, raw, storage, applied: [], readStates: [], confState: storage.snapshot().metadata.confState };
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): TestNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  raft(id: NodeId) {
    return this.node(id).raw.raft;
  }

  /** Cut both directions between a and b. */
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cutLink(id, other);
  }

  cutLink(a: NodeId, b: NodeId): void {
    this.cut.add(`${a}>${b}`);
    this.cut.add(`${b}>${a}`);
  }

  heal(): void {
    this.cut.clear();
  }

  /** Persist, apply and collect messages of every node's Ready. */
  private drain(): Message[] {
    const out: Message[] = [];
    for (const n of this.nodes.values()) {
      while (n.raw.hasReady()) {
        const rd = n.raw.ready();
        if (rd.snapshot) {
          n.storage.applySnapshot(rd.snapshot);
          n.confState = rd.snapshot.metadata.confState;
        }
        n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        let appliedIndex = rd.snapshot ? rd.snapshot.metadata.index : n.raw.raft.raftLog.applied;
        for (const e of rd.committedEntries) {
          if (e.type === EntryType.ConfChange) n.confState = n.raw.applyConfChange(decodeConfChange(e.data));
          else if (e.data.length > 0) n.applied.push(e);
          appliedIndex = e.index;
        }
        for (const m of rd.messages) {
          // A snapshot from before the recipient joined would be refused: send a fresh one.
          const cs = m.snapshot?.metadata.confState;
          if (m.type === MessageType.MsgSnap && cs && ![...cs.voters, ...cs.learners, ...cs.votersOutgoing].includes(m.to)) {
            if (appliedIndex > n.storage.snapshot().metadata.index) n.storage.createSnapshot(appliedIndex, n.confState, new Uint8Array(0));
            m.snapshot = n.storage.snapshot();
          }
          out.push(m);
        }
        n.readStates.push(...rd.readStates);
        n.raw.advance();
      }
    }
    return out;
  }

  /** Run until no node has anything to do. */
  stabilize(limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      const msgs = this.drain();
      if (msgs.length === 0) return;
      for (const m of msgs) this.deliver(m);
    }
    throw new Error('cluster did not stabilize');
  }

  deliver(m: Message): void {
    const to = this.nodes.get(m.to);
    if (!to || this.cut.has(`${m.from}>${m.to}`) || this.drop(m)) return;
    this.delivered.push(m);
    try {
      to.raw.step(m);
    } catch (e) {
      if (!(e instanceof StepPeerNotFoundError)) throw e;
    }
  }

  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) {
      this.node(id).raw.tick();
      this.stabilize();
    }
  }

  tickAll(n = 1): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) node.raw.tick();
      this.stabilize();
    }
  }

  campaign(id: NodeId): void {
    this.node(id).raw.campaign();
    this.stabilize();
  }

  propose(id: NodeId, s: string): void {
    this.node(id).raw.propose(data(s));
    this.stabilize();
  }

  leaderIds(): NodeId[] {
    return [...this.nodes.values()].filter((n) => n.raw.raft.state === StateType.Leader).map((n) => n.id);
  }

  appliedData(id: NodeId): string[] {
    return this.node(id).applied.map((e) => text(e.data));
  }
}

export function isType(t: MessageType) {
  return (m: Message): boolean => m.type === t;
}
