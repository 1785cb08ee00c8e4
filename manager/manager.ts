// One manager: the Raft node with the store as its state machine, the cluster port (mutual TLS,
// every call through the authz interceptor) serving Raft, the CA and membership, and — on the
// leader only — the reconcilers: allocator, orchestrator, scheduler. Leadership moves them: a
// manager that loses it stops them and fails its pending writes; one that gains it first waits
// until everything committed before its term is applied, then starts them over the store.
import { reconcileRoles } from './roles.js';
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { MemoryStore, type Proposer } from './store/memory.js';
import { blank } from './store/blank.js';
import { RaftNode, NotLeaderError, linkedTransport, type Member } from './raft/node.js';
import { RaftTransport } from './raft/transport/index.js';
import { NONE } from './raft/types.js';
import { RootCA, type NodeRole } from './ca/ca.js';
import { authzInterceptor, callerIdentity } from './ca/authz.js';
import { registerCAService } from './ca/service.js';
import { newSecret } from './ca/token.js';
import { MutableCertificates, clusterServerCredentials, clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from './ca/tlsconfig.js';
import { Allocator } from './allocator/index.js';
import { defaultIngressNetwork } from './allocator/network.js';
import { Orchestrator } from './orchestrator/orchestrator.js';
import { Scheduler } from './scheduler/index.js';
import { Dispatcher } from './dispatcher/dispatcher.js';
import { LogBroker } from './logbroker/broker.js';
import { LogsFrontend } from './logbroker/frontend.js';
import { LogsService } from '../proto/gen/logs.js';
import { DispatcherService } from '../proto/gen/dispatcher.js';
import { storeKv } from './kv/replicated.js';
import { kvServiceHandlers } from './kv/service.js';
import type { EmbeddedKv } from './kv/embedded.js';
import { KVService } from '../proto/gen/kv.js';
import { LEADER_ADDR_METADATA } from '../proto/metadata.js';
import { MembershipService, type MembershipHandlers } from '../proto/gen/membership.js';
import { Annotations, Cluster, ClusterSpec, JoinTokens, ManagerStatus, Node, NodeDescription, NodeSpec, NodeStatus, RootCA as RootCAObject } from '../proto/gen/objects.js';
import { silentLogger, type Logger } from '../util/log.js';

export interface ManagerConfig {
  nodeId: string;
  raftId: number;
  /** <data-root>/manager: the Raft WAL and snapshots. */
  dataDir: string;
  listenAddr: string;
  advertiseAddr: string;
  hostname: string;
  /** This node's CA certificate, node certificate and key. */
  certs: { ca: string; cert: string; key: string };
  /** The founder of a new cluster brings the CA and the cluster's first settings. */
  bootstrap?: {
    rootCA: RootCA;
    taskHistoryLimit?: number;
    heartbeatPeriodMs?: number;
    defaultAddrPool?: string[];
    subnetSize?: number;
    /** The cluster's KV (ClusterSpec.kv_url): omitted or '' = embedded in the managers. */
    kvUrl?: string;
  };
  /** A manager joining an existing cluster: the members it was told of. */
  join?: Member[];
  tickMs?: number;
  /** Agents' heartbeat period (a silent node is DOWN after 2.5 periods). */
  heartbeatPeriodMs?: number;
  log?: Logger;
}

/** A 53-bit Raft id: random, so managers never collide without coordination. */
export function newRaftId(): number {
  return Number(randomBytes(8).readBigUInt64BE() % BigInt(Number.MAX_SAFE_INTEGER - 1)) + 1;
}

const toProtoRole = (r: NodeRole) => (r === 'manager' ? ('MANAGER' as const) : ('WORKER' as const));
/** How long a manager must stay silent to Raft before `node ls` calls it Unreachable. */
const UNREACHABLE_AFTER_MS = 3000;

export class Manager {
  readonly store = new MemoryStore();
  raft!: RaftNode;
  private transport!: RaftTransport;

  /** Bytes the Raft transport holds queued for the other managers, most first (benches, diagnostics). */
  raftQueuedBytes(): number[] {
    return this.raft
      .voters()
      .map((id) => this.transport.peerStats(id)?.queuedBytes ?? 0)
      .sort((a, b) => b - a);
  }
  private server!: grpc.Server;
  private readonly certs: MutableCertificates;
  private readonly log: Logger;
  private reconcilers: { allocator: Allocator; orchestrator: Orchestrator; scheduler: Scheduler } | null = null;
  private leadershipChain: Promise<void> = Promise.resolve();
  private caCache: { pem: string; ca: RootCA } | null = null;
  private dispatcher!: Dispatcher;
  /** Service logs: the broker runs on the leader; `logs` serves Logs.SubscribeLogs (manager/logbroker). */
  private logBroker!: LogBroker;
  logs!: LogsFrontend;
  private reachabilityTimer: NodeJS.Timeout | null = null;
  /** Raft id → when the leader first saw that member inactive (cleared when it answers again). */
  private readonly inactiveSince = new Map<number, number>();
  /** Leader with everything before its term applied: may write (the KV service's test). */
  private leading = false;
  /**
   * The embedded KV (manager/kv): its state machine rides the store's Raft log and snapshots, so
   * it is registered with the store before Raft replays anything; the leader expires sessions.
   */
  readonly kv: EmbeddedKv;
  port = 0;

  private constructor(readonly config: ManagerConfig) {
    this.log = config.log ?? silentLogger;
    this.certs = new MutableCertificates(config.certs.ca, config.certs.cert, config.certs.key);
    this.kv = storeKv(this.store, {
      leading: () => this.leading,
      onExpiryError: (e) => this.log.debug('kv session expiry failed', { error: e as Error }),
    }).kv;
  }

  static async start(config: ManagerConfig): Promise<Manager> {
    const m = new Manager(config);
    await m.open();
    return m;
  }

  /** The cluster's CA as the store holds it (the founder's until the store has it). */
  rootCA(): RootCA {
    const rc = this.store.all('clusters')[0]?.rootCa;
    if (rc?.caKeyPem) {
      if (this.caCache?.pem !== rc.caCertPem) this.caCache = { pem: rc.caCertPem, ca: new RootCA({ certPem: rc.caCertPem, keyPem: rc.caKeyPem }) };
      return this.caCache.ca;
    }
    if (this.config.bootstrap) return this.config.bootstrap.rootCA;
    throw new Error('this manager has not received the cluster CA yet');
  }

  private async open(): Promise<void> {
    let raft: RaftNode | null = null;
    this.transport = linkedTransport(() => raft, {
      id: this.config.raftId,
      channelCredentials: clusterChannelCredentials(this.config.certs.ca, this.config.certs.cert, this.config.certs.key),
      channelOptions: MANAGER_CHANNEL_OPTIONS,
      log: (e) => this.log.debug('raft transport', e),
    });
    this.server = new grpc.Server({
      ...RaftTransport.serverOptions(),
      interceptors: [
        authzInterceptor({
          caCertPem: () => this.config.certs.ca,
          // Raft traffic is checked by role alone: a joining manager must hear the leader before
          // its store has caught up enough to know any node.
          nodeAllowed: (id, fp, path) => {
            if (path.startsWith('/shoal.raft.')) return true;
            const node = this.store.get('nodes', id.nodeId);
            return node !== undefined && (!node.certificateFingerprint || node.certificateFingerprint === fp);
          },
        }),
      ],
    });
    this.transport.register(this.server);
    registerCAService(this.server, {
      store: this.store,
      rootCA: () => this.rootCA(),
      managerAddrs: () => this.raft.memberList().map((m) => m.addr),
      canWrite: () => this.raft.isLeader,
    });
    this.server.addService(MembershipService, this.membershipHandlers());
    this.dispatcher = new Dispatcher({
      store: this.store,
      isLeader: () => this.raft?.isLeader ?? false,
      managers: () => this.raft.memberList().map((m) => ({ nodeId: '', addr: m.addr, weight: 1 })),
      leaderAddr: () => this.raft.memberList().find((m) => m.id === this.raft.leader)?.addr,
      rootCaPem: () => this.rootCA().certPem,
      heartbeatPeriodMs: this.config.heartbeatPeriodMs,
      log: (message, fields) => this.log.debug(message, fields),
    });
    this.server.addService(DispatcherService, this.dispatcher.handlers());
    const leaderAddr = () => this.raft?.memberList().find((m) => m.id === this.raft.leader)?.addr;
    this.logBroker = new LogBroker({ store: this.store, leaderAddr, log: (message, fields) => this.log.debug(message, fields) });
    this.logBroker.register(this.server);
    this.logs = new LogsFrontend({ broker: this.logBroker, isLeader: () => this.raft?.isLeader ?? false, leaderAddr });
    this.server.addService(LogsService, this.logs.clusterHandlers());
    // The KV for agents: reads on any manager, writes redirected to the leader (manager/kv/service.ts).
    this.server.addService(
      KVService,
      kvServiceHandlers({
        kv: this.kv,
        canWrite: () => this.leading,
        leaderAddr: () => this.raft?.memberList().find((m) => m.id === this.raft.leader)?.addr,
        backendUrl: () => this.store.all('clusters')[0]?.spec?.kvUrl ?? '',
        log: (message, fields) => this.log.debug(message, fields),
      }),
    );
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(this.config.listenAddr, clusterServerCredentials(this.certs), (err, p) => (err ? reject(new Error(`cannot listen on ${this.config.listenAddr}: ${err.message}`)) : resolve(p))),
    );
    raft = await RaftNode.open({
      id: this.config.raftId,
      dataDir: join(this.config.dataDir, 'raft'),
      transport: this.transport,
      stateMachine: { apply: (d, i) => this.store.apply(d, i), snapshot: () => this.store.snapshot(), restore: (d, i) => this.store.restore(d, i) },
      bootstrapAddr: this.config.bootstrap ? this.config.advertiseAddr : undefined,
      join: this.config.join,
      tickMs: this.config.tickMs,
      onFatal: (e) => this.log.error('raft stopped', { error: e }),
    });
    this.raft = raft;
    raft.on('leader', (lead: number) => {
      this.leadershipChain = this.leadershipChain.then(() => this.onLeader(lead)).catch((e: unknown) => this.log.error('leadership change failed', { error: e as Error }));
    });
    raft.start();
  }

  private async onLeader(lead: number): Promise<void> {
    const isLeader = lead === this.config.raftId;
    if (!isLeader) {
      this.leading = false;
      if (this.reconcilers) {
        this.store.setProposer(null);
        this.store.abortPending(new NotLeaderError(lead));
        const r = this.reconcilers;
        this.reconcilers = null;
        this.stopReachability();
        this.dispatcher.stop();
        this.logBroker.stop();
        r.allocator.stop();
        await r.orchestrator.stop();
        await r.scheduler.stop();
        this.log.info('lost leadership', { leader: lead });
      }
      return;
    }
    // Everything committed before this term must be applied before deciding anything.
    await this.raft.readBarrier();
    if (this.raft.leader !== this.config.raftId) return;
    const proposer: Proposer = { propose: (data) => this.raft.propose(data) };
    this.store.setProposer(proposer);
    this.leading = true;
    // Consul's rule: a new leader restarts every KV session's TTL, so agents that could not renew
    // while there was no leader keep their keys.
    this.kv.resetSessionTimers().catch((e: unknown) => this.log.debug('kv session timer reset failed', { error: e as Error }));
    if (this.store.all('clusters').length === 0 && this.config.bootstrap) await this.createCluster();
    const allocator = new Allocator(this.store, { logger: this.log.child('allocator') });
    const orchestrator = new Orchestrator(this.store, { logger: this.log.child('orchestrator'), allocatorRuns: true });
    const scheduler = new Scheduler(this.store, { logger: this.log.child('scheduler') });
    this.reconcilers = { allocator, orchestrator, scheduler };
    this.dispatcher.start();
    this.logBroker.start();
    this.reachabilityTimer = setInterval(() => {
      this.updateReachability().catch((e: unknown) => this.log.debug('reachability update failed', { error: e as Error }));
      reconcileRoles({ raft: this.raft, store: this.store, selfRaftId: this.config.raftId, log: (m, f) => this.log.info(m, f) }).catch((e: unknown) =>
        this.log.debug('role reconciliation failed', { error: e as Error }),
      );
    }, 1000);
    await allocator.start();
    orchestrator.start();
    scheduler.start();
    this.log.info('leading the cluster', { raftId: this.config.raftId });
  }

  /** The founder's first transaction: the Cluster object, its own Node, the ingress network. */
  private async createCluster(): Promise<void> {
    const b = this.config.bootstrap!;
    const ca = b.rootCA;
    await this.store.update((tx) => {
      tx.create(
        'clusters',
        blank(Cluster, {
          id: ca.clusterId,
          spec: blank(ClusterSpec, {
            annotations: blank(Annotations, { name: 'default' }),
            taskHistoryRetentionLimit: b.taskHistoryLimit ?? 5,
            heartbeatPeriodMs: b.heartbeatPeriodMs ?? 0, // 0: the dispatcher's default (2 s: DOWN after 5 s)
            kvUrl: b.kvUrl ?? '',
          }),
          rootCa: blank(RootCAObject, { caCertPem: ca.certPem, caKeyPem: ca.keyPem, caDigest: ca.digest() }),
          joinTokens: blank(JoinTokens, { worker: newSecret(), manager: newSecret() }),
          defaultAddressPool: b.defaultAddrPool ?? [],
          subnetSize: b.subnetSize ?? 0,
        }),
      );
      tx.create(
        'nodes',
        blank(Node, {
          id: this.config.nodeId,
          role: toProtoRole('manager'),
          spec: blank(NodeSpec, { annotations: blank(Annotations), desiredRole: 'MANAGER', availability: 'ACTIVE' }),
          description: blank(NodeDescription, { hostname: this.config.hostname }),
          status: blank(NodeStatus, { state: 'UNKNOWN', addr: this.config.advertiseAddr }),
          managerStatus: blank(ManagerStatus, { raftId: this.config.raftId, addr: this.config.advertiseAddr, leader: true, reachability: 'REACHABLE' }),
        }),
      );
      tx.create('networks', defaultIngressNetwork(newRaftId().toString(36)));
    });
  }

  private stopReachability(): void {
    if (this.reachabilityTimer) clearInterval(this.reachabilityTimer);
    this.reachabilityTimer = null;
  }

  /**
   * The leader records which managers answer Raft, so `node ls` anywhere shows Unreachable ones.
   * Raft's recent-activity flag is reset every election timeout, so one slow heartbeat round (a
   * loaded machine, a member that has just joined and is still starting) clears it; a member is
   * called Unreachable only after it has stayed inactive for UNREACHABLE_AFTER_MS.
   */
  private async updateReachability(): Promise<void> {
    const active = this.raft.activePeers();
    if (active.size === 0) return;
    const now = Date.now();
    for (const id of this.inactiveSince.keys()) if (active.get(id) !== false) this.inactiveSince.delete(id);
    for (const [id, ok] of active) if (!ok && !this.inactiveSince.has(id)) this.inactiveSince.set(id, now);
    const want = (raftId: number) => {
      const since = this.inactiveSince.get(raftId);
      return since !== undefined && now - since >= UNREACHABLE_AFTER_MS ? 'UNREACHABLE' : 'REACHABLE';
    };
    const changed = this.store.all('nodes').filter((n) => {
      const raftId = n.managerStatus?.raftId;
      return !!raftId && active.has(raftId) && n.managerStatus!.reachability !== want(raftId);
    });
    if (changed.length === 0) return;
    await this.store.update((tx) => {
      for (const n of changed) {
        const cur = tx.get('nodes', n.id);
        if (!cur?.managerStatus) continue;
        tx.update('nodes', { ...cur, managerStatus: { ...cur.managerStatus, reachability: want(cur.managerStatus.raftId) } });
      }
    });
  }

  private membershipHandlers(): MembershipHandlers {
    return {
      joinRaft: (call, cb) => {
        const who = callerIdentity(call);
        if (!who) return cb({ code: grpc.status.UNAUTHENTICATED, details: 'no certificate' });
        if (!this.raft.isLeader) {
          // Name the leader so the joining manager can go there itself (an election may have
          // moved leadership since it read the address from its join command).
          const metadata = new grpc.Metadata();
          const leaderAddr = this.raft.memberList().find((m) => m.id === this.raft.leader)?.addr;
          if (leaderAddr) metadata.set(LEADER_ADDR_METADATA, leaderAddr);
          return cb({ code: grpc.status.UNAVAILABLE, details: new NotLeaderError(this.raft.leader).message, metadata });
        }
        const node = this.store.get('nodes', who.nodeId);
        const raftId = node?.managerStatus?.raftId || newRaftId();
        const addr = call.request.addr;
        // Record the member first: once it is a voter, a two-member cluster cannot commit
        // anything until the new member runs, which it does only after this call returns.
        this.store
          .update((tx) => {
            const n = tx.get('nodes', who.nodeId);
            if (n) tx.update('nodes', { ...n, managerStatus: blank(ManagerStatus, { raftId, addr, reachability: 'REACHABLE' }) });
          })
          .then(() => this.raft.addMember(raftId, addr))
          .then(
            () => cb(null, { raftId, members: this.raft.memberList().map((m) => ({ raftId: m.id, addr: m.addr, nodeId: '' })) }),
            (e: unknown) => cb({ code: grpc.status.UNAVAILABLE, details: (e as Error).message }),
          );
      },
      leaveRaft: (call, cb) => {
        if (!this.raft.isLeader) return cb({ code: grpc.status.UNAVAILABLE, details: new NotLeaderError(this.raft.leader).message });
        this.raft.removeMember(call.request.raftId).then(
          () => cb(null, {}),
          (e: unknown) => cb({ code: grpc.status.UNAVAILABLE, details: (e as Error).message }),
        );
      },
    };
  }

  /** The address this manager listens on, as dialled from the same machine. */
  addrForTests(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Serves another service on the cluster port (mutual TLS; the authz interceptor guards it). */
  addService(service: grpc.ServiceDefinition, handlers: grpc.UntypedServiceImplementation): void {
    this.server.addService(service, handlers);
  }

  /** A renewed node certificate (or rotated CA): new connections to this manager use it. */
  updateCertificates(next: { ca?: string; cert?: string; key?: string }): void {
    this.certs.update(next);
  }

  get isLeader(): boolean {
    return this.raft.isLeader;
  }

  get hasLeader(): boolean {
    return this.raft.leader !== NONE;
  }

  async stop(): Promise<void> {
    await this.leadershipChain;
    this.leading = false;
    // Watches in flight end now (their clients fail over), before the port closes.
    await this.kv.close();
    if (this.reconcilers) {
      const r = this.reconcilers;
      this.reconcilers = null;
      this.store.setProposer(null);
      this.store.abortPending(new Error('the manager is stopping'));
      r.allocator.stop();
      await r.orchestrator.stop();
      await r.scheduler.stop();
    }
    this.stopReachability();
    this.dispatcher.stop();
    this.logBroker.stop('the manager is stopping');
    await this.raft.stop();
    await this.transport.close();
    this.server.forceShutdown();
  }
}
