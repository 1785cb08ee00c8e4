// This node's membership in a swarm: `init` founds one, `join` enters one, and a restarted shoald
// resumes from what is on disk (<data-root>/swarm/state.json and the certificates beside it).
import type { Node } from '../proto/gen/objects.js';
import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync, rmSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Manager, newRaftId } from '../manager/manager.js';
import { RootCA, newId, newNodeKeyAndCsr } from '../manager/ca/ca.js';
import { formatJoinToken } from '../manager/ca/token.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../manager/ca/tlsconfig.js';
import { MembershipClient, type JoinRaftResponse } from '../proto/gen/membership.js';
import { LEADER_ADDR_METADATA } from '../proto/metadata.js';
import { forceNewCluster } from '../manager/raft/storage/index.js';
import type { Logger } from '../util/log.js';
import { requestNodeCertificate } from './join.js';
import { CertificateRenewer, type NodeCerts, type RenewedCerts } from './renewal.js';
import { Agent, type AgentSettings } from '../agent/agent.js';

/** How long a joining manager keeps asking for a Raft leader that is being elected. */
const JOIN_RAFT_PATIENCE_MS = 30_000;

export interface SwarmState {
  nodeId: string;
  role: 'manager' | 'worker';
  raftId: number;
  listenAddr: string;
  advertiseAddr: string;
  hostname: string;
  managers: string[];
}

/** A new cluster's settings (`swarm init` flags), recorded in its ClusterSpec. */
export interface ClusterSettings {
  taskHistoryLimit?: number;
  heartbeatPeriodMs?: number;
  defaultAddrPool?: string[];
  subnetSize?: number;
}

export class SwarmError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
  }
}

export class Swarm {
  state: SwarmState | null = null;
  manager: Manager | null = null;
  agent: Agent | null = null;
  private renewer: CertificateRenewer | null = null;
  /** Called with every manager this node starts (the daemon serves the Control API on its port). */
  onManagerStarted: ((m: Manager) => void) | null = null;
  /** This node as its agent's last session message described it. */
  private lastNode: Node | null = null;
  private changingRole = false;
  private readonly dir: string;

  constructor(
    private readonly dataRoot: string,
    private readonly log: Logger,
    private readonly tickMs?: number,
    private readonly agentSettings: AgentSettings = {},
    /** Settings a cluster this node founds (`init`) starts with: shoald's --kv. */
    private readonly founding: { kvUrl?: string } = {},
  ) {
    this.dir = join(dataRoot, 'swarm');
  }

  /** The managers this node knows: a manager knows every member from its own Raft log. */
  private knownManagers(): string[] {
    const s = this.state!;
    const known = [...(this.manager?.raft.memberList().map((m) => m.addr) ?? []), ...s.managers];
    return [...new Set(s.role === 'manager' ? [s.advertiseAddr, ...known] : known)];
  }

  /** Every node runs the agent, managers included, talking to the managers it knows. */
  private async startAgent(): Promise<void> {
    this.agent = new Agent({
      ...this.agentSettings,
      nodeId: this.state!.nodeId,
      vtep: this.state!.advertiseAddr.replace(/:\d+$/, ''),
      dataRoot: this.dataRoot,
      managers: this.knownManagers(),
      certs: this.certs(),
      log: this.log.child('agent'),
      onNode: (node) => {
        this.lastNode = node;
        // `node promote/demote` changes the desired role in the store; the certificate carries
        // the role, so a renewal brings the change here.
        const want = node.spec?.desiredRole === 'MANAGER' ? 'manager' : 'worker';
        if (this.state && want !== this.state.role && !this.changingRole) {
          this.renewer?.renewNow().catch((e: unknown) => this.log.warn('renewal for a role change failed', { error: (e as Error).message }));
        }
      },
    });
    await this.agent.start();
    this.startRenewer();
  }

  private startRenewer(): void {
    this.renewer?.stop();
    this.renewer = new CertificateRenewer({
      managers: () => this.knownManagers(),
      current: () => this.certs(),
      advertiseAddr: this.state!.advertiseAddr,
      onRenewed: (c) => this.installCertificates(c),
      log: (message, fields) => this.log.info(message, fields),
    });
    this.renewer.start();
  }

  /** Renew this node's certificate now (also how a role change is picked up). */
  renewCertificate(): Promise<void> {
    if (!this.renewer) return Promise.reject(new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is not part of a swarm'));
    return this.renewer.renewNow();
  }

  private async installCertificates(c: RenewedCerts): Promise<void> {
    const s = this.state!;
    this.save(s, c);
    this.manager?.updateCertificates(c);
    this.changingRole = c.role !== s.role;
    this.lastNode = null; // only what the new session says counts
    try {
      // The store now names the new certificate's fingerprint, so the old one is refused: the
      // agent reconnects with the new one (its containers keep running under conmon).
      await this.agent?.stop();
      this.agent = null;
      if (c.role === 'manager' && s.role !== 'manager') await this.changeRole('manager');
      await this.startAgent();
      // A demoted manager waits for the leader to take it out of Raft: its agent's session tells.
      if (c.role === 'worker' && s.role === 'manager') await this.changeRole('worker');
    } finally {
      this.changingRole = false;
    }
  }

  /** Promotion joins Raft and starts the manager; demotion leaves Raft and stops it. */
  private async changeRole(role: 'manager' | 'worker'): Promise<void> {
    const s = this.state!;
    this.log.info('node role changed', { from: s.role, to: role });
    if (role === 'manager') {
      const { raftId, members } = await this.joinRaft(this.knownManagers(), s.advertiseAddr, this.certs());
      this.save({ ...s, role, raftId });
      await this.startManager({ join: members });
    } else {
      const m = this.manager;
      if (m) {
        await this.leaveRaft(m);
        await m.stop();
        this.manager = null;
        rmSync(join(this.dir, 'manager'), { recursive: true, force: true });
      }
      this.save({ ...s, role, raftId: 0, managers: this.knownManagers().filter((a) => a !== s.advertiseAddr) });
    }
  }

  /**
   * Waits until the leader has taken this manager out of Raft (manager/roles.ts does it on
   * demotion, then clears the node's manager status). A removed member may never hear of its own
   * removal through Raft, so the node's record, which the agent's session delivers, is the sign.
   */
  private async leaveRaft(m: Manager): Promise<void> {
    const raftId = this.state!.raftId;
    for (let i = 0; i < 300; i++) {
      if (!m.raft.memberList().some((x) => x.id === raftId)) return;
      if (this.lastNode && !this.lastNode.managerStatus?.raftId) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new SwarmError(grpc.status.UNAVAILABLE, 'the leader did not take this manager out of Raft in time');
  }

  /**
   * Asks the managers to add this node to Raft. Only the leader can: a follower answers with the
   * leader's address, which is tried next; while no leader is elected (an election right after
   * another manager joined), the managers are asked again until JOIN_RAFT_PATIENCE_MS has passed.
   */
  private async joinRaft(managers: string[], advertiseAddr: string, certs: NodeCerts): Promise<{ raftId: number; members: { id: number; addr: string }[] }> {
    const deadline = Date.now() + JOIN_RAFT_PATIENCE_MS;
    const queue = [...managers];
    let last: unknown;
    for (let attempt = 0; queue.length > 0; attempt++) {
      const addr = queue.shift()!;
      const client = new MembershipClient(addr, clusterChannelCredentials(certs.ca, certs.cert, certs.key), MANAGER_CHANNEL_OPTIONS);
      try {
        const joined = await new Promise<JoinRaftResponse>((resolve, reject) =>
          client.joinRaft({ addr: advertiseAddr }, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (e, r) => (e || !r ? reject(e ?? new Error('no response')) : resolve(r))),
        );
        return { raftId: joined.raftId, members: joined.members.map((m) => ({ id: m.raftId, addr: m.addr })) };
      } catch (e) {
        last = e;
        const err = e as grpc.ServiceError;
        if (err.code !== grpc.status.UNAVAILABLE || Date.now() > deadline) continue;
        const leader = err.metadata?.get(LEADER_ADDR_METADATA)[0];
        if (typeof leader === 'string' && leader && leader !== addr) queue.unshift(leader);
        else {
          queue.push(addr);
          await new Promise((r) => setTimeout(r, Math.min(2000, 200 * 2 ** Math.min(attempt, 4))));
        }
      } finally {
        client.close();
      }
    }
    throw new SwarmError(grpc.status.UNAVAILABLE, `could not join the managers' Raft cluster: ${(last as Error)?.message ?? 'no manager known'}`);
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  private save(state: SwarmState, certs?: { ca: string; cert: string; key: string }): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (certs) {
      writeFileSync(this.path('ca.pem'), certs.ca);
      writeFileSync(this.path('node.pem'), certs.cert);
      writeFileSync(this.path('node.key'), certs.key, { mode: 0o600 });
    }
    // Write-then-rename: a crash never leaves half a state file.
    writeFileSync(this.path('state.json.tmp'), JSON.stringify(state, null, 2));
    renameSync(this.path('state.json.tmp'), this.path('state.json'));
    this.state = state;
  }

  private certs(): { ca: string; cert: string; key: string } {
    return { ca: readFileSync(this.path('ca.pem'), 'utf8'), cert: readFileSync(this.path('node.pem'), 'utf8'), key: readFileSync(this.path('node.key'), 'utf8') };
  }

  /** After a restart: rejoin as what this node was. */
  async resume(): Promise<void> {
    if (!existsSync(this.path('state.json'))) return;
    this.state = JSON.parse(readFileSync(this.path('state.json'), 'utf8')) as SwarmState;
    if (this.state.role === 'manager') await this.startManager({});
    await this.startAgent();
  }

  private async startManager(extra: { bootstrap?: RootCA; join?: { id: number; addr: string }[] ; settings?: ClusterSettings }): Promise<void> {
    const s = this.state!;
    this.manager = await Manager.start({
      nodeId: s.nodeId,
      raftId: s.raftId,
      dataDir: join(this.dir, 'manager'),
      listenAddr: s.listenAddr,
      advertiseAddr: s.advertiseAddr,
      hostname: s.hostname,
      certs: this.certs(),
      bootstrap: extra.bootstrap ? { ...extra.settings, rootCA: extra.bootstrap, kvUrl: this.founding.kvUrl ?? '' } : undefined,
      join: extra.join,
      tickMs: this.tickMs,
      log: this.log.child('manager'),
    });
    this.onManagerStarted?.(this.manager);
  }

  /** The node's own credentials for dialing other managers (forwarding a write to the leader). */
  managerCredentials(): grpc.ChannelCredentials {
    const c = this.certs();
    return clusterChannelCredentials(c.ca, c.cert, c.key);
  }

  private refuseIfMember(): void {
    if (this.state) {
      throw new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is already part of a swarm. Use "shoal swarm leave" to leave this swarm and join another one.');
    }
  }

  async init(opts: { listenAddr: string; advertiseAddr: string; settings?: ClusterSettings }): Promise<{ nodeId: string; clusterId: string; workerToken: string; managerToken: string }> {
    this.refuseIfMember();
    const advertiseAddr = opts.advertiseAddr || opts.listenAddr;
    if (/^0\.0\.0\.0:|^:/.test(advertiseAddr)) {
      throw new SwarmError(grpc.status.INVALID_ARGUMENT, `could not choose an IP address to advertise from listen address "${opts.listenAddr}": specify one with --advertise-addr`);
    }
    const ca = RootCA.create();
    const nodeId = newId();
    const { keyPem, csrPem } = newNodeKeyAndCsr(nodeId);
    const cert = ca.issue(csrPem, { nodeId, role: 'manager', ipAddresses: [advertiseAddr.replace(/:\d+$/, '')] });
    this.save({ nodeId, role: 'manager', raftId: newRaftId(), listenAddr: opts.listenAddr, advertiseAddr, hostname: osHostname(), managers: [advertiseAddr] }, { ca: ca.certPem, cert, key: keyPem });
    await this.startManager({ bootstrap: ca, settings: opts.settings });
    const cluster = await this.waitForCluster();
    await this.startAgent();
    return { nodeId, clusterId: cluster.id, workerToken: formatJoinToken(ca.digest(), cluster.joinTokens!.worker), managerToken: formatJoinToken(ca.digest(), cluster.joinTokens!.manager) };
  }

  /**
   * `swarm init --force-new-cluster` on a manager (Docker's recovery from a lost quorum): this
   * manager restarts as the single member of the same cluster, keeping everything its Raft log
   * holds (services, nodes, networks, CA, tokens). The other managers are taken out of Raft; their
   * Node objects stay, shown Unreachable (and Down once the dispatcher misses them), to be
   * demoted or removed later. Workers keep their certificates and reconnect here. On a node in no
   * swarm it is a plain init, as in Docker.
   */
  async forceNewCluster(opts: { listenAddr: string; advertiseAddr: string }): Promise<{ nodeId: string; clusterId: string; workerToken: string; managerToken: string }> {
    const s = this.state;
    if (!s) return this.init(opts);
    if (s.role !== 'manager' || !this.manager) {
      throw new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is not a swarm manager: only a manager can force a new cluster from its state. Run "shoal swarm init --force-new-cluster" on a manager.');
    }
    this.log.warn('forcing a new cluster from this manager\'s state', { raftId: s.raftId });
    await this.manager.stop();
    this.manager = null;
    const res = await forceNewCluster(join(this.dir, 'manager', 'raft'), s.raftId);
    this.log.info('Raft log rewritten for a single-member cluster', { removed: res.removed, term: res.term, lastIndex: res.lastIndex });
    this.save({ ...s, managers: [s.advertiseAddr] });
    await this.startManager({});
    const m = this.manager as Manager | null;
    if (!m) throw new SwarmError(grpc.status.INTERNAL, 'the manager did not start again');
    // The removed managers keep the reachability the old leader last wrote: mark them Unreachable
    // (the leader only tracks Raft members from now on). Retried until this manager leads.
    let marked = false;
    for (let i = 0; i < 300 && !marked; i++) {
      if (m.isLeader) {
        marked = await m.store
          .update((tx) => {
            const members = new Set(m.raft.memberList().map((x) => x.id));
            for (const n of tx.all('nodes')) {
              const ms = n.managerStatus;
              if (!ms?.raftId || members.has(ms.raftId) || ms.reachability === 'UNREACHABLE') continue;
              tx.update('nodes', { ...n, managerStatus: { ...ms, leader: false, reachability: 'UNREACHABLE' } });
            }
          })
          .then(
            () => true,
            () => false,
          );
      }
      if (!marked) await new Promise((r) => setTimeout(r, 50));
    }
    if (!marked) throw new SwarmError(grpc.status.UNAVAILABLE, 'this manager did not take the lead of the new cluster in time');
    const cluster = await this.waitForCluster();
    const ca = m.rootCA();
    return { nodeId: s.nodeId, clusterId: cluster.id, workerToken: formatJoinToken(ca.digest(), cluster.joinTokens!.worker), managerToken: formatJoinToken(ca.digest(), cluster.joinTokens!.manager) };
  }

  private async waitForCluster() {
    for (let i = 0; i < 600; i++) {
      const c = this.manager?.store.all('clusters')[0];
      if (c) return c;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new SwarmError(grpc.status.UNAVAILABLE, 'the new cluster did not elect this manager in time');
  }

  async join(opts: { token: string; remote: string; listenAddr: string; advertiseAddr: string }): Promise<{ nodeId: string; role: 'MANAGER' | 'WORKER' }> {
    this.refuseIfMember();
    const advertiseAddr = opts.advertiseAddr || opts.listenAddr;
    const res = await requestNodeCertificate(opts.remote, opts.token, { hostname: osHostname(), advertiseAddr }).catch((e: Error) => {
      throw new SwarmError(grpc.status.INVALID_ARGUMENT, e.message);
    });
    const role = res.role === 'MANAGER' ? 'manager' : 'worker';
    const certs = { ca: res.caCertPem, cert: res.certificatePem, key: res.keyPem };
    let raftId = 0;
    let members: { id: number; addr: string }[] = [];
    if (role === 'manager') ({ raftId, members } = await this.joinRaft([opts.remote], advertiseAddr, certs));
    this.save({ nodeId: res.nodeId, role, raftId, listenAddr: opts.listenAddr, advertiseAddr, hostname: osHostname(), managers: res.managerAddrs }, certs);
    if (role === 'manager') await this.startManager({ join: members });
    await this.startAgent();
    return { nodeId: res.nodeId, role: res.role === 'MANAGER' ? 'MANAGER' : 'WORKER' };
  }

  /**
   * `swarm leave`: stops this node's tasks, its agent and (with --force) its manager, and forgets
   * the swarm. Managers must be forced, as in Docker: leaving takes a Raft member away, and the
   * last manager leaving ends the cluster. A manager that can still reach a leader is taken out
   * of Raft first, so the others keep their quorum.
   */
  async leave(force: boolean): Promise<void> {
    const s = this.state;
    if (!s) throw new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is not part of a swarm');
    const m = this.manager;
    if (m && !force) {
      const members = m.raft.memberList().length;
      const reachable = [...m.raft.activePeers().values()].filter(Boolean).length + 1;
      throw new SwarmError(
        grpc.status.FAILED_PRECONDITION,
        members === 1
          ? 'You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message.'
          : `You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves ${Math.max(reachable - 1, 0)} managers out of ${members - 1}. Use \`--force\` to ignore this message.`,
      );
    }
    this.renewer?.stop();
    this.renewer = null;
    await this.agent?.leave();
    this.agent = null;
    if (m) {
      if (m.raft.memberList().length > 1) await this.leaveRaftAsMember(m).catch((e: unknown) => this.log.warn('could not leave Raft cleanly', { error: (e as Error).message }));
      await m.stop();
      this.manager = null;
    }
    rmSync(this.dir, { recursive: true, force: true });
    this.state = null;
    this.lastNode = null;
    this.log.info('left the swarm', { nodeId: s.nodeId });
  }

  /** A manager leaving by itself (still holding a manager certificate) asks the leader to remove it. */
  private async leaveRaftAsMember(m: Manager): Promise<void> {
    const raftId = this.state!.raftId;
    if (m.raft.isLeader) {
      const next = [...m.raft.activePeers()].find(([id, active]) => active && id !== raftId)?.[0];
      if (next !== undefined) await m.raft.transferLeadership(next);
    }
    for (let attempt = 0; attempt < 50; attempt++) {
      const leader = m.raft.memberList().find((x) => x.id === m.raft.leader && x.id !== raftId)?.addr;
      if (leader) {
        const c = this.certs();
        const client = new MembershipClient(leader, clusterChannelCredentials(c.ca, c.cert, c.key), MANAGER_CHANNEL_OPTIONS);
        const ok = await new Promise<boolean>((resolve) => client.leaveRaft({ raftId }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(!e))).finally(() => client.close());
        if (ok) return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('no leader answered');
  }

  async stop(): Promise<void> {
    this.renewer?.stop();
    this.renewer = null;
    await this.agent?.stop();
    this.agent = null;
    await this.manager?.stop();
    this.manager = null;
  }
}
