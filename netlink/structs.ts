// The fixed headers that follow nlmsghdr in each rtnetlink family, before the attributes.
import { readS32, readU16, readU32, writeS32, writeU16, writeU32 } from './message.js';

/** struct ifinfomsg: 16 bytes. */
export interface IfInfoMsg {
  family: number;
  type: number;
  index: number;
  flags: number;
  change: number;
}
export const IFINFOMSG_LEN = 16;

export function encodeIfInfoMsg(m: Partial<IfInfoMsg>): Buffer {
  const b = Buffer.alloc(IFINFOMSG_LEN);
  b[0] = m.family ?? 0;
  writeU16(b, 2, m.type ?? 0);
  writeS32(b, 4, m.index ?? 0);
  writeU32(b, 8, m.flags ?? 0);
  writeU32(b, 12, m.change ?? 0);
  return b;
}
export function decodeIfInfoMsg(b: Buffer): IfInfoMsg {
  need(b, IFINFOMSG_LEN, 'ifinfomsg');
  return { family: b[0], type: readU16(b, 2), index: readS32(b, 4), flags: readU32(b, 8), change: readU32(b, 12) };
}

/** struct ifaddrmsg: 8 bytes. */
export interface IfAddrMsg {
  family: number;
  prefixLen: number;
  flags: number;
  scope: number;
  index: number;
}
export const IFADDRMSG_LEN = 8;

export function encodeIfAddrMsg(m: Partial<IfAddrMsg>): Buffer {
  const b = Buffer.alloc(IFADDRMSG_LEN);
  b[0] = m.family ?? 0;
  b[1] = m.prefixLen ?? 0;
  b[2] = m.flags ?? 0;
  b[3] = m.scope ?? 0;
  writeU32(b, 4, m.index ?? 0);
  return b;
}
export function decodeIfAddrMsg(b: Buffer): IfAddrMsg {
  need(b, IFADDRMSG_LEN, 'ifaddrmsg');
  return { family: b[0], prefixLen: b[1], flags: b[2], scope: b[3], index: readU32(b, 4) };
}

/** struct rtmsg: 12 bytes. */
export interface RtMsg {
  family: number;
  dstLen: number;
  srcLen: number;
  tos: number;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  flags: number;
}
export const RTMSG_LEN = 12;

export function encodeRtMsg(m: Partial<RtMsg>): Buffer {
  const b = Buffer.alloc(RTMSG_LEN);
  b[0] = m.family ?? 0;
  b[1] = m.dstLen ?? 0;
  b[2] = m.srcLen ?? 0;
  b[3] = m.tos ?? 0;
  b[4] = m.table ?? 0;
  b[5] = m.protocol ?? 0;
  b[6] = m.scope ?? 0;
  b[7] = m.type ?? 0;
  writeU32(b, 8, m.flags ?? 0);
  return b;
}
export function decodeRtMsg(b: Buffer): RtMsg {
  need(b, RTMSG_LEN, 'rtmsg');
  return {
    family: b[0], dstLen: b[1], srcLen: b[2], tos: b[3], table: b[4],
    protocol: b[5], scope: b[6], type: b[7], flags: readU32(b, 8),
  };
}

/** struct ndmsg: 12 bytes. */
export interface NdMsg {
  family: number;
  index: number;
  state: number;
  flags: number;
  type: number;
}
export const NDMSG_LEN = 12;

export function encodeNdMsg(m: Partial<NdMsg>): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b[0] = m.family ?? 0;
  writeS32(b, 4, m.index ?? 0);
  writeU16(b, 8, m.state ?? 0);
  b[10] = m.flags ?? 0;
  b[11] = m.type ?? 0;
  return b;
}
export function decodeNdMsg(b: Buffer): NdMsg {
  need(b, NDMSG_LEN, 'ndmsg');
  return { family: b[0], index: readS32(b, 4), state: readU16(b, 8), flags: b[10], type: b[11] };
}

function need(b: Buffer, n: number, what: string): void {
  if (b.length < n) throw new Error(`malformed ${what}: ${b.length} bytes, need ${n}`);
}
