// The cluster's address space: every subnet any network holds, so no two networks overlap, and the
// default address pools that subnets are carved from when a network names none (Docker's
// `--default-addr-pool 10.0.0.0/8 --default-addr-pool-mask-length 24`).
import { conflict, exhausted, invalid } from '../errors.js';
import { formatCidr, lastOf, overlaps, parseCidr, sizeOf, type Cidr } from './ipv4.js';
import { MAX_SUBNET_BITS, MIN_SUBNET_BITS } from './subnet.js';

export const DEFAULT_ADDRESS_POOL: readonly string[] = ['10.0.0.0/8'];
export const DEFAULT_SUBNET_SIZE = 24;

export interface AddressPoolConfig {
  pools: Cidr[];
  subnetBits: number;
}

/**
 * Checks the pool configuration given at `init` (cluster.defaultAddressPool, cluster.subnetSize);
 * empty values mean Docker's defaults.
 */
export function parseAddressPools(pools: readonly string[] = [], subnetSize = 0): AddressPoolConfig {
  const texts = pools.length > 0 ? pools : DEFAULT_ADDRESS_POOL;
  const subnetBits = subnetSize || DEFAULT_SUBNET_SIZE;
  if (!Number.isInteger(subnetBits) || subnetBits < MIN_SUBNET_BITS || subnetBits > MAX_SUBNET_BITS) {
    throw invalid(`invalid default address pool subnet size ${subnetSize}: must be between ${MIN_SUBNET_BITS} and ${MAX_SUBNET_BITS}`);
  }
  const parsed: Cidr[] = [];
  for (const text of texts) {
    const c = parseCidr(text, 'default address pool');
    if (c.bits > subnetBits) {
      throw invalid(`invalid default address pool ${text}: it is smaller than the subnet size /${subnetBits} carved from it`);
    }
    const clash = parsed.find((p) => overlaps(p, c));
    if (clash) throw invalid(`invalid default address pool ${text}: it overlaps pool ${formatCidr(clash)}`);
    parsed.push(c);
  }
  return { pools: parsed, subnetBits };
}

/** Who holds a subnet, for error messages that name both sides of a clash. */
export interface SubnetOwner {
  networkId: string;
  networkName: string;
}

interface Held extends SubnetOwner {
  cidr: Cidr;
}

export class AddressSpace {
  /** Every subnet held, sorted by base address. */
  private held: Held[] = [];

  constructor(readonly config: AddressPoolConfig = parseAddressPools()) {}

  /** The holder of a subnet overlapping `c`, if any. */
  findOverlap(c: Cidr): Held | undefined {
    return this.held.find((h) => overlaps(h.cidr, c));
  }

  /** Claims a given subnet; refused when it overlaps another network's. */
  reserve(c: Cidr, owner: SubnetOwner): void {
    const clash = this.findOverlap(c);
    if (clash) {
      if (clash.networkId === owner.networkId && clash.cidr.base === c.base && clash.cidr.bits === c.bits) return;
      throw conflict(
        `subnet ${formatCidr(c)} of network ${describe(owner)} overlaps subnet ${formatCidr(clash.cidr)} of network ${describe(clash)}`,
      );
    }
    this.insert({ cidr: c, ...owner });
  }

  /** Carves the first free subnet of the configured size out of the default pools. */
  allocate(owner: SubnetOwner): Cidr {
    const bits = this.config.subnetBits;
    const step = sizeOf(bits);
    for (const pool of this.config.pools) {
      let candidate = pool.base;
      const end = lastOf(pool);
      while (candidate + step - 1 <= end) {
        const c = { base: candidate, bits };
        const clash = this.findOverlap(c);
        if (!clash) {
          this.insert({ cidr: c, ...owner });
          return c;
        }
        // Jump past the clashing subnet, to the next boundary of our size.
        const next = lastOf(clash.cidr) + 1;
        candidate = Math.ceil(next / step) * step;
      }
    }
    const pools = this.config.pools.map(formatCidr).join(', ');
    throw exhausted(`no free /${bits} subnet left in the default address pools (${pools}) for network ${describe(owner)}`);
  }

  /** Frees every subnet a network holds. */
  release(networkId: string): void {
    this.held = this.held.filter((h) => h.networkId !== networkId);
  }

  subnetsOf(networkId: string): Cidr[] {
    return this.held.filter((h) => h.networkId === networkId).map((h) => h.cidr);
  }

  private insert(h: Held): void {
    let i = this.held.findIndex((x) => x.cidr.base > h.cidr.base);
    if (i < 0) i = this.held.length;
    this.held.splice(i, 0, h);
  }
}

export function describe(o: SubnetOwner): string {
  return o.networkName && o.networkName !== o.networkId ? `"${o.networkName}" (${o.networkId})` : o.networkId;
}
