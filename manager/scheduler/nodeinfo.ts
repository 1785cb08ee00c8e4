// What the scheduler knows about one node: the node object and the tasks that hold a place on it,
// summarised as the counters the filters and the spread strategy read (tasks per service, CPU,
// memory and generic resources reserved, host ports in use). Kept up to date incrementally, so a
// placement decision never rescans the tasks of the cluster.
import { TaskStateNumber, type Node, type PortConfig, type Task } from '../../proto/gen/objects.js';

const ASSIGNED = TaskStateNumber.ASSIGNED;
const RUNNING = TaskStateNumber.RUNNING;
const COMPLETE = TaskStateNumber.COMPLETE;

/** The task should exist (desired RUNNING, or COMPLETE for jobs): not being shut down or removed. */
export function isWanted(t: Task): boolean {
  return TaskStateNumber[t.desiredState] <= COMPLETE;
}

/** A task waiting for the scheduler to choose its node. */
export function isUnassigned(t: Task): boolean {
  return !t.nodeId && (t.status?.state ?? 'NEW') === 'PENDING' && isWanted(t);
}

/** A task the orchestrator placed itself (global services): the scheduler only confirms it fits. */
export function isPreassigned(t: Task): boolean {
  return !!t.nodeId && (t.status?.state ?? 'NEW') === 'PENDING' && isWanted(t);
}

/**
 * A task that holds resources on its node: assigned and not yet ended. A task that reached a
 * terminal state (COMPLETE, FAILED, SHUTDOWN, ...) releases what it reserved.
 */
export function holdsNode(t: Task): boolean {
  if (!t.nodeId) return false;
  const s = TaskStateNumber[t.status?.state ?? 'NEW'];
  return s >= ASSIGNED && s <= RUNNING;
}

/** "tcp/8080": the key of a host-mode published port. */
export function portKey(p: Pick<PortConfig, 'protocol' | 'publishedPort'>): string {
  return `${p.protocol.toLowerCase()}/${p.publishedPort}`;
}

/** The host-mode ports a task publishes (ports chosen by the allocator, else those asked for). */
const NO_PORTS: readonly string[] = [];
const NO_GENERIC: ReadonlyMap<string, number> = new Map();

export function hostPorts(t: Task): readonly string[] {
  if (!t.endpoint) return NO_PORTS;
  const ports = t.endpoint?.ports?.length ? t.endpoint.ports : (t.endpoint?.spec?.ports ?? []);
  const out: string[] = [];
  for (const p of ports) if (p.publishMode === 'HOST' && p.publishedPort > 0) out.push(portKey(p));
  return out;
}

/** Discrete generic resources a task reserves, by kind. */
export function genericReservations(t: Task): ReadonlyMap<string, number> {
  const generic = t.spec?.resources?.reservations?.generic;
  if (!generic || generic.length === 0) return NO_GENERIC;
  const out = new Map<string, number>();
  for (const g of generic) {
    if (g.value > 0) out.set(g.kind, (out.get(g.kind) ?? 0) + g.value);
  }
  return out;
}

function add(map: Map<string, number>, key: string, delta: number): void {
  const v = (map.get(key) ?? 0) + delta;
  if (v === 0) map.delete(key);
  else map.set(key, v);
}

export class NodeInfo {
  /** Tasks holding a place on this node, by id. */
  readonly tasks = new Map<string, Task>();
  /** Wanted tasks on the node: what spreading counts. */
  activeTasks = 0;
  readonly activeByService = new Map<string, number>();
  reservedNanoCpus = 0;
  reservedMemoryBytes = 0;
  readonly reservedGeneric = new Map<string, number>();
  /** Host ports in use, with how many tasks claim each (several may during a restart). */
  readonly usedHostPorts = new Map<string, number>();
  /** Discrete generic resources the node offers, by kind (a named resource counts as one). */
  capacityGeneric = new Map<string, number>();

  constructor(public node: Node) {
    this.setNode(node);
  }

  get id(): string {
    return this.node.id;
  }

  setNode(node: Node): void {
    this.node = node;
    const capacity = new Map<string, number>();
    for (const g of node.description?.resources?.generic ?? []) add(capacity, g.kind, g.named ? 1 : g.value);
    this.capacityGeneric = capacity;
  }

  get availableNanoCpus(): number {
    return (this.node.description?.resources?.nanoCpus ?? 0) - this.reservedNanoCpus;
  }

  get availableMemoryBytes(): number {
    return (this.node.description?.resources?.memoryBytes ?? 0) - this.reservedMemoryBytes;
  }

  availableGeneric(kind: string): number {
    return (this.capacityGeneric.get(kind) ?? 0) - (this.reservedGeneric.get(kind) ?? 0);
  }

  serviceTasks(serviceId: string): number {
    return this.activeByService.get(serviceId) ?? 0;
  }

  /** Counts a task on this node (replacing an earlier version of it). */
  addTask(t: Task): void {
    this.removeTask(t.id);
    this.tasks.set(t.id, t);
    this.account(t, 1);
  }

  /** Forgets a task; returns whether it was counted here. */
  removeTask(id: string): boolean {
    const t = this.tasks.get(id);
    if (!t) return false;
    this.tasks.delete(id);
    this.account(t, -1);
    return true;
  }

  private account(t: Task, sign: 1 | -1): void {
    if (isWanted(t)) {
      this.activeTasks += sign;
      add(this.activeByService, t.serviceId, sign);
    }
    const r = t.spec?.resources?.reservations;
    if (r) {
      this.reservedNanoCpus += sign * r.nanoCpus;
      this.reservedMemoryBytes += sign * r.memoryBytes;
      if (r.generic.length > 0) for (const [kind, n] of genericReservations(t)) add(this.reservedGeneric, kind, sign * n);
    }
    const ports = hostPorts(t);
    for (let i = 0; i < ports.length; i++) add(this.usedHostPorts, ports[i]!, sign);
  }
}

/** Builds node infos from nodes and the tasks of the cluster (those not holding a node are ignored). */
export function buildNodeInfos(nodes: readonly Node[], tasks: readonly Task[]): NodeInfo[] {
  const infos = new Map(nodes.map((n) => [n.id, new NodeInfo(n)]));
  for (const t of tasks) if (holdsNode(t)) infos.get(t.nodeId)?.addTask(t);
  return [...infos.values()];
}
