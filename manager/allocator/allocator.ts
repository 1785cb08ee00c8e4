// The allocator as a store watcher on the leader: it gives new networks their subnets and VXLAN
// ids, services their VIPs and published ports, and NEW tasks their addresses, moving each task to
// PENDING in the same transaction (the scheduler only places PENDING tasks). It keeps no state of
// its own on disk: `start()` rebuilds everything from the committed objects, so a new leader
// continues where the old one stopped without handing out an address twice.
import { Endpoint, Network, Service, type Task, type TaskStatus } from '../../proto/gen/objects.js';
import { silentLogger, type Logger } from '../../util/log.js';
import { copy } from '../store/blank.js';
import type { MemoryStore, StoreEvent, Tx } from '../store/memory.js';
import { AllocatorError, invalid } from './errors.js';
import { parseAddressPools } from './ipam/pool.js';
import { allocateNetwork, isNetworkAllocated, networkOwner, networkResources, restoreNetwork } from './network.js';
import { allocateServiceEndpoint, isServiceAllocated, serviceNetworkIds, serviceOwner, serviceResources } from './service.js';
import { AllocationState } from './state.js';
import { allocateTask, isTaskAllocatable, taskAttachmentConfigs, taskOwner, taskResources } from './task.js';

export interface AllocatorOptions {
  /** Overrides the cluster object's defaultAddressPool / subnetSize (both empty: 10.0.0.0/8 in /24s). */
  defaultAddressPool?: string[];
  subnetSize?: number;
  logger?: Logger;
  /** Stamps task status changes. */
  clock?: () => number;
  /** Tasks allocated per store transaction (one Raft entry: kept well under gRPC message limits). */
  batchSize?: number;
}

export const PENDING_MESSAGE = 'pending task scheduling';

/** Batches of tasks that join no network committed side by side in one step. */
const PLAIN_BATCHES = 8;

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const sameEndpoint = (a: Endpoint, b: Endpoint): boolean => Buffer.from(Endpoint.encode(a)).equals(Buffer.from(Endpoint.encode(b)));

export class Allocator {
  private state: AllocationState;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly batchSize: number;
  private ingressNetworkId: string | undefined;
  private readonly dirty = { networks: new Set<string>(), services: new Set<string>(), tasks: new Set<string>() };
  /** Work that failed and waits for a change that may unblock it (a release, a network allocated). */
  private readonly waiting = { networks: new Set<string>(), services: new Set<string>(), tasks: new Set<string>() };
  /** Why an object is not allocated, by owner key ("task:ID"): for diagnostics and tests. */
  readonly errors = new Map<string, string>();
  private pumping = false;
  private started = false;
  private idleWaiters: (() => void)[] = [];
  private readonly onChange = (ev: StoreEvent) => this.handle(ev);
  private readonly onRestore = () => this.rebuild();

  constructor(
    private readonly store: MemoryStore,
    private readonly opts: AllocatorOptions = {},
  ) {
    this.log = opts.logger ?? silentLogger;
    this.clock = opts.clock ?? Date.now;
    this.batchSize = opts.batchSize ?? 250;
    this.state = new AllocationState();
  }

  /** Rebuilds from the store, starts following it, and resolves once the backlog is allocated. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.rebuild();
    this.store.on('change', this.onChange);
    this.store.on('restore', this.onRestore);
    this.kick();
    await this.settled();
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.store.off('change', this.onChange);
    this.store.off('restore', this.onRestore);
    this.wakeIdle();
  }

  /** Resolves when nothing is queued and no transaction is in flight (waiting work excluded). */
  settled(): Promise<void> {
    if (!this.pumping && !this.hasWork()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** The allocation bookkeeping (read-only use: tests, metrics). */
  get current(): AllocationState {
    return this.state;
  }

  // ---- rebuilding from the store ------------------------------------------------------------

  private rebuild(): void {
    const cluster = this.store.all('clusters')[0];
    const pools = parseAddressPools(
      this.opts.defaultAddressPool?.length ? this.opts.defaultAddressPool : (cluster?.defaultAddressPool ?? []),
      this.opts.subnetSize || cluster?.subnetSize || 0,
    );
    this.state = new AllocationState(pools);
    for (const set of [...Object.values(this.dirty), ...Object.values(this.waiting)]) set.clear();
    this.errors.clear();
    this.ingressNetworkId = undefined;
    for (const n of this.store.all('networks')) this.followNetwork(n);
    for (const s of this.store.all('services')) this.followService(s);
    let clashes = 0;
    for (const t of this.store.all('tasks')) clashes += this.followTask(t);
    if (clashes > 0) this.log.warn('addresses claimed twice in the store', { clashes });
  }

  // ---- following committed changes ----------------------------------------------------------

  private handle(ev: StoreEvent): void {
    if (ev.table === 'networks') {
      const n = ev.object as Network;
      if (ev.kind === 'remove') this.forgetNetwork(n);
      else this.followNetwork(n);
    } else if (ev.table === 'services') {
      const s = ev.object as Service;
      if (ev.kind === 'remove') {
        this.dirty.services.delete(s.id);
        this.waiting.services.delete(s.id);
        this.errors.delete(serviceOwner(s.id));
        if (this.state.reconcile(serviceOwner(s.id), []).released > 0) this.retryWaiting();
      } else {
        this.followService(s);
      }
    } else if (ev.table === 'tasks') {
      const t = ev.object as Task;
      if (ev.kind === 'remove') {
        this.dirty.tasks.delete(t.id);
        this.waiting.tasks.delete(t.id);
        this.errors.delete(taskOwner(t.id));
        if (this.state.reconcile(taskOwner(t.id), []).released > 0) this.retryWaiting();
      } else {
        this.followTask(t);
      }
    }
    this.kick();
  }

  private followNetwork(n: Network): void {
    const wasIngress = this.ingressNetworkId;
    if (n.spec?.ingress) this.ingressNetworkId = n.id;
    if (!isNetworkAllocated(n)) {
      this.waiting.networks.delete(n.id);
      if (!this.state.ipam.hasNetwork(n.id)) this.dirty.networks.add(n.id);
      return;
    }
    this.dirty.networks.delete(n.id);
    this.waiting.networks.delete(n.id);
    this.errors.delete(networkOwner(n.id));
    const fresh = this.state.adoptNetwork(n.id) || !this.state.ipam.hasNetwork(n.id);
    if (!this.state.ipam.hasNetwork(n.id)) {
      try {
        restoreNetwork(this.state, n);
      } catch (e) {
        this.log.error('cannot restore network allocation', { network: n.id, err: e as Error });
        return;
      }
    }
    const { clashes } = this.state.reconcile(networkOwner(n.id), networkResources(n));
    if (clashes.length > 0) this.log.error('network holds VXLAN ids another network holds', { network: n.id, clashes });
    if (fresh) {
      // Services and tasks may have waited for this network; with a new ingress network, every
      // service publishing ports needs a VIP on it.
      this.retryWaiting();
      if (n.spec?.ingress && wasIngress !== n.id) for (const s of this.store.all('services')) this.followService(s);
    }
  }

  private forgetNetwork(n: Network): void {
    this.dirty.networks.delete(n.id);
    this.waiting.networks.delete(n.id);
    this.errors.delete(networkOwner(n.id));
    if (this.ingressNetworkId === n.id) this.ingressNetworkId = undefined;
    this.state.reconcile(networkOwner(n.id), []);
    this.state.ipam.removeNetwork(n.id);
    // Its subnet is free now: a network refused for overlapping it may fit.
    this.retryWaiting();
  }

  private followService(s: Service): void {
    const { released, clashes } = this.state.reconcile(serviceOwner(s.id), serviceResources(s));
    if (clashes.length > 0) this.log.error('service holds addresses or ports already in use', { service: s.id, clashes });
    if (released > 0) this.retryWaiting();
    if (isServiceAllocated(s, this.ingressNetworkId)) {
      this.dirty.services.delete(s.id);
      this.errors.delete(serviceOwner(s.id));
      if (this.waiting.services.delete(s.id) || this.waiting.tasks.size > 0) this.retryWaiting();
    } else {
      // A changed spec may have fixed what failed (the allocator never writes a failed service).
      this.waiting.services.delete(s.id);
      this.dirty.services.add(s.id);
    }
  }

  /** Returns the number of addresses the task claims that were already taken. */
  private followTask(t: Task): number {
    const { released, clashes } = this.state.reconcile(taskOwner(t.id), taskResources(t));
    if (clashes.length > 0) this.log.error('task holds addresses already in use', { task: t.id, clashes });
    if (released > 0) this.retryWaiting();
    if (isTaskAllocatable(t)) {
      // The allocator's own write of a failure reason must not send the task round again.
      const ownFailure = this.waiting.tasks.has(t.id) && t.status?.err === this.errors.get(taskOwner(t.id));
      if (!ownFailure) {
        this.waiting.tasks.delete(t.id);
        this.dirty.tasks.add(t.id);
      }
    } else {
      this.dirty.tasks.delete(t.id);
      this.waiting.tasks.delete(t.id);
      this.errors.delete(taskOwner(t.id));
    }
    return clashes.length;
  }

  private retryWaiting(): void {
    for (const kind of ['networks', 'services', 'tasks'] as const) {
      for (const id of this.waiting[kind]) this.dirty[kind].add(id);
      this.waiting[kind].clear();
    }
  }

  // ---- allocating ---------------------------------------------------------------------------

  private hasWork(): boolean {
    return this.dirty.networks.size + this.dirty.services.size + this.dirty.tasks.size > 0;
  }

  private kick(): void {
    if (this.pumping) return;
    if (!this.started || !this.hasWork()) {
      this.wakeIdle();
      return;
    }
    this.pumping = true;
    setImmediate(() => {
      this.step()
        .catch((e: unknown) => this.log.error('allocation round failed', { err: e as Error }))
        .finally(() => {
          this.pumping = false;
          this.kick();
        });
    });
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** One transaction: networks first (services and tasks need them), then services, then tasks. */
  private async step(): Promise<void> {
    if (this.dirty.networks.size > 0) return this.commit('networks', this.take('networks', Infinity), (tx, id) => this.allocateNetworkIn(tx, id));
    if (this.dirty.services.size > 0) return this.commit('services', this.take('services', Infinity), (tx, id) => this.allocateServiceIn(tx, id));
    if (this.dirty.tasks.size > 0) {
      const { plain, others } = this.takeTasks();
      // Tasks that take no address reserve nothing: their batches may commit side by side (one
      // Raft round for all) instead of one after another; the event loop gets a turn between
      // proposals (each is encoded when proposed).
      const commits: Promise<void>[] = others.length > 0 ? [this.commit('tasks', others, (tx, id) => this.allocateTaskIn(tx, id))] : [];
      for (const ids of chunks(plain, this.batchSize)) {
        if (commits.length > 0) await new Promise((r) => setImmediate(r));
        commits.push(this.commitPlain(ids));
      }
      await Promise.all(commits);
    }
  }

  /**
   * Dirty tasks split into those that join no network (many batches' worth at most) and the
   * others (one batch, since their addresses are reserved in the one pending set of the state).
   */
  private takeTasks(): { plain: string[]; others: string[] } {
    const plain: string[] = [];
    const others: string[] = [];
    for (const id of this.dirty.tasks) {
      if (others.length >= this.batchSize || plain.length >= this.batchSize * PLAIN_BATCHES) break;
      const t = this.store.get('tasks', id);
      const service = t?.serviceId ? this.store.get('services', t.serviceId) : undefined;
      if (t && taskAttachmentConfigs(t, service, this.ingressNetworkId).length === 0) plain.push(id);
      else others.push(id);
    }
    for (const id of [...plain, ...others]) this.dirty.tasks.delete(id);
    return { plain, others };
  }

  /** Moves tasks that need no address to PENDING; one whose spec now asks for one goes round again. */
  private async commitPlain(ids: string[]): Promise<void> {
    const again: string[] = [];
    try {
      await this.store.update((tx) => {
        again.length = 0;
        for (const id of ids) {
          const t = tx.get('tasks', id);
          const service = t?.serviceId ? tx.get('services', t.serviceId) : undefined;
          if (t && taskAttachmentConfigs(t, service, this.ingressNetworkId).length > 0) again.push(id);
          else this.allocateTaskIn(tx, id);
        }
      });
    } catch (e) {
      this.log.error('allocating tasks failed', { count: ids.length, err: e as Error });
      for (const id of ids) this.waiting.tasks.add(id);
      return;
    }
    for (const id of again) this.dirty.tasks.add(id);
  }

  private take(kind: 'networks' | 'services' | 'tasks', max: number): string[] {
    const ids: string[] = [];
    for (const id of this.dirty[kind]) {
      if (ids.length >= max) break;
      ids.push(id);
    }
    for (const id of ids) this.dirty[kind].delete(id);
    return ids;
  }

  private async commit(kind: 'networks' | 'services' | 'tasks', ids: string[], one: (tx: Tx, id: string) => void): Promise<void> {
    const state = this.state;
    try {
      await this.store.update((tx) => {
        // A retried transaction starts over: give back what the failed attempt took.
        state.rollbackPending();
        for (const id of ids) one(tx, id);
      });
    } catch (e) {
      this.log.error(`allocating ${kind} failed`, { count: ids.length, err: e as Error });
      if (state === this.state) for (const id of ids) this.waiting[kind].add(id);
    } finally {
      // Whatever the committed objects did not adopt was never written.
      state.rollbackPending();
    }
  }

  private failed(kind: 'networks' | 'services' | 'tasks', owner: string, id: string, e: unknown): string {
    if (!(e instanceof AllocatorError)) throw e;
    this.waiting[kind].add(id);
    if (this.errors.get(owner) !== e.message) this.log.warn(`cannot allocate ${kind.slice(0, -1)}`, { id, err: e.message });
    this.errors.set(owner, e.message);
    return e.message;
  }

  private allocateNetworkIn(tx: Tx, id: string): void {
    const n = tx.get('networks', id);
    if (!n || isNetworkAllocated(n)) return;
    try {
      const { ipam, driverState } = allocateNetwork(this.state, n);
      const updated = copy(Network, n);
      updated.ipam = ipam;
      updated.driverState = driverState;
      tx.update('networks', updated);
    } catch (e) {
      this.failed('networks', networkOwner(id), id, e);
    }
  }

  private allocateServiceIn(tx: Tx, id: string): void {
    const s = tx.get('services', id);
    if (!s || isServiceAllocated(s, this.ingressNetworkId)) return;
    try {
      this.checkNetworksExist(tx, serviceNetworkIds(s), `service ${s.spec?.annotations?.name || s.id}`);
      const endpoint = allocateServiceEndpoint(this.state, s, this.ingressNetworkId);
      if (s.endpoint && sameEndpoint(endpoint, s.endpoint)) {
        // Writing it again would only bring the service back here: a bug, not a retry.
        this.log.error('service endpoint is complete but not recognised as allocated', { service: id });
        return;
      }
      const updated = copy(Service, s);
      updated.endpoint = endpoint;
      tx.update('services', updated);
    } catch (e) {
      this.failed('services', serviceOwner(id), id, e);
    }
  }

  private allocateTaskIn(tx: Tx, id: string): void {
    const t = tx.get('tasks', id);
    if (!t || !isTaskAllocatable(t)) return;
    const service = t.serviceId ? tx.get('services', t.serviceId) : undefined;
    if (service && !isServiceAllocated(service, this.ingressNetworkId)) {
      // The service's allocation (or its failure) will bring this task back.
      this.waiting.tasks.add(id);
      return;
    }
    try {
      this.checkNetworksExist(tx, (t.spec?.networks ?? service?.spec?.task?.networks ?? []).map((c) => c.target), `task ${t.id}`);
      const { networks, endpoint } = allocateTask(this.state, t, service, this.ingressNetworkId);
      // A shallow copy is enough: only top-level fields are replaced, the committed object's
      // nested values are shared read-only, and the store encodes what it is given.
      tx.update('tasks', { ...t, networks, endpoint, status: { ...this.status(t), state: 'PENDING', message: PENDING_MESSAGE, err: '' } });
    } catch (e) {
      const message = this.failed('tasks', taskOwner(id), id, e);
      // Show lasting failures in `service ps`; a network still being allocated is not one.
      if ((e as AllocatorError).code !== 'FailedPrecondition' && t.status?.err !== message) {
        tx.update('tasks', { ...t, status: { ...this.status(t), err: message } });
      }
    }
  }

  private checkNetworksExist(tx: Tx, ids: readonly string[], label: string): void {
    const missing = ids.filter((id) => id !== '' && !tx.get('networks', id));
    if (missing.length > 0) throw invalid(`${label}: network ${missing.join(', ')} does not exist`);
  }

  private status(t: Task): TaskStatus {
    return {
      timestamp: this.clock(),
      state: t.status?.state ?? 'NEW',
      message: t.status?.message ?? '',
      err: t.status?.err ?? '',
      container: t.status?.container ?? null,
      health: t.status?.health ?? '',
      hostPorts: t.status?.hostPorts ?? [],
    };
  }
}
