// Text <-> bytes for the addresses netlink carries: IPv4, IPv6, prefixes and MACs.
import { isIPv4, isIPv6 } from 'node:net';
import { AF_INET, AF_INET6 } from './constants.js';

export interface Prefix {
  family: number;
  address: string;
  bytes: Buffer;
  prefixLen: number;
}

export function ipFamily(ip: string): number {
  if (isIPv4(ip)) return AF_INET;
  if (isIPv6(ip)) return AF_INET6;
  throw new TypeError(`"${ip}" is not an IPv4 or IPv6 address`);
}

export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) throw new TypeError(`"${ip}" is not an IPv4 or IPv6 address`);
  let text = ip;
  const out = Buffer.alloc(16);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = ipToBytes(v4[1]);
    text = text.slice(0, -v4[1].length) + `${b.readUInt16BE(0).toString(16)}:${b.readUInt16BE(2).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function bytesToIp(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new TypeError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i));
  // RFC 5952: the longest run (two or more) of zero groups becomes "::".
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Parses "10.0.0.1/24" (or a bare address, as a host prefix). */
export function parsePrefix(text: string): Prefix {
  const [address, len, extra] = text.split('/');
  if (extra !== undefined) throw new TypeError(`"${text}" is not an address/prefix-length`);
  const family = ipFamily(address);
  const max = family === AF_INET ? 32 : 128;
  const prefixLen = len === undefined ? max : Number(len);
  if (!/^\d+$/.test(len ?? String(max)) || prefixLen > max) {
    throw new TypeError(`"${text}": the prefix length must be 0..${max}`);
  }
  return { family, address, bytes: ipToBytes(address), prefixLen };
}

export function macToBytes(mac: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) {
    throw new TypeError(`"${mac}" is not a MAC address like 02:42:ac:11:00:02`);
  }
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
}

export function bytesToMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}
