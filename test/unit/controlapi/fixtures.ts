// Builders for control API tests: a store with no Raft behind it (LocalProposer), a context with
// predictable ids and clock, and specs as the CLI would send them.
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { MemoryStore, LocalProposer } from '../../../manager/store/memory.js';
import { blank } from '../../../manager/store/blank.js';
import {
  Annotations,
  ContainerSpec,
  Driver,
  EndpointSpec,
  IPAMConfig,
  IPAMOptions,
  ManagerStatus,
  NetworkAttachmentConfig,
  NetworkSpec,
  Node,
  NodeDescription,
  NodeSpec,
  NodeStatus,
  PortConfig,
  ServiceSpec,
  Task,
  TaskSpec,
  TaskStatus,
  type NodeRole,
  type NodeStatus_State,
  type TaskState,
} from '../../../proto/gen/objects.js';
import { defaultIngressNetwork } from '../../../manager/allocator/network.js';
import { ControlError } from '../../../manager/controlapi/errors.js';
import type { ControlContext, RaftMembership } from '../../../manager/controlapi/context.js';

export function newStore(): MemoryStore {
  let t = 1000;
  const s = new MemoryStore(null, () => t++);
  s.setProposer(new LocalProposer(s));
  return s;
}

/** Raft membership as a test sets it: member ids and which of them answer. */
export class FakeRaft implements RaftMembership {
  members: number[] = [];
  unreachable = new Set<number>();
  leaderId = 0;
  memberIds(): number[] {
    return [...this.members];
  }
  reachability(): Map<number, boolean> {
    return new Map(this.members.map((id) => [id, !this.unreachable.has(id)]));
  }
  leader(): number {
    return this.leaderId;
  }
}

export interface TestContext extends ControlContext {
  raft: FakeRaft;
}

export function newContext(): TestContext {
  let ids = 0;
  return { store: newStore(), newId: () => `id${String(++ids).padStart(4, '0')}`, now: () => 5_000_000, raft: new FakeRaft() };
}

/** A context whose store holds the ingress network, as a new cluster's does. */
export async function clusterContext(): Promise<TestContext> {
  const ctx = newContext();
  await ctx.store.update((tx) => tx.create('networks', defaultIngressNetwork('ingress0')));
  return ctx;
}

export interface SpecOptions {
  image?: string;
  replicas?: number;
  mode?: 'replicated' | 'global' | 'replicatedJob' | 'globalJob' | 'none';
  networks?: string[];
  ports?: PortConfig[];
  labels?: Record<string, string>;
}

export function serviceSpec(name: string, o: SpecOptions = {}): ServiceSpec {
  const mode = o.mode ?? 'replicated';
  return blank(ServiceSpec, {
    annotations: blank(Annotations, { name, labels: o.labels ?? {} }),
    task: blank(TaskSpec, {
      container: blank(ContainerSpec, { image: o.image ?? 'busybox:1.36' }),
      networks: (o.networks ?? []).map((target) => blank(NetworkAttachmentConfig, { target })),
    }),
    ...(mode === 'replicated' ? { replicated: { replicas: o.replicas ?? 1 } } : {}),
    ...(mode === 'global' ? { global: {} } : {}),
    ...(mode === 'replicatedJob' ? { replicatedJob: { maxConcurrent: 1, totalCompletions: 3 } } : {}),
    ...(mode === 'globalJob' ? { globalJob: {} } : {}),
    endpoint: blank(EndpointSpec, { mode: 'VIP', ports: o.ports ?? [] }),
  });
}

export function port(target: number, published = 0, mode: 'INGRESS' | 'HOST' = 'INGRESS', protocol: 'TCP' | 'UDP' | 'SCTP' = 'TCP'): PortConfig {
  return blank(PortConfig, { targetPort: target, publishedPort: published, publishMode: mode, protocol });
}

export interface NetworkOptions {
  driver?: string;
  subnet?: string;
  gateway?: string;
  range?: string;
  options?: Record<string, string>;
  ingress?: boolean;
  attachable?: boolean;
  internal?: boolean;
  scope?: string;
  labels?: Record<string, string>;
}

export function networkSpec(name: string, o: NetworkOptions = {}): NetworkSpec {
  const configs = o.subnet || o.gateway || o.range ? [blank(IPAMConfig, { subnet: o.subnet ?? '', gateway: o.gateway ?? '', range: o.range ?? '' })] : [];
  return blank(NetworkSpec, {
    annotations: blank(Annotations, { name, labels: o.labels ?? {} }),
    driverConfig: o.driver === undefined && !o.options ? null : blank(Driver, { name: o.driver ?? '', options: o.options ?? {} }),
    ipam: blank(IPAMOptions, { configs }),
    ingress: o.ingress ?? false,
    attachable: o.attachable ?? false,
    internal: o.internal ?? false,
    scope: o.scope ?? '',
  });
}

export interface NodeOptions {
  hostname?: string;
  role?: NodeRole;
  state?: NodeStatus_State;
  raftId?: number;
  labels?: Record<string, string>;
  engineLabels?: Record<string, string>;
}

export function node(id: string, o: NodeOptions = {}): Node {
  const role = o.role ?? 'WORKER';
  return blank(Node, {
    id,
    role,
    spec: blank(NodeSpec, { annotations: blank(Annotations, { labels: o.labels ?? {} }), desiredRole: role, availability: 'ACTIVE' }),
    description: blank(NodeDescription, { hostname: o.hostname ?? id, engineLabels: o.engineLabels ?? {} }),
    status: blank(NodeStatus, { state: o.state ?? 'READY' }),
    managerStatus: o.raftId ? blank(ManagerStatus, { raftId: o.raftId, addr: `10.0.0.${o.raftId}:2377`, reachability: 'REACHABLE' }) : null,
  });
}

export interface TaskOptions {
  slot?: number;
  nodeId?: string;
  state?: TaskState;
  desired?: TaskState;
  jobIteration?: number;
  labels?: Record<string, string>;
  networks?: string[];
}

export function task(id: string, serviceId: string, serviceName: string, o: TaskOptions = {}): Task {
  const slot = o.slot ?? 1;
  return blank(Task, {
    id,
    serviceId,
    serviceName,
    slot,
    nodeId: o.nodeId ?? '',
    annotations: blank(Annotations, { name: `${serviceName}.${slot}`, labels: o.labels ?? {} }),
    status: blank(TaskStatus, { state: o.state ?? 'RUNNING' }),
    desiredState: o.desired ?? 'RUNNING',
    jobIteration: o.jobIteration ?? 0,
    networks: (o.networks ?? []).map((networkId) => ({ networkId, addresses: ['10.0.9.2/24'], aliases: [], mac: '', network: null })),
  });
}

/** Asserts that `p` fails with a ControlError of `code` whose message matches `message`. */
export async function rejects(p: Promise<unknown> | (() => unknown), code: status, message: RegExp): Promise<void> {
  const run = typeof p === 'function' ? Promise.resolve().then(p) : p;
  await assert.rejects(run, (e: unknown) => {
    assert.ok(e instanceof ControlError, `expected a ControlError, got ${String(e)}`);
    assert.equal(status[e.code], status[code], `status of "${e.message}"`);
    assert.match(e.message, message);
    return true;
  });
}
