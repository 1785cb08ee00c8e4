// Managers for simulated-node tests and the end-to-end scheduler bench: a founder, managers that
// join it the real way (CA join token, then JoinRaft), and node identities for simulated agents.
//
// Node identities come two ways. `joinNodes` goes through the real CA service (one IssueNodeCertificate
// call per node, as `shoal swarm join` does). `issueNodeIdentities` + `nodeRecord` skip the RPC for
// thousands of nodes: certificates are signed straight from the cluster's RootCA object (CN = node
// id, OU = shoal-worker, O = cluster id, exactly what the CA service would sign) and the Node objects
// are written in batches, as IssueNodeCertificate writes them one by one (role, certificate
// fingerprint, spec ACTIVE, hostname, status UNKNOWN).
//
// Until the control API exists, services are created and changed by writing the leader's store
// directly (SimCluster.update → manager.store.update), which is where the control API will write.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { Manager, newRaftId } from '../../../manager/manager.js';
import { RootCA, newId, newNodeKeyAndCsr } from '../../../manager/ca/ca.js';
import { formatJoinToken } from '../../../manager/ca/token.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../../../manager/ca/tlsconfig.js';
import { NotLeaderError, StoppedError } from '../../../manager/raft/node.js';
import { blank } from '../../../manager/store/blank.js';
import type { MemoryStore, Tx } from '../../../manager/store/memory.js';
import { MembershipClient, type JoinRaftResponse } from '../../../proto/gen/membership.js';
import {
  Annotations,
  ContainerSpec,
  Node,
  NodeDescription,
  NodeSpec,
  NodeStatus,
  ReplicatedService,
  RestartPolicy,
  Service,
  ServiceSpec,
  TaskSpec,
} from '../../../proto/gen/objects.js';
import { requestNodeCertificate } from '../../../daemon/join.js';
import type { FleetNode } from '../../../agent/simulated/fleet.js';
import type { Logger } from '../../../util/log.js';
import { waitFor } from '../../support/wait.js';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface ManagerTuning {
  /** Agents' heartbeat period; a node is DOWN after 2.5 of them. Default: the dispatcher's (2 s). */
  heartbeatPeriodMs?: number;
  /** Raft tick. Default: the Raft node's (50 ms). */
  tickMs?: number;
  log?: Logger;
}

/** The founder of a new cluster, on a free loopback port, keeping its Raft data under `dataDir`. */
export async function startFounder(ca: RootCA, dataDir: string, tuning: ManagerTuning = {}): Promise<Manager> {
  const nodeId = newId();
  const { keyPem, csrPem } = newNodeKeyAndCsr(nodeId);
  const port = await freePort();
  const m = await Manager.start({
    nodeId,
    raftId: newRaftId(),
    dataDir,
    listenAddr: `127.0.0.1:${port}`,
    advertiseAddr: `127.0.0.1:${port}`,
    hostname: `manager-${nodeId.slice(0, 6)}`,
    certs: { ca: ca.certPem, cert: ca.issue(csrPem, { nodeId, role: 'manager' }), key: keyPem },
    bootstrap: { rootCA: ca },
    ...tuning,
  });
  await waitFor('the founder to create the cluster', () => m.store.all('clusters')[0]);
  return m;
}

/** A join token of the cluster the store holds. */
export function joinToken(store: MemoryStore, role: 'worker' | 'manager'): string {
  const cluster = store.all('clusters')[0];
  if (!cluster?.joinTokens || !cluster.rootCa) throw new Error('the store holds no cluster yet');
  return formatJoinToken(Buffer.from(cluster.rootCa.caDigest), cluster.joinTokens[role]);
}

/** A manager joining through `leaderAddr` the way `shoal swarm join` does: certificate, JoinRaft, start. */
export async function joinManager(leaderAddr: string, token: string, dataDir: string, tuning: ManagerTuning = {}): Promise<Manager> {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const j = await requestNodeCertificate(leaderAddr, token, { hostname: `manager-${port}`, advertiseAddr: addr });
  if (j.role !== 'MANAGER') throw new Error(`joined as ${j.role}, not as a manager: wrong token?`);
  const client = new MembershipClient(leaderAddr, clusterChannelCredentials(j.caCertPem, j.certificatePem, j.keyPem), MANAGER_CHANNEL_OPTIONS);
  let joined: JoinRaftResponse;
  try {
    joined = await new Promise<JoinRaftResponse>((resolve, reject) =>
      client.joinRaft({ addr }, (e, r) => (e || !r ? reject(e ?? new Error('empty JoinRaft response')) : resolve(r))),
    );
  } finally {
    client.close();
  }
  return Manager.start({
    nodeId: j.nodeId,
    raftId: joined.raftId,
    dataDir,
    listenAddr: addr,
    advertiseAddr: addr,
    hostname: `manager-${port}`,
    certs: { ca: j.caCertPem, cert: j.certificatePem, key: j.keyPem },
    join: joined.members.map((m) => ({ id: m.raftId, addr: m.addr })),
    ...tuning,
  });
}

export interface IssuedNode extends FleetNode {
  hostname: string;
  fingerprint256: string;
}

/** Identities for `count` worker nodes, signed straight from the root CA (no RPC, no store write). */
export function issueNodeIdentities(ca: RootCA, count: number, hostnamePrefix = 'sim'): IssuedNode[] {
  const out: IssuedNode[] = [];
  for (let i = 0; i < count; i++) {
    const nodeId = newId();
    const { keyPem, csrPem } = newNodeKeyAndCsr(nodeId);
    const cert = ca.issue(csrPem, { nodeId, role: 'worker' });
    out.push({
      nodeId,
      hostname: `${hostnamePrefix}-${String(i + 1).padStart(5, '0')}`,
      certs: { ca: ca.certPem, cert, key: keyPem },
      fingerprint256: new X509Certificate(cert).fingerprint256,
    });
  }
  return out;
}

/** The Node object IssueNodeCertificate records for a worker that joins. */
export function nodeRecord(n: { nodeId: string; hostname: string; fingerprint256: string }): Node {
  return blank(Node, {
    id: n.nodeId,
    role: 'WORKER',
    certificateFingerprint: n.fingerprint256,
    spec: blank(NodeSpec, { annotations: blank(Annotations), desiredRole: 'WORKER', availability: 'ACTIVE' }),
    description: blank(NodeDescription, { hostname: n.hostname }),
    status: blank(NodeStatus, { state: 'UNKNOWN', addr: '' }),
  });
}

/** Writes node records on the leader, `batch` to a transaction. */
export async function registerNodes(store: MemoryStore, records: Node[], batch = 500): Promise<void> {
  for (let i = 0; i < records.length; i += batch) {
    await store.update((tx) => {
      for (const r of records.slice(i, i + batch)) tx.create('nodes', r);
    });
  }
}

export interface ServiceOptions {
  replicas: number;
  /** Restart delay of the service's tasks; default 0 so replacements start at once. */
  restartDelayMs?: number;
}

/** A replicated service as the control API will write it. */
export function replicatedService(id: string, o: ServiceOptions): Service {
  const spec = blank(ServiceSpec, {
    annotations: blank(Annotations, { name: id }),
    task: blank(TaskSpec, {
      container: blank(ContainerSpec, { image: 'busybox' }),
      restart: blank(RestartPolicy, { condition: 'ANY', delayMs: o.restartDelayMs ?? 0 }),
    }),
    mode: 'replicated',
  });
  spec.replicated = blank(ReplicatedService, { replicas: o.replicas });
  return blank(Service, { id, spec, specVersion: 1 });
}

/** Errors that mean "this manager cannot take the write now", raised before anything was proposed. */
function notWritable(e: unknown): boolean {
  return e instanceof NotLeaderError || e instanceof StoppedError || (e instanceof Error && /cannot write: it is not the leader/.test(e.message));
}

/** A cluster of in-process managers on loopback, for tests. */
export class SimCluster {
  readonly managers: Manager[] = [];
  private readonly down = new Set<Manager>();

  private constructor(
    readonly ca: RootCA,
    private readonly root: string,
  ) {}

  static async start(count: number, tuning: ManagerTuning = {}): Promise<SimCluster> {
    const c = new SimCluster(RootCA.create(), mkdtempSync(join(tmpdir(), 'simcluster-')));
    try {
      const founder = await startFounder(c.ca, join(c.root, 'm1'), tuning);
      c.managers.push(founder);
      for (let i = 2; i <= count; i++) {
        const m = await joinManager(founder.addrForTests(), joinToken(founder.store, 'manager'), join(c.root, `m${i}`), tuning);
        c.managers.push(m);
        // The next member joins once this one runs and has caught up (a cluster with a new voter
        // that is not running yet cannot commit).
        await waitFor(`manager ${i} to catch up`, () => m.store.all('clusters').length > 0 && founder.raft.voters().length === i);
      }
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  live(): Manager[] {
    return this.managers.filter((m) => !this.down.has(m));
  }

  /** Every manager's address, the dead ones too (agents learn of managers; a dead one fails to connect). */
  addrs(): string[] {
    return this.managers.map((m) => m.addrForTests());
  }

  /** The live manager that leads. */
  leader(timeoutMs = 20_000): Promise<Manager> {
    return waitFor('a leader among the live managers', () => this.live().find((m) => m.isLeader), { timeoutMs });
  }

  /** Runs a transaction on the leader's store, waiting for a leader that can write. */
  async update<R>(fn: (tx: Tx) => R, timeoutMs = 20_000): Promise<R> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const leader = this.live().find((m) => m.isLeader);
      if (leader) {
        try {
          return await leader.store.update(fn);
        } catch (e) {
          // Anything else (a conflict, a refused object) is the caller's error, not a reason to retry.
          if (!notWritable(e)) throw e;
        }
      }
      if (Date.now() > deadline) throw new Error(`no leader took the write within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Worker identities through the real CA service, `concurrency` joins at a time. */
  async joinNodes(count: number, concurrency = 8): Promise<FleetNode[]> {
    const leader = await this.leader();
    const token = joinToken(leader.store, 'worker');
    const out: FleetNode[] = new Array<FleetNode>(count);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(concurrency, count) }, async () => {
        while (next < count) {
          const i = next++;
          const hostname = `sim-${String(i + 1).padStart(3, '0')}`;
          const j = await requestNodeCertificate(leader.addrForTests(), token, { hostname, advertiseAddr: '' });
          out[i] = { nodeId: j.nodeId, hostname, certs: { ca: j.caCertPem, cert: j.certificatePem, key: j.keyPem } };
        }
      }),
    );
    return out;
  }

  /** Stops a manager for good (its Raft, its port, its reconcilers). */
  async kill(m: Manager): Promise<void> {
    this.down.add(m);
    await m.stop();
  }

  async stop(): Promise<void> {
    for (const m of this.live()) await m.stop().catch(() => undefined);
    for (const m of this.managers) this.down.add(m);
    rmSync(this.root, { recursive: true, force: true });
  }
}
