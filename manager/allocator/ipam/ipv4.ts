// IPv4 addresses as unsigned 32-bit numbers, and CIDR prefixes over them. Numbers make subnet
// arithmetic (contains, overlaps, the n-th address) exact and cheap.
import { formatIp, tryParseIp } from '../../../util/ipv4.js';
import { invalid } from '../errors.js';

export interface Cidr {
  /** The network address (host bits zero). */
  base: number;
  /** Prefix length, 0..32. */
  bits: number;
}

export { tryParseIp, formatIp };

export function parseIp(s: string, what = 'address'): number {
  const n = tryParseIp(s);
  if (n === undefined) throw invalid(`invalid ${what} ${JSON.stringify(s)}: expected an IPv4 address like 10.0.0.1`);
  return n;
}


/** The number of addresses in a prefix of `bits` length. */
export function sizeOf(bits: number): number {
  return 2 ** (32 - bits);
}

export function lastOf(c: Cidr): number {
  return c.base + sizeOf(c.bits) - 1;
}

/**
 * Parses "10.1.0.0/16". Host bits must be zero, as Docker requires: "10.1.2.3/16" is refused
 * with the prefix it probably meant, rather than silently widened.
 */
export function parseCidr(s: string, what = 'subnet'): Cidr {
  const slash = s.indexOf('/');
  const ipPart = slash < 0 ? s : s.slice(0, slash);
  const bitsPart = slash < 0 ? '' : s.slice(slash + 1);
  const ip = tryParseIp(ipPart);
  const bits = /^\d{1,2}$/.test(bitsPart) ? Number(bitsPart) : NaN;
  if (ip === undefined || !(bits >= 0 && bits <= 32)) {
    if (s.includes(':')) throw invalid(`invalid ${what} ${JSON.stringify(s)}: IPv6 is not supported, use an IPv4 prefix like 10.1.0.0/16`);
    throw invalid(`invalid ${what} ${JSON.stringify(s)}: expected an IPv4 prefix like 10.1.0.0/16`);
  }
  const base = ip - (ip % sizeOf(bits));
  if (base !== ip) throw invalid(`invalid ${what} ${JSON.stringify(s)}: host bits are set, did you mean ${formatCidr({ base, bits })}?`);
  return { base, bits };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.bits}`;
}

export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip <= lastOf(c);
}

/** Whether `inner` lies entirely inside `outer`. */
export function within(inner: Cidr, outer: Cidr): boolean {
  return inner.base >= outer.base && lastOf(inner) <= lastOf(outer);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base <= lastOf(b) && b.base <= lastOf(a);
}
