// The netlink wire format: a 16-byte header (struct nlmsghdr), a fixed family header, then
// type-length-value attributes (struct nlattr), each padded to 4 bytes. Integers are in host
// byte order except where the kernel says "be16/be32" (ports, VNIs in some places).
import { endianness } from 'node:os';
import { NLA_F_NESTED, NLA_TYPE_MASK } from './constants.js';

const LE = endianness() === 'LE';
export const NLMSG_HDRLEN = 16;
export const NLA_HDRLEN = 4;

/** Rounds up to the 4-byte boundary every netlink header and attribute starts on. */
export function align4(n: number): number {
  return (n + 3) & ~3;
}

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header: family header plus attributes. */
  payload: Buffer;
}

export function encodeMessage(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(align4(NLMSG_HDRLEN + payload.length));
  writeU32(out, 0, NLMSG_HDRLEN + payload.length);
  writeU16(out, 4, type);
  writeU16(out, 6, flags);
  writeU32(out, 8, seq);
  writeU32(out, 12, 0); // the kernel fills in our port id
  payload.copy(out, NLMSG_HDRLEN);
  return out;
}

/** Splits one received datagram into its messages; throws on a length that lies. */
export function decodeMessages(datagram: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  let offset = 0;
  while (offset + NLMSG_HDRLEN <= datagram.length) {
    const length = readU32(datagram, offset);
    if (length < NLMSG_HDRLEN || offset + length > datagram.length) {
      throw new Error(`malformed netlink message: length ${length} at offset ${offset} of ${datagram.length}`);
    }
    out.push({
      type: readU16(datagram, offset + 4),
      flags: readU16(datagram, offset + 6),
      seq: readU32(datagram, offset + 8),
      pid: readU32(datagram, offset + 12),
      payload: datagram.subarray(offset + NLMSG_HDRLEN, offset + length),
    });
    offset += align4(length);
  }
  return out;
}

/** One attribute to encode: raw bytes, or a nested list of attributes. */
export interface Attr {
  type: number;
  value: Buffer | Attr[];
  /** Set NLA_F_NESTED on a nested attribute (most rtnetlink parsers neither need nor mind it). */
  nestedFlag?: boolean;
}

export function encodeAttrs(attrs: readonly Attr[]): Buffer {
  const parts: Buffer[] = [];
  for (const attr of attrs) {
    const nested = Array.isArray(attr.value);
    const value = Array.isArray(attr.value) ? encodeAttrs(attr.value) : attr.value;
    const header = Buffer.alloc(NLA_HDRLEN);
    writeU16(header, 0, NLA_HDRLEN + value.length);
    writeU16(header, 2, attr.type | (nested && attr.nestedFlag ? NLA_F_NESTED : 0));
    parts.push(header, value, Buffer.alloc(align4(value.length) - value.length));
  }
  return Buffer.concat(parts);
}

/** Attribute constructors for the value types rtnetlink uses. */
export const attr = {
  bytes: (type: number, value: Buffer): Attr => ({ type, value }),
  u8: (type: number, value: number): Attr => ({ type, value: Buffer.from([value & 0xff]) }),
  u16: (type: number, value: number): Attr => {
    const b = Buffer.alloc(2);
    writeU16(b, 0, value);
    return { type, value: b };
  },
  u32: (type: number, value: number): Attr => {
    const b = Buffer.alloc(4);
    writeU32(b, 0, value);
    return { type, value: b };
  },
  /** Network byte order, as for IFLA_VXLAN_PORT. */
  be16: (type: number, value: number): Attr => {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(value);
    return { type, value: b };
  },
  be32: (type: number, value: number): Attr => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(value);
    return { type, value: b };
  },
  /** A NUL-terminated string, as the kernel expects for names. */
  string: (type: number, value: string): Attr => ({ type, value: Buffer.concat([Buffer.from(value, 'utf8'), Buffer.alloc(1)]) }),
  nested: (type: number, children: Attr[], nestedFlag = false): Attr => ({ type, value: children, nestedFlag }),
};

/** Decoded attributes of one level; nested ones are decoded on demand with nested(). */
export class Attrs {
  private readonly byType = new Map<number, Buffer>();

  constructor(readonly list: ReadonlyArray<{ type: number; value: Buffer }>) {
    for (const a of list) this.byType.set(a.type, a.value);
  }

  static decode(buf: Buffer): Attrs {
    const list: { type: number; value: Buffer }[] = [];
    let offset = 0;
    while (offset + NLA_HDRLEN <= buf.length) {
      const length = readU16(buf, offset);
      if (length < NLA_HDRLEN || offset + length > buf.length) {
        throw new Error(`malformed netlink attribute: length ${length} at offset ${offset} of ${buf.length}`);
      }
      list.push({ type: readU16(buf, offset + 2) & NLA_TYPE_MASK, value: buf.subarray(offset + NLA_HDRLEN, offset + length) });
      offset += align4(length);
    }
    return new Attrs(list);
  }

  has(type: number): boolean {
    return this.byType.has(type);
  }
  get(type: number): Buffer | undefined {
    return this.byType.get(type);
  }
  u8(type: number): number | undefined {
    const b = this.byType.get(type);
    return b && b.length >= 1 ? b[0] : undefined;
  }
  u16(type: number): number | undefined {
    const b = this.byType.get(type);
    return b && b.length >= 2 ? readU16(b, 0) : undefined;
  }
  u32(type: number): number | undefined {
    const b = this.byType.get(type);
    return b && b.length >= 4 ? readU32(b, 0) : undefined;
  }
  s32(type: number): number | undefined {
    const b = this.byType.get(type);
    return b && b.length >= 4 ? readU32(b, 0) | 0 : undefined;
  }
  be16(type: number): number | undefined {
    const b = this.byType.get(type);
    return b && b.length >= 2 ? b.readUInt16BE(0) : undefined;
  }
  string(type: number): string | undefined {
    const b = this.byType.get(type);
    if (!b) return undefined;
    const nul = b.indexOf(0);
    return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
  }
  nested(type: number): Attrs | undefined {
    const b = this.byType.get(type);
    return b ? Attrs.decode(b) : undefined;
  }
}

export function readU16(b: Buffer, offset: number): number {
  return LE ? b.readUInt16LE(offset) : b.readUInt16BE(offset);
}
export function readU32(b: Buffer, offset: number): number {
  return LE ? b.readUInt32LE(offset) : b.readUInt32BE(offset);
}
export function readS32(b: Buffer, offset: number): number {
  return LE ? b.readInt32LE(offset) : b.readInt32BE(offset);
}
export function writeU16(b: Buffer, offset: number, v: number): void {
  if (LE) b.writeUInt16LE(v, offset);
  else b.writeUInt16BE(v, offset);
}
export function writeU32(b: Buffer, offset: number, v: number): void {
  if (LE) b.writeUInt32LE(v >>> 0, offset);
  else b.writeUInt32BE(v >>> 0, offset);
}
export function writeS32(b: Buffer, offset: number, v: number): void {
  if (LE) b.writeInt32LE(v, offset);
  else b.writeInt32BE(v, offset);
}
