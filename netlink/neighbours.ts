// Neighbour (ARP/NDP) entries and bridge FDB entries: RTM_NEWNEIGH / RTM_DELNEIGH / RTM_GETNEIGH.
// An FDB entry is a neighbour message in family AF_BRIDGE keyed by MAC; on a vxlan device with
// NTF_SELF it says which remote VTEP (NDA_DST) owns that MAC.
import { bytesToIp, bytesToMac, ipFamily, ipToBytes, macToBytes } from './addr.js';
import {
  AF_BRIDGE, NDA_DST, NDA_LLADDR, NDA_MASTER, NDA_PORT, NDA_VNI, NTF_SELF, NUD_DELAY, NUD_FAILED,
  NUD_INCOMPLETE, NUD_NOARP, NUD_PERMANENT, NUD_PROBE, NUD_REACHABLE, NUD_STALE,
} from './constants.js';
import { attr, Attrs, encodeAttrs, type Attr, type NetlinkMessage } from './message.js';
import { decodeNdMsg, encodeNdMsg, NDMSG_LEN } from './structs.js';

export interface Neighbour {
  /** Interface index. */
  index: number;
  family: number;
  ip: string;
  mac: string | undefined;
  /** NUD_* bits. */
  state: number;
  /** Names of the state bits: "permanent", "reachable", ... */
  states: string[];
  flags: number;
}

export interface FdbEntry {
  /** Interface index (the vxlan device or bridge port). */
  index: number;
  mac: string;
  /** Remote VTEP for vxlan entries. */
  dst: string | undefined;
  vni: number | undefined;
  port: number | undefined;
  /** Index of the bridge, for entries the bridge (not the device) holds. */
  master: number | undefined;
  state: number;
  states: string[];
  flags: number;
}

export interface FdbSpec {
  mac: string;
  /** Remote VTEP address. */
  dst?: string;
  vni?: number;
  port?: number;
}

const NUD_NAMES: [number, string][] = [
  [NUD_INCOMPLETE, 'incomplete'], [NUD_REACHABLE, 'reachable'], [NUD_STALE, 'stale'], [NUD_DELAY, 'delay'],
  [NUD_PROBE, 'probe'], [NUD_FAILED, 'failed'], [NUD_NOARP, 'noarp'], [NUD_PERMANENT, 'permanent'],
];

export function nudStates(state: number): string[] {
  return NUD_NAMES.filter(([bit]) => state & bit).map(([, name]) => name);
}

/** RTM_NEWNEIGH / RTM_DELNEIGH payload: a permanent IP → MAC entry on interface `index`. */
export function encodeNeighbour(index: number, ip: string, mac: string | undefined, state = NUD_PERMANENT): Buffer {
  const attrs: Attr[] = [attr.bytes(NDA_DST, ipToBytes(ip))];
  if (mac !== undefined) attrs.push(attr.bytes(NDA_LLADDR, macToBytes(mac)));
  return Buffer.concat([encodeNdMsg({ family: ipFamily(ip), index, state }), encodeAttrs(attrs)]);
}

/** RTM_NEWNEIGH / RTM_DELNEIGH payload for a permanent FDB entry held by the device itself. */
export function encodeFdb(index: number, spec: FdbSpec): Buffer {
  const attrs: Attr[] = [attr.bytes(NDA_LLADDR, macToBytes(spec.mac))];
  if (spec.dst !== undefined) attrs.push(attr.bytes(NDA_DST, ipToBytes(spec.dst)));
  if (spec.vni !== undefined) attrs.push(attr.u32(NDA_VNI, spec.vni));
  if (spec.port !== undefined) attrs.push(attr.be16(NDA_PORT, spec.port));
  return Buffer.concat([
    encodeNdMsg({ family: AF_BRIDGE, index, state: NUD_PERMANENT, flags: NTF_SELF }),
    encodeAttrs(attrs),
  ]);
}

export function encodeNeighbourDump(family: number): Buffer {
  return encodeNdMsg({ family });
}

export function decodeNeighbour(msg: NetlinkMessage): Neighbour {
  const head = decodeNdMsg(msg.payload);
  const attrs = Attrs.decode(msg.payload.subarray(NDMSG_LEN));
  const dst = attrs.get(NDA_DST);
  const ll = attrs.get(NDA_LLADDR);
  return {
    index: head.index,
    family: head.family,
    ip: dst ? bytesToIp(dst) : '',
    mac: ll && ll.length === 6 ? bytesToMac(ll) : undefined,
    state: head.state,
    states: nudStates(head.state),
    flags: head.flags,
  };
}

export function decodeFdb(msg: NetlinkMessage): FdbEntry {
  const head = decodeNdMsg(msg.payload);
  const attrs = Attrs.decode(msg.payload.subarray(NDMSG_LEN));
  const dst = attrs.get(NDA_DST);
  const ll = attrs.get(NDA_LLADDR);
  return {
    index: head.index,
    mac: ll ? bytesToMac(ll) : '',
    dst: dst && (dst.length === 4 || dst.length === 16) ? bytesToIp(dst) : undefined,
    vni: attrs.u32(NDA_VNI),
    port: attrs.be16(NDA_PORT),
    master: attrs.u32(NDA_MASTER),
    state: head.state,
    states: nudStates(head.state),
    flags: head.flags,
  };
}
