// Rolling updates over the orchestrator harness: services with update configs, spec changes and
// rollbacks written the way controlapi writes them (the contract at the top of
// manager/orchestrator/update/updater.ts), and stand-in agents whose tasks run, fail or hang by
// image, with health checks that turn healthy when the test says so.
import { blank, copy } from '../../../manager/store/blank.js';
import {
  Annotations,
  ContainerSpec,
  ContainerStatus,
  HealthConfig,
  Placement,
  ReplicatedService,
  RestartPolicy,
  Service,
  ServiceSpec,
  Task,
  TaskSpec,
  TaskStateNumber,
  TaskStatus,
  UpdateConfig,
  UpdateStatus,
  type UpdateStatus_State,
} from '../../../proto/gen/objects.js';
import type { OrchestratorOptions } from '../../../manager/orchestrator/orchestrator.js';
import { Harness, isLive, state } from './harness.js';

export type Behaviour = 'run' | 'fail' | 'reject' | 'hang';

export interface RolloutService {
  replicas?: number;
  global?: boolean;
  image?: string;
  update?: Partial<UpdateConfig>;
  rollback?: Partial<UpdateConfig>;
  healthcheck?: boolean;
  restart?: Partial<RestartPolicy>;
}

const RUNNING = TaskStateNumber.RUNNING;
const ASSIGNED = TaskStateNumber.ASSIGNED;

export const image = (t: Task): string => t.spec?.container?.image ?? '';

export class Rollout extends Harness {
  /** How tasks of an image behave on their agents (default: run). */
  readonly behaviour = new Map<string, Behaviour>();
  /** Images whose health check passes as soon as they run. */
  readonly healthyAtOnce = new Set<string>();
  /** Checks run after every applied transaction; what they return is recorded. */
  private readonly checks: (() => string | undefined)[] = [];
  readonly violations: string[] = [];

  constructor(opts: OrchestratorOptions = {}, asyncProposer = false) {
    super(opts, asyncProposer);
    this.store.on('change', () => {
      for (const check of this.checks) {
        const v = check();
        if (v !== undefined && this.violations.at(-1) !== v) this.violations.push(v);
      }
    });
  }

  /** Runs `check` after every transaction from now on; a returned string is a violation. */
  invariant(check: () => string | undefined): void {
    this.checks.push(check);
  }

  async createService(id: string, o: RolloutService = {}): Promise<void> {
    const spec = blank(ServiceSpec, {
      annotations: blank(Annotations, { name: id }),
      task: blank(TaskSpec, {
        container: blank(ContainerSpec, {
          image: o.image ?? 'app:1',
          healthcheck: o.healthcheck ? blank(HealthConfig, { test: ['CMD', 'check'] }) : null,
        }),
        placement: blank(Placement),
        restart: o.restart ? blank(RestartPolicy, o.restart) : null,
      }),
      mode: o.global ? 'global' : 'replicated',
      update: o.update ? blank(UpdateConfig, { parallelism: 1, monitorMs: 5000, ...o.update }) : null,
      rollback: o.rollback ? blank(UpdateConfig, { parallelism: 1, monitorMs: 5000, ...o.rollback }) : null,
    });
    if (o.global) spec.global = {};
    else spec.replicated = blank(ReplicatedService, { replicas: o.replicas ?? 1 });
    await this.store.update((tx) => tx.create('services', blank(Service, { id, spec, specVersion: 0 })));
    await this.settle();
  }

  service(id: string): Service {
    return this.store.get('services', id)!;
  }

  status(id: string): UpdateStatus_State | undefined {
    return this.service(id).updateStatus?.state;
  }

  /** `service update` as controlapi does it: previous spec kept, a new spec version, status reset. */
  async deploy(id: string, change: (spec: ServiceSpec) => void): Promise<void> {
    await this.store.update((tx) => {
      const s = copy(Service, tx.get('services', id)!);
      s.previousSpec = copy(ServiceSpec, s.spec!);
      change(s.spec!);
      s.specVersion = s.meta!.version;
      s.updateStatus = null;
      tx.update('services', s);
    });
    await this.settle();
  }

  setImage = (id: string, img: string) => this.deploy(id, (spec) => (spec.task!.container!.image = img));

  /** `service rollback` as controlapi does it. */
  async rollback(id: string): Promise<void> {
    await this.store.update((tx) => {
      const s = copy(Service, tx.get('services', id)!);
      const current = s.spec;
      s.spec = s.previousSpec;
      s.previousSpec = current;
      s.specVersion = s.meta!.version;
      s.updateStatus = blank(UpdateStatus, { state: 'ROLLBACK_STARTED', startedAt: this.clock.now(), message: 'manually requested rollback' });
      tx.update('services', s);
    });
    await this.settle();
  }

  /** Live tasks running healthy and wanted: the service's capacity. */
  serving(id: string): Task[] {
    return this.live(id).filter((t) => t.desiredState === 'RUNNING' && state(t) === 'RUNNING' && (t.status?.health ?? '') !== 'starting' && t.status?.health !== 'unhealthy');
  }

  /** Slots (or nodes) holding a live task of `img` that is not serving yet: slots being updated. */
  updatingSlots(id: string, img: string): number {
    const keys = new Set<string>();
    for (const t of this.live(id)) {
      if (image(t) !== img) continue;
      if (state(t) === 'RUNNING' && t.status?.health !== 'starting') continue;
      keys.add(t.slot ? String(t.slot) : t.nodeId);
    }
    return keys.size;
  }

  async setHealth(taskId: string, health: 'healthy' | 'unhealthy'): Promise<void> {
    await this.updateTask(taskId, (t) => (t.status = blank(TaskStatus, { ...t.status, health, timestamp: this.clock.now() })));
  }

  /** Marks every running task of `img` still starting its health check healthy. */
  async healthy(id: string, img: string): Promise<void> {
    for (const t of this.live(id)) {
      if (image(t) === img && state(t) === 'RUNNING' && t.status?.health === 'starting') await this.setHealth(t.id, 'healthy');
    }
  }

  /**
   * The stand-in scheduler and agents, one step at a time until nothing moves: pending tasks go to
   * the ready, active node with the fewest live tasks of their service (or their preset node);
   * wanted tasks run, fail, are rejected or hang as their image says; tasks told to stop stop.
   * Nodes that are down report nothing.
   */
  async agents(): Promise<void> {
    for (let round = 0; round < 20; round++) {
      let changed = false;
      await this.store.update((tx) => {
        const nodes = tx.all('nodes').filter((n) => n.status?.state === 'READY' && n.spec?.availability === 'ACTIVE');
        for (const t0 of tx.all('tasks')) {
          const node = t0.nodeId ? tx.get('nodes', t0.nodeId) : undefined;
          if (node && node.status?.state === 'DOWN') continue;
          const t = copy(Task, t0);
          const s = TaskStateNumber[state(t)];
          const wanted = TaskStateNumber[t.desiredState] <= RUNNING;
          const now = this.clock.now();
          const how = this.behaviour.get(image(t)) ?? 'run';
          if (wanted && state(t) === 'PENDING') {
            if (!t.nodeId) {
              const load = (nodeId: string) => tx.find('tasks', 'node', nodeId).filter((x) => x.serviceId === t.serviceId && isLive(x)).length;
              const best = nodes.map((n) => [n.id, load(n.id)] as const).sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))[0];
              if (!best) continue;
              t.nodeId = best[0];
            }
            t.status = blank(TaskStatus, { state: 'ASSIGNED', timestamp: now, message: 'assigned' });
          } else if (t.desiredState === 'RUNNING' && s >= ASSIGNED && s < RUNNING && how !== 'hang') {
            if (how === 'fail') t.status = blank(TaskStatus, { state: 'FAILED', timestamp: now, err: 'task: non-zero exit (1)', container: blank(ContainerStatus, { exitCode: 1 }) });
            else if (how === 'reject') t.status = blank(TaskStatus, { state: 'REJECTED', timestamp: now, err: 'no such image' });
            else {
              const checked = !!t.spec?.container?.healthcheck;
              const health = checked ? (this.healthyAtOnce.has(image(t)) ? 'healthy' : 'starting') : '';
              t.status = blank(TaskStatus, { state: 'RUNNING', timestamp: now, message: 'started', health });
            }
          } else if (!wanted && s >= ASSIGNED && s <= RUNNING) {
            t.status = blank(TaskStatus, { state: 'SHUTDOWN', timestamp: now, message: 'shutdown' });
          } else continue;
          tx.update('tasks', t);
          changed = true;
        }
      });
      await this.settle();
      if (!changed) return;
    }
  }

  /** Agents catch up, then `ms` pass; repeated until the service's update is no longer running. */
  async until(id: string, done: (s: UpdateStatus_State | undefined) => boolean, stepMs = 1000, maxSteps = 200): Promise<void> {
    for (let i = 0; i < maxSteps; i++) {
      await this.agents();
      if (done(this.status(id))) return;
      await this.advance(stepMs);
    }
    throw new Error(`service ${id} stuck in update state ${this.status(id)}: ${this.service(id).updateStatus?.message}`);
  }
}

/** One live task per slot (or node); start-first updates and drains may briefly hold two. */
export function liveBySlot(tasks: readonly Task[]): Map<string, Task[]> {
  const out = new Map<string, Task[]>();
  for (const t of tasks) {
    if (!isLive(t)) continue;
    const k = t.slot ? String(t.slot) : t.nodeId;
    out.set(k, [...(out.get(k) ?? []), t]);
  }
  return out;
}
