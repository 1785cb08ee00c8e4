// IP address management for the whole cluster: each network's subnets (given by the user or
// carved from the default pools, never overlapping another network's) and the addresses handed
// out inside them to task endpoints and service VIPs. All in memory: the allocator rebuilds it
// from the store on start, so it needs no persistence of its own.
import { AllocatorError, conflict, exhausted, invalid } from '../errors.js';
import { formatCidr, formatIp, parseIp } from './ipv4.js';
import { AddressSpace, describe, type AddressPoolConfig, type SubnetOwner } from './pool.js';
import { SubnetAddresses, resolveSubnetConfig } from './subnet.js';

/** A network's IPAM request or result, in the store's string form (IPAMConfig). */
export interface SubnetRequest {
  subnet: string;
  gateway: string;
  range: string;
}

interface NetworkEntry {
  owner: SubnetOwner;
  subnets: SubnetAddresses[];
}

export class Ipam {
  readonly space: AddressSpace;
  private readonly networks = new Map<string, NetworkEntry>();

  constructor(pools?: AddressPoolConfig) {
    this.space = new AddressSpace(pools);
  }

  hasNetwork(networkId: string): boolean {
    return this.networks.has(networkId);
  }

  /**
   * Gives a network its subnets: the requested ones (checked, gateway defaulted) or, when none is
   * requested, one from the default pools. All or nothing. Returns the configs as allocated.
   */
  addNetwork(owner: SubnetOwner, requests: readonly SubnetRequest[]): SubnetRequest[] {
    if (this.networks.has(owner.networkId)) throw conflict(`network ${describe(owner)} already has its subnets`);
    const subnets: SubnetAddresses[] = [];
    try {
      if (requests.length === 0) {
        const c = this.space.allocate(owner);
        subnets.push(new SubnetAddresses(resolveSubnetConfig(formatCidr(c))));
      }
      for (const r of requests) {
        if (!r.subnet) {
          if (r.gateway || r.range) throw invalid(`network ${describe(owner)}: a gateway or ip-range needs a subnet (--subnet)`);
          const c = this.space.allocate(owner);
          subnets.push(new SubnetAddresses(resolveSubnetConfig(formatCidr(c))));
          continue;
        }
        const config = resolveSubnetConfig(r.subnet, r.gateway, r.range);
        this.space.reserve(config.subnet, owner);
        subnets.push(new SubnetAddresses(config));
      }
    } catch (e) {
      this.space.release(owner.networkId);
      throw e;
    }
    this.networks.set(owner.networkId, { owner, subnets });
    return subnets.map((s) => ({
      subnet: s.subnetText,
      gateway: formatIp(s.config.gateway),
      range: s.config.rangeGiven ? formatCidr(s.config.range) : '',
    }));
  }

  removeNetwork(networkId: string): void {
    this.networks.delete(networkId);
    this.space.release(networkId);
  }

  /** A dynamic address for an endpoint on the network, "10.0.1.5/24". */
  allocate(networkId: string): string {
    const net = this.entry(networkId);
    let last: AllocatorError | undefined;
    for (const s of net.subnets) {
      try {
        return s.withPrefix(s.allocate());
      } catch (e) {
        if (!(e instanceof AllocatorError) || e.code !== 'ResourceExhausted') throw e;
        last = e;
      }
    }
    throw exhausted(`network ${describe(net.owner)} has no free address: ${last?.message ?? 'it has no subnet'}`);
  }

  /** Claims a given address ("10.0.1.5" or "10.0.1.5/24") on the network; returns it with its prefix. */
  reserve(networkId: string, address: string): string {
    const net = this.entry(networkId);
    const ip = parseIp(address.split('/')[0]!, `address on network ${describe(net.owner)}`);
    const s = net.subnets.find((x) => x.contains(ip));
    if (!s) throw invalid(`address ${address} is not inside any subnet of network ${describe(net.owner)} (${net.subnets.map((x) => x.subnetText).join(', ')})`);
    s.reserve(ip);
    return s.withPrefix(ip);
  }

  /** Frees an address; a no-op when the network or the address is already gone. */
  release(networkId: string, address: string): boolean {
    const net = this.networks.get(networkId);
    if (!net) return false;
    const ip = parseIp(address.split('/')[0]!);
    const s = net.subnets.find((x) => x.contains(ip));
    return s ? s.release(ip) : false;
  }

  isUsed(networkId: string, address: string): boolean {
    const net = this.networks.get(networkId);
    if (!net) return false;
    const ip = parseIp(address.split('/')[0]!);
    return net.subnets.some((s) => s.contains(ip) && s.isUsed(ip));
  }

  /** Addresses in use on a network (endpoints and VIPs, not gateway/network/broadcast). */
  inUse(networkId: string): number {
    return this.networks.get(networkId)?.subnets.reduce((n, s) => n + s.inUse, 0) ?? 0;
  }

  private entry(networkId: string): NetworkEntry {
    const net = this.networks.get(networkId);
    if (!net) throw invalid(`network ${networkId} has no allocated subnets`);
    return net;
  }
}
