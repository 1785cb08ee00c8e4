// Links (network interfaces): RTM_NEWLINK / RTM_DELLINK / RTM_GETLINK messages and their decoding.
import { bytesToIp, bytesToMac, ipFamily, ipToBytes, macToBytes } from './addr.js';
import {
  AF_INET, AF_UNSPEC, IFF_LOWER_UP, IFF_UP, IFLA_ADDRESS, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND,
  IFLA_INFO_SLAVE_KIND, IFLA_LINK, IFLA_LINK_NETNSID, IFLA_LINKINFO, IFLA_MACVLAN_MODE, IFLA_MASTER, IFLA_MTU,
  IFLA_NET_NS_FD, IFLA_NET_NS_PID, IFLA_OPERSTATE, IFLA_VLAN_ID, IFLA_VXLAN_GROUP, IFLA_VXLAN_GROUP6,
  IFLA_VXLAN_ID, IFLA_VXLAN_LEARNING, IFLA_VXLAN_LINK, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LOCAL6, IFLA_VXLAN_PORT,
  IFLA_VXLAN_TTL, MACVLAN_MODE_BRIDGE, MACVLAN_MODE_PASSTHRU, MACVLAN_MODE_PRIVATE, MACVLAN_MODE_VEPA,
} from './constants.js';
import type { NetnsRef } from './netns.js';
import { attr, Attrs, encodeAttrs, type Attr, type NetlinkMessage } from './message.js';
import { decodeIfInfoMsg, encodeIfInfoMsg } from './structs.js';

/** A link by name ("veth0") or by interface index (7). */
export type LinkRef = string | number;
/** Where a namespace-moving attribute points: an open namespace fd, or a process. */
export type NetnsTarget = { fd: number } | { pid: number };

export type MacvlanMode = 'private' | 'vepa' | 'bridge' | 'passthru';
const MACVLAN_MODES: Record<MacvlanMode, number> = {
  private: MACVLAN_MODE_PRIVATE, vepa: MACVLAN_MODE_VEPA, bridge: MACVLAN_MODE_BRIDGE, passthru: MACVLAN_MODE_PASSTHRU,
};

export const VXLAN_PORT = 4789;
const IFNAMSIZ = 16;

interface CommonLinkSpec {
  name: string;
  mtu?: number;
  mac?: string;
  /** Bring the link up as it is created. */
  up?: boolean;
  /** Enslave to this bridge as it is created. */
  master?: LinkRef;
}

export interface VethSpec extends CommonLinkSpec {
  kind: 'veth';
  peer: { name: string; mtu?: number; mac?: string; /** Create the peer end directly in this namespace. */ netns?: NetnsRef };
}
export interface BridgeSpec extends CommonLinkSpec {
  kind: 'bridge';
}
export interface VxlanSpec extends CommonLinkSpec {
  kind: 'vxlan';
  vni: number;
  local?: string;
  /** A single remote VTEP; overlays leave it out and program FDB entries instead. */
  remote?: string;
  /** UDP destination port; 4789 (IANA) unless given, not the kernel's legacy 8472. */
  port?: number;
  /** MAC learning from received packets; off unless asked for, since peers are programmed. */
  learning?: boolean;
  /** The underlay device. */
  dev?: LinkRef;
  ttl?: number;
}
export interface MacvlanSpec extends CommonLinkSpec {
  kind: 'macvlan';
  parent: LinkRef;
  mode?: MacvlanMode;
}
export interface VlanSpec extends CommonLinkSpec {
  kind: 'vlan';
  parent: LinkRef;
  id: number;
}
export type LinkSpec = VethSpec | BridgeSpec | VxlanSpec | MacvlanSpec | VlanSpec;

export interface Link {
  index: number;
  name: string;
  /** "veth", "bridge", "vxlan", ...; undefined for plain devices such as lo. */
  kind: string | undefined;
  /** IFF_* flags. */
  flags: number;
  /** Administratively up (IFF_UP). */
  up: boolean;
  /** Carrier present (IFF_LOWER_UP). */
  lowerUp: boolean;
  operState: string;
  mtu: number | undefined;
  mac: string | undefined;
  /** Index of the bridge this link is enslaved to. */
  master: number | undefined;
  /** Index of the link this one sits on (veth peer, macvlan/vlan parent), possibly in another namespace. */
  parent: number | undefined;
  /** Set when `parent` lives in another namespace (the kernel's id for it). */
  linkNetnsId: number | undefined;
  /** The kind of the master's port ("bridge" for a bridge port). */
  slaveKind: string | undefined;
  vxlan?: { vni: number; port: number | undefined; learning: boolean | undefined; local: string | undefined; remote: string | undefined; dev: number | undefined };
  macvlan?: { mode: MacvlanMode | undefined };
  vlan?: { id: number | undefined };
}

/** Changes applied by one RTM_NEWLINK (modify) request. */
export interface LinkChanges {
  up?: boolean;
  mtu?: number;
  mac?: string;
  /** A bridge to enslave to, or null to release from its master. */
  master?: number | null;
  name?: string;
  netns?: NetnsTarget;
}

const OPER_STATES = ['unknown', 'notpresent', 'down', 'lowerlayerdown', 'testing', 'dormant', 'up'];

export function validateLinkName(name: string): void {
  if (name.length === 0 || Buffer.byteLength(name) >= IFNAMSIZ || /[\s/:]/.test(name) || name === '.' || name === '..') {
    throw new TypeError(`"${name}" is not a valid link name (1-15 characters, no spaces, "/" or ":")`);
  }
}

export function describeLinkRef(ref: LinkRef): string {
  return typeof ref === 'number' ? `link #${ref}` : `link ${ref}`;
}

/** The request's ifinfomsg + IFLA_IFNAME that names an existing link. */
export function linkSelector(ref: LinkRef): { index: number; attrs: Attr[] } {
  if (typeof ref === 'number') return { index: ref, attrs: [] };
  validateLinkName(ref);
  return { index: 0, attrs: [attr.string(IFLA_IFNAME, ref)] };
}

function netnsAttr(target: NetnsTarget): Attr {
  return 'fd' in target ? attr.u32(IFLA_NET_NS_FD, target.fd) : attr.u32(IFLA_NET_NS_PID, target.pid);
}

function commonAttrs(spec: { name: string; mtu?: number; mac?: string }): Attr[] {
  validateLinkName(spec.name);
  const out = [attr.string(IFLA_IFNAME, spec.name)];
  if (spec.mtu !== undefined) {
    if (!Number.isInteger(spec.mtu) || spec.mtu < 68 || spec.mtu > 65535) throw new TypeError(`MTU ${spec.mtu} of ${spec.name} is out of range (68-65535)`);
    out.push(attr.u32(IFLA_MTU, spec.mtu));
  }
  if (spec.mac !== undefined) out.push(attr.bytes(IFLA_ADDRESS, macToBytes(spec.mac)));
  return out;
}

/** Link indexes the caller resolved from names, and namespace targets it opened. */
export interface ResolvedLinkRefs {
  master?: number;
  /** macvlan/vlan parent, vxlan underlay device. */
  lower?: number;
  /** Create the link itself in another namespace. */
  netns?: NetnsTarget;
}

/** The RTM_NEWLINK payload that creates `spec` (sent with NLM_F_CREATE | NLM_F_EXCL). */
export function encodeCreateLink(spec: LinkSpec, refs: ResolvedLinkRefs): Buffer {
  const attrs = commonAttrs(spec);
  if (refs.master !== undefined) attrs.push(attr.u32(IFLA_MASTER, refs.master));
  if (refs.netns) attrs.push(netnsAttr(refs.netns));
  const data: Attr[] = [];
  switch (spec.kind) {
    case 'bridge':
      break;
    case 'veth': {
      const peerAttrs = commonAttrs(spec.peer);
      if (spec.peer.netns !== undefined) {
        // Namespace names must be opened (withNetns) before encoding: the kernel wants an fd.
        if (typeof spec.peer.netns === 'string') throw new TypeError(`veth peer ${spec.peer.name}: open netns ${spec.peer.netns} first`);
        peerAttrs.push(netnsAttr(spec.peer.netns));
      }
      // VETH_INFO_PEER holds a whole ifinfomsg followed by the peer's own attributes.
      data.push(attr.bytes(1 /* VETH_INFO_PEER */, Buffer.concat([encodeIfInfoMsg({}), encodeAttrs(peerAttrs)])));
      break;
    }
    case 'vxlan': {
      if (!Number.isInteger(spec.vni) || spec.vni < 0 || spec.vni > 0xffffff) throw new TypeError(`VNI ${spec.vni} of vxlan ${spec.name} is out of range (0-16777215)`);
      const port = spec.port ?? VXLAN_PORT;
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`UDP port ${port} of vxlan ${spec.name} is out of range (1-65535)`);
      data.push(attr.u32(IFLA_VXLAN_ID, spec.vni), attr.be16(IFLA_VXLAN_PORT, port), attr.u8(IFLA_VXLAN_LEARNING, spec.learning ? 1 : 0));
      if (spec.local !== undefined) data.push(attr.bytes(ipFamily(spec.local) === AF_INET ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, ipToBytes(spec.local)));
      if (spec.remote !== undefined) data.push(attr.bytes(ipFamily(spec.remote) === AF_INET ? IFLA_VXLAN_GROUP : IFLA_VXLAN_GROUP6, ipToBytes(spec.remote)));
      if (refs.lower !== undefined) data.push(attr.u32(IFLA_VXLAN_LINK, refs.lower));
      if (spec.ttl !== undefined) data.push(attr.u8(IFLA_VXLAN_TTL, spec.ttl));
      break;
    }
    case 'macvlan': {
      const mode = spec.mode ?? 'bridge';
      if (!(mode in MACVLAN_MODES)) throw new TypeError(`macvlan mode "${String(mode)}" of ${spec.name} is not one of ${Object.keys(MACVLAN_MODES).join(', ')}`);
      if (refs.lower === undefined) throw new TypeError(`macvlan ${spec.name} needs a parent link`);
      attrs.push(attr.u32(IFLA_LINK, refs.lower));
      data.push(attr.u32(IFLA_MACVLAN_MODE, MACVLAN_MODES[mode]));
      break;
    }
    case 'vlan': {
      if (!Number.isInteger(spec.id) || spec.id < 1 || spec.id > 4094) throw new TypeError(`VLAN id ${spec.id} of ${spec.name} is out of range (1-4094)`);
      if (refs.lower === undefined) throw new TypeError(`vlan ${spec.name} needs a parent link`);
      attrs.push(attr.u32(IFLA_LINK, refs.lower));
      data.push(attr.u16(IFLA_VLAN_ID, spec.id));
      break;
    }
    default:
      throw new TypeError(`unknown link kind "${(spec as { kind: string }).kind}"`);
  }
  const info: Attr[] = [attr.string(IFLA_INFO_KIND, spec.kind)];
  if (data.length > 0) info.push(attr.nested(IFLA_INFO_DATA, data));
  attrs.push(attr.nested(IFLA_LINKINFO, info));
  const flags = spec.up ? IFF_UP : 0;
  return Buffer.concat([encodeIfInfoMsg({ family: AF_UNSPEC, flags, change: spec.up ? IFF_UP : 0 }), encodeAttrs(attrs)]);
}

/** The RTM_NEWLINK payload that modifies an existing link (sent without NLM_F_CREATE). */
export function encodeChangeLink(ref: LinkRef, changes: LinkChanges): Buffer {
  // A rename must address the link by index: IFLA_IFNAME then carries the new name.
  if (changes.name !== undefined && typeof ref !== 'number') throw new TypeError('renaming needs the link index');
  const sel = changes.name !== undefined ? { index: ref as number, attrs: [] } : linkSelector(ref);
  const attrs = [...sel.attrs];
  if (changes.name !== undefined) {
    validateLinkName(changes.name);
    attrs.push(attr.string(IFLA_IFNAME, changes.name));
  }
  if (changes.mtu !== undefined) {
    if (!Number.isInteger(changes.mtu) || changes.mtu < 68 || changes.mtu > 65535) throw new TypeError(`MTU ${changes.mtu} is out of range (68-65535)`);
    attrs.push(attr.u32(IFLA_MTU, changes.mtu));
  }
  if (changes.mac !== undefined) attrs.push(attr.bytes(IFLA_ADDRESS, macToBytes(changes.mac)));
  if (changes.master !== undefined) attrs.push(attr.u32(IFLA_MASTER, changes.master ?? 0));
  if (changes.netns) attrs.push(netnsAttr(changes.netns));
  const change = changes.up === undefined ? 0 : IFF_UP;
  const flags = changes.up ? IFF_UP : 0;
  return Buffer.concat([encodeIfInfoMsg({ family: AF_UNSPEC, index: sel.index, flags, change }), encodeAttrs(attrs)]);
}

/** RTM_GETLINK / RTM_DELLINK payload naming one link. */
export function encodeLinkSelector(ref: LinkRef): Buffer {
  const sel = linkSelector(ref);
  return Buffer.concat([encodeIfInfoMsg({ family: AF_UNSPEC, index: sel.index }), encodeAttrs(sel.attrs)]);
}

export function encodeLinkDump(): Buffer {
  return encodeIfInfoMsg({ family: AF_UNSPEC });
}

export function decodeLink(msg: NetlinkMessage): Link {
  const head = decodeIfInfoMsg(msg.payload);
  const attrs = Attrs.decode(msg.payload.subarray(16));
  const info = attrs.nested(IFLA_LINKINFO);
  const kind = info?.string(IFLA_INFO_KIND);
  const data = info?.nested(IFLA_INFO_DATA);
  const mac = attrs.get(IFLA_ADDRESS);
  const link: Link = {
    index: head.index,
    name: attrs.string(IFLA_IFNAME) ?? '',
    kind,
    flags: head.flags,
    up: (head.flags & IFF_UP) !== 0,
    lowerUp: (head.flags & IFF_LOWER_UP) !== 0,
    operState: OPER_STATES[attrs.u8(IFLA_OPERSTATE) ?? 0] ?? 'unknown',
    mtu: attrs.u32(IFLA_MTU),
    mac: mac && mac.length === 6 ? bytesToMac(mac) : undefined,
    master: attrs.u32(IFLA_MASTER) || undefined,
    parent: attrs.u32(IFLA_LINK) === head.index ? undefined : attrs.u32(IFLA_LINK),
    linkNetnsId: attrs.s32(IFLA_LINK_NETNSID),
    slaveKind: info?.string(IFLA_INFO_SLAVE_KIND),
  };
  if (kind === 'vxlan' && data) {
    const local = data.get(IFLA_VXLAN_LOCAL) ?? data.get(IFLA_VXLAN_LOCAL6);
    const remote = data.get(IFLA_VXLAN_GROUP) ?? data.get(IFLA_VXLAN_GROUP6);
    const learning = data.u8(IFLA_VXLAN_LEARNING);
    link.vxlan = {
      vni: data.u32(IFLA_VXLAN_ID) ?? 0,
      port: data.be16(IFLA_VXLAN_PORT),
      learning: learning === undefined ? undefined : learning !== 0,
      local: local ? bytesToIp(local) : undefined,
      remote: remote ? bytesToIp(remote) : undefined,
      dev: data.u32(IFLA_VXLAN_LINK) || undefined,
    };
  } else if (kind === 'macvlan') {
    const mode = data?.u32(IFLA_MACVLAN_MODE);
    link.macvlan = { mode: (Object.keys(MACVLAN_MODES) as MacvlanMode[]).find((m) => MACVLAN_MODES[m] === mode) };
  } else if (kind === 'vlan') {
    link.vlan = { id: data?.u16(IFLA_VLAN_ID) };
  }
  return link;
}

/** Kernel modules behind each link kind, for the "not supported" message. */
const KIND_MODULES: Record<string, string> = { veth: 'veth', bridge: 'bridge', vxlan: 'vxlan', macvlan: 'macvlan', vlan: '8021q' };

/** Rewords "Operation not supported" on creation into which kernel support is missing. */
export function explainCreateError(kind: string, errno: number, kernelMessage: string | undefined): string | undefined {
  const EOPNOTSUPP = 95;
  if (errno !== EOPNOTSUPP || (kernelMessage !== undefined && !/unknown device type/i.test(kernelMessage))) return undefined;
  if (kind === 'vlan') return 'the kernel has no 802.1Q VLAN support (module 8021q)';
  return `the kernel has no ${kind} link support (module ${KIND_MODULES[kind] ?? kind})`;
}
