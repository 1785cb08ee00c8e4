// The managers' side of the agent protocol (proto/dispatcher.proto), after swarmkit's dispatcher.
// It runs on the leader, over the replicated store:
// - Session registers the calling node (description, address, READY) and keeps a stream open;
// - Heartbeat pushes the node's deadline back; a node that misses it is marked DOWN;
// - Assignments streams the node's tasks: a COMPLETE set, then INCREMENTAL batches of changes
//   built from the store's change events;
// - UpdateTaskStatus writes the observed status the agent reports; reports (and registrations)
//   arriving together share transactions (./batcher.ts).
// The calling node is always the one its verified certificate names (callerIdentity), never a
// field of the request: a worker can only see and report on its own tasks.
//
// Heartbeat timing: agents are asked to beat every `heartbeatPeriodMs` (default 2000 ms; longer
// with more than 1,000 nodes, see heartbeatPeriodMs) and a node is DOWN once
// `heartbeatPeriodMs × graceFactor` (default 2.5, so 5 s) passed without one.
// Docker's dispatcher asks for 5 s and allows that period plus a little; we ask for beats more
// often so that a dead node is seen DOWN within 5 s while a node that misses one beat (a GC pause,
// a lost packet) is not flapped.
import { LEADER_ADDR_METADATA } from '../../proto/metadata.js';
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type {
  AssignmentChange,
  AssignmentsMessage,
  AssignmentsRequest,
  DispatcherHandlers,
  HeartbeatRequest,
  HeartbeatResponse,
  SessionMessage,
  SessionRequest,
  UpdateTaskStatusRequest,
  UpdateTaskStatusResponse,
  WeightedPeer,
} from '../../proto/gen/dispatcher.js';
import { Node, NodeSpec, NodeStatus, Task, TaskStateNumber, type TaskState, type TaskStatus } from '../../proto/gen/objects.js';
import { callerIdentity } from '../ca/authz.js';
import { blank, copy } from '../store/blank.js';
import { withConfigData } from './configs.js';
import { WriteBatcher } from './batcher.js';
import type { MemoryStore, StoreEvent } from '../store/memory.js';

export const DEFAULT_HEARTBEAT_PERIOD_MS = 2000;
export const DEFAULT_GRACE_FACTOR = 2.5;
export const DEFAULT_ASSIGNMENT_BATCH_MS = 20;
/** Task status writes per transaction (one Raft entry). */
const MAX_STATUS_BATCH = 500;
/** Node status writes (sessions registering, nodes marked DOWN) per transaction. */
const MAX_NODE_BATCH = 500;
/**
 * A new leader waits for every READY node to open a session before marking it DOWN: one expiry
 * period, plus this much per node, because thousands of nodes reconnecting at once (a TLS
 * handshake and a registration each) take longer than one period, and a node marked DOWN
 * meanwhile has all its tasks rescheduled for nothing.
 */
const ADOPT_MS_PER_NODE = 2;
/** Heartbeats a second the leader is asked to take at most (the period grows with the nodes). */
const MAX_HEARTBEATS_PER_S = 250;
/**
 * Each heartbeat answer asks for the next beat within ±this fraction of the period, so nodes
 * that connected together (a fleet after a failover) do not keep beating together.
 */
const HEARTBEAT_JITTER = 0.1;

export interface DispatcherOptions {
  store: MemoryStore;
  /** Whether this manager leads; calls on a follower fail with UNAVAILABLE. Default: always. */
  isLeader?: () => boolean;
  /** The managers an agent may fail over to (sent in every SessionMessage). */
  managers?: () => WeightedPeer[];
  /** The leader's address, if known: a follower's refusal names it so the agent goes there next. */
  leaderAddr?: () => string | undefined;
  /** The cluster's root CA certificate, sent to agents so they learn of a rotation. */
  rootCaPem?: () => string;
  heartbeatPeriodMs?: number;
  /** A node is DOWN after heartbeatPeriodMs × graceFactor without a heartbeat. */
  graceFactor?: number;
  /** How long store changes are collected into one INCREMENTAL message. */
  assignmentBatchMs?: number;
  log?: (message: string, fields: Record<string, unknown>) => void;
}

/** A change of a node's status, written with others in one transaction. */
interface NodeStatusWrite {
  nodeId: string;
  status: Partial<NodeStatus>;
  description?: SessionRequest['description'];
  /** Checked inside the transaction: false leaves the node alone. */
  still: () => boolean;
}

interface StatusReport {
  nodeId: string;
  updates: UpdateTaskStatusRequest['updates'];
}

interface NodeSession {
  id: string;
  nodeId: string;
  expiry: NodeJS.Timeout;
  /** Ends the session's open streams (Session and Assignments). */
  closers: Set<() => void>;
}

/** Tasks an agent is told about: assigned to it, placed (ASSIGNED or later), not yet orphaned. */
function isAssignment(task: Task, nodeId: string): boolean {
  return (
    task.nodeId === nodeId &&
    TaskStateNumber[task.desiredState] <= TaskStateNumber.REMOVE &&
    TaskStateNumber[task.status?.state ?? 'NEW'] >= TaskStateNumber.ASSIGNED
  );
}

/** True when two versions of a task differ in more than the status (and store metadata). */
function differsBeyondStatus(a: Task, b: Task): boolean {
  const strip = (t: Task) => Buffer.from(Task.encode({ ...t, status: null, meta: null }));
  return !strip(a).equals(strip(b));
}

function peerHost(peer: string): string {
  // grpc-js peers look like "127.0.0.1:5000" or "[::1]:5000".
  const m = /^\[?(.*?)\]?:\d+$/.exec(peer);
  return m ? m[1]! : peer;
}

function grpcError(code: grpc.status, details: string): grpc.ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() });
}

/** Serve it with `server.addService(DispatcherService, dispatcher.handlers())`. */
export class Dispatcher {
  private readonly sessions = new Map<string, NodeSession>();
  private stopped = false;
  private readonly nodeWrites = new WriteBatcher<NodeStatusWrite, Node | undefined>((ws) => this.writeNodeStatuses(ws), MAX_NODE_BATCH);
  private readonly statusWrites = new WriteBatcher<StatusReport, undefined>((rs) => this.writeTaskStatuses(rs), MAX_STATUS_BATCH, (r) => Math.max(1, r.updates.length));

  /**
   * Tasks whose status this dispatcher is writing, with the version it read: the update that
   * replaces that version is a status report and nothing else, known without comparing the two
   * versions (encoding both, for every report of every task, was a large part of a big leader's work).
   */
  private readonly statusWritesInFlight = new Map<string, { version: number; status: TaskStatus }>();

  constructor(private readonly options: DispatcherOptions) {}

  /**
   * Whether `old` -> `now` is one of this dispatcher's status writes. Another writer that read
   * the same version and won the race made a change of its own (a desired state, most likely): it
   * is told apart by what it changed, since it kept the status it read.
   */
  private ownStatusWrite(old: Task, now: Task): boolean {
    const w = this.statusWritesInFlight.get(old.id);
    if (!w || w.version !== (old.meta?.version ?? 0) || now.desiredState !== old.desiredState || now.nodeId !== old.nodeId) return false;
    const s = now.status;
    return !!s && s.state === w.status.state && s.timestamp === w.status.timestamp && s.message === w.status.message && s.err === w.status.err;
  }

  // One store listener for all nodes' streams, handing each task or node event only to the streams
  // of the node(s) it concerns: with a listener per stream, every store event cost one call per
  // connected node (thousands), which kept a large cluster's leader busy.
  private readonly routes = new Map<string, Set<(ev: StoreEvent) => void>>();
  private routing = false;
  private readonly routeEvent = (ev: StoreEvent): void => {
    const deliver = (nodeId: string | undefined) => {
      if (!nodeId) return;
      for (const f of this.routes.get(nodeId) ?? []) f(ev);
    };
    if (ev.table === 'tasks') {
      const now = (ev.object as Task).nodeId;
      const before = (ev.old as Task | undefined)?.nodeId;
      deliver(now);
      if (before !== now) deliver(before);
    } else if (ev.table === 'nodes') {
      deliver((ev.object as Node).id);
    }
  };

  private route(nodeId: string, f: (ev: StoreEvent) => void): void {
    if (!this.routing) {
      this.routing = true;
      this.options.store.on('change', this.routeEvent);
    }
    let set = this.routes.get(nodeId);
    if (!set) this.routes.set(nodeId, (set = new Set()));
    set.add(f);
  }

  private unroute(nodeId: string, f: (ev: StoreEvent) => void): void {
    const set = this.routes.get(nodeId);
    if (!set) return;
    set.delete(f);
    if (set.size === 0) this.routes.delete(nodeId);
  }

  /** The grpc-js implementation of the Dispatcher service. */
  handlers(): DispatcherHandlers {
    return { session: this.session, heartbeat: this.heartbeat, assignments: this.assignments, updateTaskStatus: this.updateTaskStatus };
  }

  /**
   * The option, else the cluster's setting (`swarm init --dispatcher-heartbeat`), else the default;
   * stretched when so many nodes are connected that beating at that period would make more than
   * MAX_HEARTBEATS_PER_S calls a second (each one a TLS-authenticated RPC on the leader, whose
   * certificate is read twice, by authz and by the handler): 5,000 nodes beat every 20 s, and are
   * DOWN 50 s after they stop (Kubernetes allows 40 s); up to 500 nodes keep the 2 s.
   */
  get heartbeatPeriodMs(): number {
    const fromCluster = this.options.store.all('clusters')[0]?.spec?.heartbeatPeriodMs;
    const period = this.options.heartbeatPeriodMs ?? (fromCluster && fromCluster > 0 ? fromCluster : DEFAULT_HEARTBEAT_PERIOD_MS);
    return Math.max(period, Math.ceil(this.sessions.size / MAX_HEARTBEATS_PER_S) * 1000);
  }

  private get expiryMs(): number {
    return this.heartbeatPeriodMs * (this.options.graceFactor ?? DEFAULT_GRACE_FACTOR);
  }

  private log(message: string, fields: Record<string, unknown>): void {
    this.options.log?.(message, fields);
  }

  private readonly adoptTimers = new Set<NodeJS.Timeout>();

  /**
   * On becoming leader: serve again, and give every node the store says is READY one grace
   * period to open a session here; one that does not (its agent died with the old leader, say)
   * is marked DOWN.
   */
  start(): void {
    this.stopped = false;
    const ready = this.options.store.all('nodes').filter((n) => n.status?.state === 'READY' && !this.sessions.has(n.id));
    const graceMs = this.expiryMs + ready.length * ADOPT_MS_PER_NODE;
    for (const n of ready) {
      const timer = setTimeout(() => {
        this.adoptTimers.delete(timer);
        if (this.stopped || this.sessions.has(n.id)) return;
        this.log('node opened no session with the new leader: marking it down', { node: n.id });
        this.markDown(n.id).catch((err: unknown) => this.log('could not mark node down', { node: n.id, error: String(err) }));
      }, graceMs);
      this.adoptTimers.add(timer);
    }
  }

  /** Ends every session and stream, without marking nodes DOWN (a new leader takes over). */
  stop(): void {
    this.stopped = true;
    for (const t of this.adoptTimers) clearTimeout(t);
    this.adoptTimers.clear();
    for (const s of [...this.sessions.values()]) this.dropSession(s);
    const err = new Error('this manager stopped dispatching (leadership lost)');
    this.nodeWrites.failAll(err);
    this.statusWrites.failAll(err);
  }

  /** Who is calling, or the reason the call may not proceed. */
  private caller(call: Parameters<typeof callerIdentity>[0]): string | grpc.ServiceError {
    if (this.stopped || !(this.options.isLeader?.() ?? true)) {
      const err = grpcError(grpc.status.UNAVAILABLE, 'not the leader');
      const leader = this.options.leaderAddr?.();
      if (leader) err.metadata.set(LEADER_ADDR_METADATA, leader);
      return err;
    }
    const identity = callerIdentity(call);
    if (!identity) return grpcError(grpc.status.UNAUTHENTICATED, 'a node certificate is required');
    if (!this.options.store.get('nodes', identity.nodeId)) return grpcError(grpc.status.NOT_FOUND, `node ${identity.nodeId} is not part of the cluster`);
    return identity.nodeId;
  }

  private validSession(nodeId: string, sessionId: string): NodeSession | grpc.ServiceError {
    const s = this.sessions.get(nodeId);
    if (!s || s.id !== sessionId) return grpcError(grpc.status.NOT_FOUND, `session ${JSON.stringify(sessionId)} of node ${nodeId} is not open: open a new one`);
    return s;
  }

  private dropSession(s: NodeSession): void {
    clearTimeout(s.expiry);
    if (this.sessions.get(s.nodeId) === s) this.sessions.delete(s.nodeId);
    for (const close of [...s.closers]) close();
    s.closers.clear();
  }

  private armExpiry(s: NodeSession): void {
    clearTimeout(s.expiry);
    s.expiry = setTimeout(() => this.expire(s), this.expiryMs);
  }

  private expire(s: NodeSession): void {
    if (this.sessions.get(s.nodeId) !== s) return;
    this.log('node missed its heartbeat: marking it down', { node: s.nodeId, session: s.id });
    this.dropSession(s);
    this.markDown(s.nodeId).catch((err: unknown) =>
      this.log('could not mark node down', { node: s.nodeId, error: String(err) }),
    );
  }

  /**
   * DOWN after a missed heartbeat, unless the node opened a new session meanwhile. The check runs
   * inside the transaction because a transaction refused as stale re-runs on fresh state: by then
   * the node's new session may have written READY, which must not be overwritten.
   */
  private markDown(nodeId: string): Promise<Node | undefined> {
    return this.setNodeStatus(nodeId, { state: 'DOWN', message: 'heartbeat failure' }, undefined, () => !this.sessions.has(nodeId));
  }

  private setNodeStatus(nodeId: string, status: Partial<NodeStatus>, description?: SessionRequest['description'], still: () => boolean = () => true): Promise<Node | undefined> {
    return this.nodeWrites.add({ nodeId, status, description, still });
  }

  /** One transaction for many nodes' status changes (a reconnecting fleet registers together). */
  private writeNodeStatuses(writes: NodeStatusWrite[]): Promise<(Node | undefined)[]> {
    return this.options.store.update((tx) => {
      const written = new Map<string, Node>();
      const results = writes.map((w) => {
        const current = written.get(w.nodeId) ?? tx.get('nodes', w.nodeId);
        if (!current || !w.still()) return undefined;
        // The same node twice in one batch (a quick reconnect): one write with the latest status.
        const node = written.get(w.nodeId) ?? copy(Node, current);
        node.status = { ...blank(NodeStatus), ...node.status, ...w.status };
        if (w.description) node.description = w.description;
        if (!written.has(w.nodeId)) {
          tx.update('nodes', node);
          written.set(w.nodeId, node);
        }
        return node;
      });
      return results;
    });
  }

  /** The task as its agent needs it (the agent has no store): each attachment carries its Network, each config reference its data. */
  private withNetworks(stored: Task): Task {
    const task = withConfigData(stored, (id) => this.options.store.get('configs', id));
    if (task.networks.length === 0) return task;
    return { ...task, networks: task.networks.map((a) => ({ ...a, network: this.options.store.get('networks', a.networkId) ?? null })) };
  }

  // ---- Session ------------------------------------------------------------------------------

  session: grpc.handleServerStreamingCall<SessionRequest, SessionMessage> = (call) => {
    const nodeId = this.caller(call);
    if (typeof nodeId !== 'string') {
      call.emit('error', nodeId);
      return;
    }
    const old = this.sessions.get(nodeId);
    if (old) this.dropSession(old); // one session per node: a reconnect replaces the old one
    const s: NodeSession = { id: randomUUID(), nodeId, expiry: setTimeout(() => undefined, 0), closers: new Set() };
    this.sessions.set(nodeId, s);
    this.armExpiry(s);
    const message = (node: Node | null): SessionMessage => ({ sessionId: s.id, node, managers: this.options.managers?.() ?? [], rootCaPem: this.options.rootCaPem?.() ?? '' });
    // The node's spec changing (a promotion, demotion, drain) is news for its agent: send it.
    const onNodeChange = (ev: StoreEvent) => {
      if (ev.table !== 'nodes' || ev.kind !== 'update' || (ev.object as Node).id !== nodeId) return;
      const old = ev.old as Node | undefined;
      const now = ev.object as Node;
      const sameSpec = old?.spec && now.spec && Buffer.from(NodeSpec.encode(old.spec)).equals(NodeSpec.encode(now.spec));
      // Leaving Raft after a demotion shows as the manager status going away: news too.
      const sameRaft = (old?.managerStatus?.raftId ?? 0) === (now.managerStatus?.raftId ?? 0);
      if (sameSpec && sameRaft) return;
      call.write(message(ev.object as Node));
    };
    const close = () => {
      this.unroute(nodeId, onNodeChange);
      call.end();
    };
    s.closers.add(close);
    // A closed stream does not end the session: only a missed heartbeat marks the node DOWN, so a
    // quick reconnect (or a failover to this manager) does not flap it.
    call.on('cancelled', () => {
      this.unroute(nodeId, onNodeChange);
      s.closers.delete(close);
    });
    const addr = peerHost(call.getPeer());
    const openedAt = Date.now();
    this.setNodeStatus(nodeId, { state: 'READY', message: '', addr }, call.request.description ?? undefined).then(
      (node) => {
        if (!s.closers.has(close)) return;
        // The node's first beat follows this message: its deadline counts from now, not from
        // before a registration that waited for its batch.
        this.armExpiry(s);
        call.write(message(node ?? null));
        this.route(nodeId, onNodeChange);
        this.log('session opened', { node: nodeId, session: s.id, addr, registeredMs: Date.now() - openedAt });
      },
      (err: unknown) => {
        this.dropSession(s);
        call.emit('error', grpcError(grpc.status.UNAVAILABLE, `could not register node ${nodeId}: ${String(err)}`));
      },
    );
  };

  // ---- Heartbeat ----------------------------------------------------------------------------

  heartbeat: grpc.handleUnaryCall<HeartbeatRequest, HeartbeatResponse> = (call, callback) => {
    const nodeId = this.caller(call);
    if (typeof nodeId !== 'string') return callback(nodeId);
    const s = this.validSession(nodeId, call.request.sessionId);
    if (!('id' in s)) return callback(s);
    this.armExpiry(s);
    const period = this.heartbeatPeriodMs;
    callback(null, { periodMs: Math.round(period * (1 - HEARTBEAT_JITTER + Math.random() * 2 * HEARTBEAT_JITTER)) });
  };

  // ---- Assignments --------------------------------------------------------------------------

  assignments: grpc.handleServerStreamingCall<AssignmentsRequest, AssignmentsMessage> = (call) => {
    const nodeId = this.caller(call);
    if (typeof nodeId !== 'string') {
      call.emit('error', nodeId);
      return;
    }
    const s = this.validSession(nodeId, call.request.sessionId);
    if (!('id' in s)) {
      call.emit('error', s);
      return;
    }
    const store = this.options.store;
    const batchMs = this.options.assignmentBatchMs ?? DEFAULT_ASSIGNMENT_BATCH_MS;
    const sent = new Set<string>(); // tasks the agent has now
    let pending = new Map<string, AssignmentChange>();
    let timer: NodeJS.Timeout | undefined;
    let sequence = 0;
    let version = '';
    const nextVersion = () => `${s.id}/${++sequence}`;

    const sendComplete = () => {
      pending = new Map();
      sent.clear();
      const changes: AssignmentChange[] = [];
      for (const task of store.find('tasks', 'node', nodeId)) {
        if (!isAssignment(task, nodeId)) continue;
        sent.add(task.id);
        changes.push({ action: 'UPDATE', task: this.withNetworks(task) });
      }
      const resultsIn = nextVersion();
      call.write({ type: 'COMPLETE', appliesTo: '', resultsIn, changes });
      version = resultsIn;
    };
    const flush = () => {
      timer = undefined;
      if (pending.size === 0) return;
      const changes = [...pending.values()];
      pending = new Map();
      const resultsIn = nextVersion();
      call.write({ type: 'INCREMENTAL', appliesTo: version, resultsIn, changes });
      version = resultsIn;
    };
    const queue = (change: AssignmentChange, id: string) => {
      pending.set(id, change);
      timer ??= setTimeout(flush, batchMs);
    };
    const onChange = (ev: StoreEvent) => {
      if (ev.table !== 'tasks') return;
      const task = ev.object as Task;
      const old = ev.old as Task | undefined;
      const wanted = ev.kind !== 'remove' && isAssignment(task, nodeId);
      if (wanted) {
        // The agent's own status reports come back as updates: don't echo them.
        if (sent.has(task.id) && old && (this.ownStatusWrite(old, task) || !differsBeyondStatus(old, task))) return;
        sent.add(task.id);
        queue({ action: 'UPDATE', task: this.withNetworks(task) }, task.id);
      } else if (sent.has(task.id)) {
        sent.delete(task.id);
        queue({ action: 'REMOVE', task }, task.id);
      }
    };
    const onRestore = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      sendComplete();
    };
    let closed = false;
    const cleanup = () => {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      this.unroute(nodeId, onChange);
      store.off('restore', onRestore);
      s.closers.delete(close);
    };
    const close = () => {
      cleanup();
      call.end();
    };
    s.closers.add(close);
    call.on('cancelled', cleanup);
    call.on('error', cleanup);
    // Subscribe and read in the same tick: no change can fall between the set and the increments.
    this.route(nodeId, onChange);
    store.on('restore', onRestore);
    sendComplete();
  };

  // ---- UpdateTaskStatus ---------------------------------------------------------------------

  updateTaskStatus: grpc.handleUnaryCall<UpdateTaskStatusRequest, UpdateTaskStatusResponse> = (call, callback) => {
    const nodeId = this.caller(call);
    if (typeof nodeId !== 'string') return callback(nodeId);
    const s = this.validSession(nodeId, call.request.sessionId);
    if (!('id' in s)) return callback(s);
    this.applyStatuses(nodeId, call.request.updates).then(
      () => callback(null, {}),
      (err: unknown) => callback(grpcError(grpc.status.UNAVAILABLE, `could not record task status: ${String(err)}`)),
    );
  };

  private async applyStatuses(nodeId: string, updates: UpdateTaskStatusRequest['updates']): Promise<void> {
    await this.statusWrites.add({ nodeId, updates });
  }

  /** One transaction for the reports of many nodes (swarmkit's dispatcher batches them too). */
  private async writeTaskStatuses(reports: StatusReport[]): Promise<undefined[]> {
    const versions = new Map<string, { version: number; status: TaskStatus }>();
    try {
      await this.writeTaskStatusesOnce(reports, versions);
    } finally {
      for (const [id, v] of versions) if (this.statusWritesInFlight.get(id) === v) this.statusWritesInFlight.delete(id);
    }
    return reports.map(() => undefined);
  }

  private async writeTaskStatusesOnce(reports: StatusReport[], versions: Map<string, { version: number; status: TaskStatus }>): Promise<void> {
    await this.options.store.update((tx) => {
      const written = new Map<string, Task>();
      for (const { nodeId, updates } of reports) {
        for (const u of updates) {
          if (!u.status) continue;
          const current = written.get(u.taskId) ?? tx.get('tasks', u.taskId);
          // Unknown tasks (removed meanwhile) are ignored; another node's tasks are not the caller's to report.
          if (!current) continue;
          if (current.nodeId !== nodeId) {
            this.log('ignoring status for a task of another node', { node: nodeId, task: u.taskId, owner: current.nodeId });
            continue;
          }
          const have: TaskState = current.status?.state ?? 'NEW';
          if (TaskStateNumber[u.status.state] < TaskStateNumber[have]) continue; // observed state only moves forward
          // A task reported twice in one batch is written once, with its latest status.
          const task = written.get(u.taskId) ?? { ...current };
          task.status = u.status;
          if (!written.has(u.taskId)) {
            tx.update('tasks', task);
            written.set(u.taskId, task);
          }
          const w = { version: current.meta?.version ?? 0, status: u.status };
          versions.set(u.taskId, w);
          this.statusWritesInFlight.set(u.taskId, w);
        }
      }
    });
  }
}
