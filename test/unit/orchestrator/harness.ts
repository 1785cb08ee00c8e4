// A store, a manual clock and an orchestrator, plus stand-ins for the parts that are not here: a
// scheduler that puts pending tasks on nodes and agents that report task states.
import { MemoryStore, LocalProposer, type Proposer } from '../../../manager/store/memory.js';
import { blank, copy } from '../../../manager/store/blank.js';
import {
  Annotations,
  Cluster,
  ClusterSpec,
  ContainerStatus,
  Node,
  NodeDescription,
  NodeSpec,
  NodeStatus,
  Placement,
  ReplicatedJob,
  ReplicatedService,
  RestartPolicy,
  Service,
  ServiceSpec,
  Task,
  TaskSpec,
  TaskStateNumber,
  TaskStatus,
  ContainerSpec,
  type NodeSpec_Availability,
  type NodeStatus_State,
  type TaskState,
} from '../../../proto/gen/objects.js';
import { ManualClock } from '../../../manager/orchestrator/clock.js';
import { Orchestrator, type OrchestratorOptions } from '../../../manager/orchestrator/orchestrator.js';

export const isLive = (t: Task) => TaskStateNumber[t.desiredState] <= TaskStateNumber.RUNNING;
export const state = (t: Task): TaskState => t.status?.state ?? 'NEW';

export interface ServiceOptions {
  mode?: 'replicated' | 'global' | 'replicatedJob' | 'globalJob';
  replicas?: number;
  maxConcurrent?: number;
  totalCompletions?: number;
  constraints?: string[];
  restart?: Partial<RestartPolicy>;
}

export class Harness {
  readonly clock = new ManualClock(1_000_000);
  readonly store = new MemoryStore(null, () => this.clock.now());
  orch: Orchestrator;
  private ids = 0;

  /**
   * `asyncProposer`: entries apply a turn of the event loop after they are proposed, as with Raft,
   * so a transaction decided on a view that may be stale by the time it applies.
   */
  constructor(
    private readonly opts: OrchestratorOptions = {},
    asyncProposer = false,
  ) {
    this.store.setProposer(asyncProposer ? new AsyncProposer(this.store) : new LocalProposer(this.store));
    this.orch = this.newOrchestrator();
  }

  newOrchestrator(): Orchestrator {
    return new Orchestrator(this.store, { clock: this.clock, newId: () => `task${String(++this.ids).padStart(4, '0')}`, ...this.opts });
  }

  async start(): Promise<void> {
    this.orch.start();
    await this.settle();
  }

  /** Waits until the orchestrator has nothing left to do. */
  async settle(): Promise<void> {
    await this.orch.idle();
  }

  async advance(ms: number): Promise<void> {
    this.clock.advance(ms);
    await this.settle();
  }

  // ---- objects ------------------------------------------------------------------------------

  async setHistoryLimit(limit: number): Promise<void> {
    await this.store.update((tx) => {
      const c = tx.all('clusters')[0];
      if (c) {
        const n = copy(Cluster, c);
        n.spec!.taskHistoryRetentionLimit = limit;
        tx.update('clusters', n);
      } else {
        tx.create('clusters', blank(Cluster, { id: 'cluster', spec: blank(ClusterSpec, { annotations: blank(Annotations, { name: 'default' }), taskHistoryRetentionLimit: limit }) }));
      }
    });
    await this.settle();
  }

  async addNode(id: string, o: { state?: NodeStatus_State; availability?: NodeSpec_Availability; labels?: Record<string, string> } = {}): Promise<void> {
    const node = blank(Node, {
      id,
      spec: blank(NodeSpec, { annotations: blank(Annotations, { labels: o.labels ?? {} }), availability: o.availability ?? 'ACTIVE' }),
      description: blank(NodeDescription, { hostname: id }),
      status: blank(NodeStatus, { state: o.state ?? 'READY' }),
    });
    await this.store.update((tx) => tx.create('nodes', node));
    await this.settle();
  }

  async updateNode(id: string, change: (n: Node) => void): Promise<void> {
    await this.store.update((tx) => {
      const n = copy(Node, tx.get('nodes', id)!);
      change(n);
      tx.update('nodes', n);
    });
    await this.settle();
  }

  setNodeState = (id: string, s: NodeStatus_State) => this.updateNode(id, (n) => (n.status!.state = s));
  setAvailability = (id: string, a: NodeSpec_Availability) => this.updateNode(id, (n) => (n.spec!.availability = a));

  async removeNode(id: string): Promise<void> {
    await this.store.update((tx) => tx.remove('nodes', id));
    await this.settle();
  }

  async addService(id: string, o: ServiceOptions = {}): Promise<void> {
    const mode = o.mode ?? 'replicated';
    const spec = blank(ServiceSpec, {
      annotations: blank(Annotations, { name: id }),
      task: blank(TaskSpec, {
        container: blank(ContainerSpec, { image: 'busybox' }),
        placement: blank(Placement, { constraints: o.constraints ?? [] }),
        restart: o.restart ? blank(RestartPolicy, o.restart) : null,
      }),
      mode,
    });
    if (mode === 'replicated') spec.replicated = blank(ReplicatedService, { replicas: o.replicas ?? 1 });
    if (mode === 'global') spec.global = {};
    if (mode === 'replicatedJob') spec.replicatedJob = blank(ReplicatedJob, { maxConcurrent: o.maxConcurrent ?? 0, totalCompletions: o.totalCompletions ?? 0 });
    if (mode === 'globalJob') spec.globalJob = {};
    await this.store.update((tx) => tx.create('services', blank(Service, { id, spec, specVersion: 1 })));
    await this.settle();
  }

  async updateService(id: string, change: (s: Service) => void): Promise<void> {
    await this.store.update((tx) => {
      const s = copy(Service, tx.get('services', id)!);
      change(s);
      tx.update('services', s);
    });
    await this.settle();
  }

  scale = (id: string, replicas: number) => this.updateService(id, (s) => (s.spec!.replicated!.replicas = replicas));

  async removeService(id: string): Promise<void> {
    await this.store.update((tx) => tx.remove('services', id));
    await this.settle();
  }

  // ---- tasks --------------------------------------------------------------------------------

  tasks(serviceId: string): Task[] {
    return this.store.find('tasks', 'service', serviceId).sort((a, b) => a.slot - b.slot || (a.meta!.createdAt - b.meta!.createdAt) || (a.id < b.id ? -1 : 1));
  }

  live(serviceId: string): Task[] {
    return this.tasks(serviceId).filter(isLive);
  }

  task(id: string): Task {
    const t = this.store.get('tasks', id);
    if (!t) throw new Error(`no task ${id}`);
    return t;
  }

  /** The live task of a slot (asserting there is exactly one). */
  inSlot(serviceId: string, slot: number): Task {
    const live = this.live(serviceId).filter((t) => t.slot === slot);
    if (live.length !== 1) throw new Error(`slot ${serviceId}/${slot} has ${live.length} live tasks`);
    return live[0]!;
  }

  async updateTask(id: string, change: (t: Task) => void): Promise<void> {
    await this.store.update((tx) => {
      const t = copy(Task, tx.get('tasks', id)!);
      change(t);
      tx.update('tasks', t);
    });
    await this.settle();
  }

  /** Agent report: the task reached `s` (a container exit code for COMPLETE/FAILED). */
  report = (id: string, s: TaskState, exitCode = s === 'FAILED' ? 1 : 0) =>
    this.updateTask(id, (t) => {
      t.status = blank(TaskStatus, { ...t.status, state: s, timestamp: this.clock.now(), container: blank(ContainerStatus, { exitCode }) });
    });

  /**
   * The stand-in scheduler and agents: pending tasks go to ready, active nodes (the fewest tasks
   * of their service first, or their preset node), wanted tasks run, and tasks told to stop stop —
   * except on nodes that are down, which report nothing.
   */
  async cluster(): Promise<void> {
    for (let round = 0; round < 10; round++) {
      let changed = false;
      await this.store.update((tx) => {
        const nodes = tx.all('nodes').filter((n) => n.status?.state === 'READY' && n.spec?.availability === 'ACTIVE');
        for (const t0 of tx.all('tasks')) {
          const node = t0.nodeId ? tx.get('nodes', t0.nodeId) : undefined;
          if (node && node.status?.state === 'DOWN') continue;
          const t = copy(Task, t0);
          const s = state(t);
          const wanted = TaskStateNumber[t.desiredState] <= TaskStateNumber.RUNNING;
          if (wanted && s === 'PENDING') {
            if (!t.nodeId) {
              const counts = nodes.map((n) => tx.find('tasks', 'node', n.id).filter((x) => x.serviceId === t.serviceId && isLive(x)).length);
              const best = nodes.map((n, i) => [n.id, counts[i]!] as const).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0];
              if (!best) continue;
              t.nodeId = best[0];
            }
            t.status = blank(TaskStatus, { state: 'ASSIGNED', timestamp: this.clock.now() });
          } else if (t.desiredState === 'RUNNING' && TaskStateNumber[s] >= TaskStateNumber.ASSIGNED && TaskStateNumber[s] < TaskStateNumber.RUNNING) {
            t.status = blank(TaskStatus, { state: 'RUNNING', timestamp: this.clock.now() });
          } else if (!wanted && TaskStateNumber[s] <= TaskStateNumber.RUNNING && TaskStateNumber[s] >= TaskStateNumber.ASSIGNED) {
            t.status = blank(TaskStatus, { state: 'SHUTDOWN', timestamp: this.clock.now() });
          } else continue;
          tx.update('tasks', t);
          changed = true;
        }
      });
      await this.settle();
      if (!changed) return;
    }
  }
}

class AsyncProposer implements Proposer {
  constructor(private readonly store: MemoryStore) {}

  propose(data: Uint8Array): Promise<void> {
    return new Promise((resolve) =>
      setImmediate(() => {
        this.store.apply(data, this.store.appliedIndex + 1);
        resolve();
      }),
    );
  }
}

/** Live tasks per slot key must never exceed one. */
export function liveSlotViolations(store: MemoryStore): string[] {
  const count = new Map<string, number>();
  for (const t of store.all('tasks')) {
    if (!isLive(t)) continue;
    const key = t.slot ? `${t.serviceId}/${t.slot}@${t.jobIteration}` : `${t.serviceId}/node:${t.nodeId}@${t.jobIteration}`;
    count.set(key, (count.get(key) ?? 0) + 1);
  }
  return [...count].filter(([, n]) => n > 1).map(([k, n]) => `${k} has ${n} live tasks`);
}
