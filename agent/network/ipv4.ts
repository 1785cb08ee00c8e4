// IPv4 addresses as unsigned 32-bit numbers: just what the drivers need to find a subnet, pick a
// free address in the gateway bridge and check that two prefixes overlap. (The allocator has the
// same arithmetic in manager/allocator/ipam/ipv4.ts; the parsing itself is util/ipv4.ts.)

import { formatIp, tryParseIp } from '../../util/ipv4.js';

export interface Prefix {
  /** The network address (host bits zero). */
  base: number;
  bits: number;
}

/** Dotted quad → number; undefined when `text` is not one (util/ipv4.ts, shared with the allocator and the lab). */
export const parseIp = tryParseIp;
export { formatIp };

/** "10.0.1.5/24" → the address and the prefix it lies in; undefined when malformed. */
export function parseCidr(text: string): { ip: number; prefix: Prefix } | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(text);
  const ip = m ? parseIp(m[1]!) : undefined;
  const bits = m ? Number(m[2]) : NaN;
  if (ip === undefined || !(bits >= 0 && bits <= 32)) return undefined;
  const size = 2 ** (32 - bits);
  return { ip, prefix: { base: ip - (ip % size), bits } };
}

export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.base)}/${p.bits}`;
}

export function lastOf(p: Prefix): number {
  return p.base + 2 ** (32 - p.bits) - 1;
}

export function contains(p: Prefix, ip: number): boolean {
  return ip >= p.base && ip <= lastOf(p);
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  return a.base <= lastOf(b) && b.base <= lastOf(a);
}

/** "10.0.1.5/24" → "10.0.1.5"; a bare address stays as it is. */
export function stripPrefix(cidr: string): string {
  const slash = cidr.indexOf('/');
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

/** Docker's MAC for an IPv4 address (02:42 and the four address bytes), as the allocator makes it. */
export function macFromIp(ip: number): string {
  const bytes = [0x02, 0x42, ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
