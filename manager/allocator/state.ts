// The allocator's bookkeeping: what every owner (a network, a service, a task) holds, kept in step
// with the committed store. Allocations made while building a transaction are *pending* until the
// store reports the committed object that carries them; a transaction that fails or is retried
// gives its pending allocations back. The committed objects are the only truth, which is what
// makes the state rebuildable after a leader change: replaying them through `reconcile` marks
// exactly what is in use.
import type { PortConfig_Protocol } from '../../proto/gen/objects.js';
import { Ipam } from './ipam/ipam.js';
import type { AddressPoolConfig } from './ipam/pool.js';
import { PortAllocator, type PortOwner } from './ports.js';
import { VniAllocator } from './vni.js';

export type Resource =
  | { kind: 'ip'; networkId: string; address: string }
  | { kind: 'port'; protocol: PortConfig_Protocol; port: number; owner: PortOwner }
  | { kind: 'vni'; vni: number };

/** Owners are keyed by table and id: "task:abc", "service:def", "network:ghi". */
export type OwnerKey = string;

function resourceKey(r: Resource): string {
  switch (r.kind) {
    case 'ip':
      return `ip:${r.networkId}:${r.address.split('/')[0]}`;
    case 'port':
      return `port:${r.protocol}:${r.port}`;
    case 'vni':
      return `vni:${r.vni}`;
  }
}

interface Held {
  key: string;
  r: Resource;
}

export interface ReconcileResult {
  released: number;
  /** Resources the committed object claims but that someone else already holds. */
  clashes: string[];
}

export class AllocationState {
  readonly ipam: Ipam;
  readonly vnis = new VniAllocator();
  readonly ports = new PortAllocator();
  private readonly holdings = new Map<OwnerKey, Held[]>();
  private readonly pending = new Map<OwnerKey, Map<string, Resource>>();
  /** Networks whose subnets were added by the transaction being built. */
  private readonly pendingNetworks = new Set<string>();

  constructor(pools?: AddressPoolConfig) {
    this.ipam = new Ipam(pools);
  }

  holdingsOf(owner: OwnerKey): Resource[] {
    return (this.holdings.get(owner) ?? []).map((h) => h.r);
  }

  // ---- speculative allocation, while a transaction is built -------------------------------

  allocateIp(owner: OwnerKey, networkId: string): string {
    const address = this.ipam.allocate(networkId);
    this.addPending(owner, { kind: 'ip', networkId, address });
    return address;
  }

  reserveIp(owner: OwnerKey, networkId: string, address: string): string {
    const withPrefix = this.ipam.reserve(networkId, address);
    this.addPending(owner, { kind: 'ip', networkId, address: withPrefix });
    return withPrefix;
  }

  allocatePort(owner: OwnerKey, protocol: PortConfig_Protocol, portOwner: PortOwner): number {
    const port = this.ports.allocateDynamic(protocol, portOwner);
    this.addPending(owner, { kind: 'port', protocol, port, owner: portOwner });
    return port;
  }

  /** Claims a given port; holding it already (committed) is fine and records nothing new. */
  reservePort(owner: OwnerKey, protocol: PortConfig_Protocol, port: number, portOwner: PortOwner): void {
    const r: Resource = { kind: 'port', protocol, port, owner: portOwner };
    const key = resourceKey(r);
    if (this.holdings.get(owner)?.some((h) => h.key === key) || this.pending.get(owner)?.has(key)) return;
    this.ports.reserve(protocol, port, portOwner);
    this.addPending(owner, r);
  }

  allocateVni(owner: OwnerKey): number {
    const vni = this.vnis.allocate();
    this.addPending(owner, { kind: 'vni', vni });
    return vni;
  }

  reserveVni(owner: OwnerKey, vni: number): void {
    this.vnis.reserve(vni);
    this.addPending(owner, { kind: 'vni', vni });
  }

  /** Marks a network's subnets as added by the transaction being built. */
  notePendingNetwork(networkId: string): void {
    this.pendingNetworks.add(networkId);
  }

  /** Gives back everything allocated for a transaction that did not commit (or was retried). */
  rollbackPending(): void {
    for (const resources of this.pending.values()) for (const r of resources.values()) this.free(r);
    this.pending.clear();
    for (const id of this.pendingNetworks) this.ipam.removeNetwork(id);
    this.pendingNetworks.clear();
  }

  /** Gives back one owner's pending allocations: its part of the transaction failed on its own. */
  rollbackOwner(owner: OwnerKey, networkId?: string): void {
    for (const r of this.pending.get(owner)?.values() ?? []) this.free(r);
    this.pending.delete(owner);
    if (networkId !== undefined && this.pendingNetworks.delete(networkId)) this.ipam.removeNetwork(networkId);
  }

  private addPending(owner: OwnerKey, r: Resource): void {
    let m = this.pending.get(owner);
    if (!m) this.pending.set(owner, (m = new Map()));
    m.set(resourceKey(r), r);
  }

  // ---- following the committed store ------------------------------------------------------

  /**
   * Makes `owner`'s holdings exactly `resources` (as read from a committed object): frees what it
   * no longer names, adopts what the pending transaction allocated for it, and marks anything
   * else (an allocation made by an earlier leader) as in use.
   */
  reconcile(owner: OwnerKey, resources: readonly Resource[]): ReconcileResult {
    const result: ReconcileResult = { released: 0, clashes: [] };
    const current = this.holdings.get(owner);
    if (!current && resources.length === 0) return result;
    // Owners hold a handful of resources: arrays beat maps here, and this runs on every change.
    const wanted = resources.map((r) => ({ key: resourceKey(r), r }));
    for (const h of current ?? []) {
      if (wanted.some((w) => w.key === h.key)) continue;
      this.free(h.r);
      result.released++;
    }
    const pending = this.pending.get(owner);
    const next: Held[] = [];
    for (const w of wanted) {
      if (current?.some((h) => h.key === w.key)) {
        next.push(w);
      } else if (pending?.delete(w.key)) {
        next.push(w);
      } else {
        try {
          this.mark(w.r);
          next.push(w);
        } catch (e) {
          result.clashes.push(`${w.key}: ${(e as Error).message}`);
        }
      }
    }
    if (pending?.size === 0) this.pending.delete(owner);
    if (next.length > 0) this.holdings.set(owner, next);
    else this.holdings.delete(owner);
    return result;
  }

  /** A committed network's subnets: adopted from the pending transaction or re-added (rebuild). */
  adoptNetwork(networkId: string): boolean {
    return this.pendingNetworks.delete(networkId);
  }

  private mark(r: Resource): void {
    switch (r.kind) {
      case 'ip':
        this.ipam.reserve(r.networkId, r.address);
        return;
      case 'port':
        this.ports.reserve(r.protocol, r.port, r.owner);
        return;
      case 'vni':
        this.vnis.reserve(r.vni);
        return;
    }
  }

  private free(r: Resource): void {
    switch (r.kind) {
      case 'ip':
        this.ipam.release(r.networkId, r.address);
        return;
      case 'port':
        this.ports.release(r.protocol, r.port, r.owner.serviceId);
        return;
      case 'vni':
        this.vnis.release(r.vni);
        return;
    }
  }
}
