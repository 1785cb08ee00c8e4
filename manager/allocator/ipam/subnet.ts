// One subnet of a network (one IPAM config): the addresses in use, kept in a bitmap over the whole
// subnet. The network and broadcast addresses and the gateway are marked at creation so they are
// never handed out; an ip-range narrows where dynamic addresses come from. Allocation is serial,
// like Docker's swarm IPAM: it continues after the last address given instead of reusing the one
// just freed, so a stale neighbour or DNS entry for a dead task does not reach its successor.
import { exhausted, invalid, conflict } from '../errors.js';
import { Bitmap } from './bitmap.js';
import { contains, formatCidr, formatIp, lastOf, parseCidr, parseIp, sizeOf, within, type Cidr } from './ipv4.js';

/** The smallest and largest subnets a network may have: /8 keeps a bitmap at 2 MB; /30 has two hosts. */
export const MIN_SUBNET_BITS = 8;
export const MAX_SUBNET_BITS = 30;

export interface SubnetConfig {
  subnet: Cidr;
  gateway: number;
  /** Where dynamic addresses come from; the whole subnet when no ip-range was given. */
  range: Cidr;
  rangeGiven: boolean;
}

/**
 * Checks and completes one user-given (or pool-chosen) config: the gateway defaults to the first
 * usable address, the ip-range must lie inside the subnet, the gateway inside the subnet.
 */
export function resolveSubnetConfig(subnetText: string, gatewayText = '', rangeText = ''): SubnetConfig {
  const subnet = parseCidr(subnetText, 'subnet');
  if (subnet.bits < MIN_SUBNET_BITS || subnet.bits > MAX_SUBNET_BITS) {
    throw invalid(`invalid subnet ${formatCidr(subnet)}: the prefix length must be between /${MIN_SUBNET_BITS} and /${MAX_SUBNET_BITS}`);
  }
  let gateway = subnet.base + 1;
  if (gatewayText) {
    gateway = parseIp(gatewayText, 'gateway');
    if (!contains(subnet, gateway)) throw invalid(`invalid gateway ${gatewayText}: it is not inside subnet ${formatCidr(subnet)}`);
    if (gateway === subnet.base || gateway === lastOf(subnet)) {
      throw invalid(`invalid gateway ${gatewayText}: it is the network or broadcast address of subnet ${formatCidr(subnet)}`);
    }
  }
  let range = subnet;
  if (rangeText) {
    range = parseCidr(rangeText, 'ip-range');
    if (!within(range, subnet)) throw invalid(`invalid ip-range ${rangeText}: it is not inside subnet ${formatCidr(subnet)}`);
  }
  return { subnet, gateway, range, rangeGiven: rangeText !== '' };
}

export class SubnetAddresses {
  private readonly used: Bitmap;
  /** Bit indexes (offsets from the subnet base) where dynamic allocation may look. */
  private readonly lo: number;
  private readonly hi: number;
  private cursor: number;

  constructor(readonly config: SubnetConfig) {
    const { subnet, range, gateway } = config;
    this.used = new Bitmap(sizeOf(subnet.bits));
    this.used.set(0);
    this.used.set(sizeOf(subnet.bits) - 1);
    this.used.set(gateway - subnet.base);
    this.lo = range.base - subnet.base;
    this.hi = lastOf(range) - subnet.base;
    this.cursor = this.lo;
  }

  get subnetText(): string {
    return formatCidr(this.config.subnet);
  }

  /** "10.0.1.5/24": the form tasks and VIPs record. */
  withPrefix(ip: number): string {
    return `${formatIp(ip)}/${this.config.subnet.bits}`;
  }

  contains(ip: number): boolean {
    return contains(this.config.subnet, ip);
  }

  isUsed(ip: number): boolean {
    return this.used.has(ip - this.config.subnet.base);
  }

  /** The next free address in the ip-range after the last one handed out. */
  allocate(): number {
    let i = this.used.findClear(this.cursor, this.hi);
    if (i < 0) i = this.used.findClear(this.lo, this.cursor - 1);
    if (i < 0) {
      const where = this.config.rangeGiven ? `ip-range ${formatCidr(this.config.range)} of subnet ${this.subnetText}` : `subnet ${this.subnetText}`;
      throw exhausted(`no free address left in ${where}`);
    }
    this.used.set(i);
    this.cursor = i + 1 > this.hi ? this.lo : i + 1;
    return this.config.subnet.base + i;
  }

  /** Claims one given address (a static address, or one found in the store on rebuild). */
  reserve(ip: number): void {
    const { subnet, gateway } = this.config;
    if (!contains(subnet, ip)) throw invalid(`address ${formatIp(ip)} is not inside subnet ${this.subnetText}`);
    const i = ip - subnet.base;
    if (i === 0 || i === sizeOf(subnet.bits) - 1) throw invalid(`address ${formatIp(ip)} is the network or broadcast address of subnet ${this.subnetText}`);
    if (ip === gateway) throw invalid(`address ${formatIp(ip)} is the gateway of subnet ${this.subnetText}`);
    if (!this.used.set(i)) throw conflict(`address ${formatIp(ip)} is already in use in subnet ${this.subnetText}`);
  }

  /** Frees an address; the network, broadcast and gateway addresses stay reserved. */
  release(ip: number): boolean {
    const { subnet, gateway } = this.config;
    const i = ip - subnet.base;
    if (!contains(subnet, ip) || i === 0 || i === sizeOf(subnet.bits) - 1 || ip === gateway) return false;
    return this.used.clear(i);
  }

  /** Addresses handed out or reserved, beyond the network, broadcast and gateway. */
  get inUse(): number {
    return this.used.setCount - 3;
  }
}
