// This node's membership in a swarm: `init` founds one, `join` enters one, and a restarted shoald
// resumes from what is on disk (<data-root>/swarm/state.json and the certificates beside it).
import { mkdirSync, readFileSync, writeFileSync, existsSync, renameSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Manager, newRaftId } from '../manager/manager.js';
import { RootCA, newId, newNodeKeyAndCsr } from '../manager/ca/ca.js';
import { formatJoinToken } from '../manager/ca/token.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../manager/ca/tlsconfig.js';
import { MembershipClient, type JoinRaftResponse } from '../proto/gen/membership.js';
import type { Logger } from '../util/log.js';
import { requestNodeCertificate } from './join.js';
import { Agent, type AgentSettings } from '../agent/agent.js';

export interface SwarmState {
  nodeId: string;
  role: 'manager' | 'worker';
  raftId: number;
  listenAddr: string;
  advertiseAddr: string;
  hostname: string;
  managers: string[];
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
  private readonly dir: string;

  constructor(
    private readonly dataRoot: string,
    private readonly log: Logger,
    private readonly tickMs?: number,
    private readonly agentSettings: AgentSettings = {},
  ) {
    this.dir = join(dataRoot, 'swarm');
  }

  /** Every node runs the agent, managers included, talking to the managers it knows. */
  private async startAgent(): Promise<void> {
    const s = this.state!;
    // A manager's agent knows every member from its own Raft log, not just those it joined with.
    const known = [...(this.manager?.raft.memberList().map((m) => m.addr) ?? []), ...s.managers];
    const managers = [...new Set(s.role === 'manager' ? [s.advertiseAddr, ...known] : known)];
    this.agent = new Agent({ ...this.agentSettings, dataRoot: this.dataRoot, managers, certs: this.certs(), log: this.log.child('agent') });
    await this.agent.start();
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

  private async startManager(extra: { bootstrap?: RootCA; join?: { id: number; addr: string }[] }): Promise<void> {
    const s = this.state!;
    this.manager = await Manager.start({
      nodeId: s.nodeId,
      raftId: s.raftId,
      dataDir: join(this.dir, 'manager'),
      listenAddr: s.listenAddr,
      advertiseAddr: s.advertiseAddr,
      hostname: s.hostname,
      certs: this.certs(),
      bootstrap: extra.bootstrap ? { rootCA: extra.bootstrap } : undefined,
      join: extra.join,
      tickMs: this.tickMs,
      log: this.log.child('manager'),
    });
  }

  private refuseIfMember(): void {
    if (this.state) {
      throw new SwarmError(grpc.status.FAILED_PRECONDITION, 'This node is already part of a swarm. Use "shoal swarm leave" to leave this swarm and join another one.');
    }
  }

  async init(opts: { listenAddr: string; advertiseAddr: string }): Promise<{ nodeId: string; clusterId: string; workerToken: string; managerToken: string }> {
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
    await this.startManager({ bootstrap: ca });
    const cluster = await this.waitForCluster();
    await this.startAgent();
    return { nodeId, clusterId: cluster.id, workerToken: formatJoinToken(ca.digest(), cluster.joinTokens!.worker), managerToken: formatJoinToken(ca.digest(), cluster.joinTokens!.manager) };
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
    if (role === 'manager') {
      const client = new MembershipClient(opts.remote, clusterChannelCredentials(certs.ca, certs.cert, certs.key), MANAGER_CHANNEL_OPTIONS);
      const joined = await new Promise<JoinRaftResponse>((resolve, reject) =>
        client.joinRaft({ addr: advertiseAddr }, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (e, r) => (e || !r ? reject(e ?? new Error('no response')) : resolve(r))),
      ).finally(() => client.close());
      raftId = joined.raftId;
      members = joined.members.map((m) => ({ id: m.raftId, addr: m.addr }));
    }
    this.save({ nodeId: res.nodeId, role, raftId, listenAddr: opts.listenAddr, advertiseAddr, hostname: osHostname(), managers: res.managerAddrs }, certs);
    if (role === 'manager') await this.startManager({ join: members });
    await this.startAgent();
    return { nodeId: res.nodeId, role: res.role === 'MANAGER' ? 'MANAGER' : 'WORKER' };
  }

  async stop(): Promise<void> {
    await this.agent?.stop();
    this.agent = null;
    await this.manager?.stop();
    this.manager = null;
  }
}
