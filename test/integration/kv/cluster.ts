// Real managers in this process for the KV tests: a founder, managers that join it through the CA
// and Raft membership services with the manager token, and worker credentials obtained with the
// worker token (so the authz interceptor sees a node the store knows). Everything a cluster
// started is stopped and its directory removed by `t.after`, even when the test fails.
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { Manager, newRaftId, type ManagerConfig } from '../../../manager/manager.js';
import { RootCA, newId, newNodeKeyAndCsr } from '../../../manager/ca/ca.js';
import { formatJoinToken } from '../../../manager/ca/token.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../../../manager/ca/tlsconfig.js';
import { MembershipClient, type JoinRaftResponse } from '../../../proto/gen/membership.js';
import { requestNodeCertificate } from '../../../daemon/join.js';
import { waitFor } from '../../support/wait.js';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

// 50 ms ticks: an election timeout of 0.5-1 s, so a machine busy with other tests does not make
// the managers lose their leader while a test builds the cluster.
const TICK_MS = 50;

/**
 * Retries a step that needs the leader (joining goes through it) while leadership settles: a
 * manager just joined can cost the cluster its leader for an election.
 */
async function withLeader<T>(cluster: TestCluster, what: string, step: (leader: Manager) => Promise<T>): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const leader = await cluster.leader();
    try {
      return await step(leader);
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

export interface NodeCredentials {
  credentials: grpc.ChannelCredentials;
  channelOptions: grpc.ChannelOptions;
  nodeId: string;
}

export class TestCluster {
  readonly managers: Manager[] = [];
  private readonly configs = new Map<Manager, ManagerConfig>();
  private joined = 0;

  private constructor(
    private readonly root: string,
    private readonly ca: RootCA,
  ) {}

  /** A founder manager whose cluster is created; `kvUrl` goes into its ClusterSpec. */
  static async start(t: TestContext, opts: { kvUrl?: string } = {}): Promise<TestCluster> {
    const root = await mkdtemp(join(tmpdir(), 'shoal-kv-cluster-'));
    const cluster = new TestCluster(root, RootCA.create());
    t.after(async () => {
      for (const m of cluster.managers) await m.stop().catch(() => {});
      await rm(root, { recursive: true, force: true });
    });
    const nodeId = newId();
    const { keyPem, csrPem } = newNodeKeyAndCsr(nodeId);
    const port = await freePort();
    const ca = cluster.ca;
    await cluster.launch({
      nodeId,
      raftId: newRaftId(),
      dataDir: join(root, 'm0'),
      listenAddr: `127.0.0.1:${port}`,
      advertiseAddr: `127.0.0.1:${port}`,
      hostname: 'm0',
      certs: { ca: ca.certPem, cert: ca.issue(csrPem, { nodeId, role: 'manager' }), key: keyPem },
      bootstrap: { rootCA: ca, ...(opts.kvUrl ? { kvUrl: opts.kvUrl } : {}) },
      tickMs: TICK_MS,
    });
    await waitFor('the founder to create the cluster', () => cluster.managers[0]!.store.all('clusters')[0]);
    return cluster;
  }

  private async launch(config: ManagerConfig): Promise<Manager> {
    const m = await Manager.start(config);
    this.managers.push(m);
    this.configs.set(m, config);
    return m;
  }

  /** The cluster's root certificate, for clients that trust the managers but bring no identity. */
  get caPem(): string {
    return this.ca.certPem;
  }

  token(role: 'worker' | 'manager'): string {
    const spec = this.managers.find((m) => m.store.all('clusters')[0])!.store.all('clusters')[0]!;
    return formatJoinToken(this.ca.digest(), spec.joinTokens![role]);
  }

  /** The current leader among the running managers. */
  leader(): Promise<Manager> {
    return waitFor('a leader', () => this.managers.find((m) => m.isLeader));
  }

  /** Joins a worker node through the CA service; returns its mutual-TLS credentials. */
  async worker(): Promise<NodeCredentials> {
    const hostname = `w${this.joined++}`;
    const w = await withLeader(this, 'joining a worker', (leader) => requestNodeCertificate(leader.addrForTests(), this.token('worker'), { hostname, advertiseAddr: '' }));
    return { credentials: clusterChannelCredentials(w.caCertPem, w.certificatePem, w.keyPem), channelOptions: MANAGER_CHANNEL_OPTIONS, nodeId: w.nodeId };
  }

  /** A manager that joins the cluster as a Raft voter. */
  async addManager(): Promise<Manager> {
    const port = await freePort();
    const addr = `127.0.0.1:${port}`;
    const name = `m${this.managers.length}`;
    const j = await withLeader(this, `joining manager ${name}`, (leader) => requestNodeCertificate(leader.addrForTests(), this.token('manager'), { hostname: name, advertiseAddr: addr }));
    const creds = clusterChannelCredentials(j.caCertPem, j.certificatePem, j.keyPem);
    const joined = await withLeader(this, `adding manager ${name} to Raft`, (leader) => {
      const client = new MembershipClient(leader.addrForTests(), creds, MANAGER_CHANNEL_OPTIONS);
      return new Promise<JoinRaftResponse>((resolve, reject) =>
        client.joinRaft({ addr }, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (e, r) => (e || !r ? reject(e ?? new Error('no response')) : resolve(r))),
      ).finally(() => client.close());
    });
    return this.launch({
      nodeId: j.nodeId,
      raftId: joined.raftId,
      dataDir: join(this.root, name),
      listenAddr: addr,
      advertiseAddr: addr,
      hostname: name,
      certs: { ca: j.caCertPem, cert: j.certificatePem, key: j.keyPem },
      join: joined.members.map((m) => ({ id: m.raftId, addr: m.addr })),
      tickMs: TICK_MS,
    });
  }

  /** Stops a manager (its port closes, Raft stops answering), as a crashed one would vanish. */
  async kill(m: Manager): Promise<void> {
    await m.stop();
    this.managers.splice(this.managers.indexOf(m), 1);
  }

  /** Starts a stopped manager again from its data directory, on the same address. */
  async restart(m: Manager): Promise<Manager> {
    const config = this.configs.get(m)!;
    this.configs.delete(m);
    return this.launch({ ...config, bootstrap: undefined, join: undefined });
  }

  addrs(): string[] {
    return this.managers.map((m) => m.addrForTests());
  }
}
