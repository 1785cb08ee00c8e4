// Routes: RTM_NEWROUTE / RTM_DELROUTE / RTM_GETROUTE.
import { bytesToIp, ipFamily, ipToBytes, parsePrefix } from './addr.js';
import {
  AF_INET, AF_INET6, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RTA_DST, RTA_GATEWAY, RTA_OIF,
  RTA_PREFSRC, RTA_PRIORITY, RTA_TABLE, RTN_UNICAST, RTPROT_BOOT,
} from './constants.js';
import { attr, Attrs, encodeAttrs, type Attr, type NetlinkMessage } from './message.js';
import { decodeRtMsg, encodeRtMsg, RTMSG_LEN } from './structs.js';

const RT_SCOPE_NOWHERE = 255;
const RTM_F_CLONED = 0x200;

export interface RouteSpec {
  /** "10.1.0.0/16", a bare address (host route) or "default". */
  dst: string;
  gateway?: string;
  /** Output interface index (the caller resolves names). */
  oif?: number;
  /** Routing table; the main table (254) unless given. */
  table?: number;
  metric?: number;
  /** Preferred source address. */
  src?: string;
  /** IPv6 "default" needs saying so when there is no gateway to tell the family by. */
  family?: number;
}

export interface Route {
  family: number;
  /** "10.1.0.0/16" or "default". */
  dst: string;
  gateway: string | undefined;
  /** Output interface index. */
  oif: number | undefined;
  table: number;
  protocol: number;
  scope: number;
  type: number;
  metric: number | undefined;
  src: string | undefined;
}

function routeFamily(spec: RouteSpec): number {
  if (spec.dst !== 'default') return parsePrefix(spec.dst).family;
  if (spec.gateway !== undefined) return ipFamily(spec.gateway);
  return spec.family ?? AF_INET;
}

/** RTM_NEWROUTE payload (create) or RTM_DELROUTE payload (forDelete: match any scope/protocol). */
export function encodeRoute(spec: RouteSpec, forDelete = false): Buffer {
  const family = routeFamily(spec);
  const attrs: Attr[] = [];
  let dstLen = 0;
  if (spec.dst !== 'default') {
    const p = parsePrefix(spec.dst);
    dstLen = p.prefixLen;
    attrs.push(attr.bytes(RTA_DST, p.bytes));
  }
  if (spec.gateway !== undefined) {
    if (ipFamily(spec.gateway) !== family) throw new TypeError(`gateway ${spec.gateway} is not in the family of ${spec.dst}`);
    attrs.push(attr.bytes(RTA_GATEWAY, ipToBytes(spec.gateway)));
  }
  if (spec.oif !== undefined) attrs.push(attr.u32(RTA_OIF, spec.oif));
  if (spec.metric !== undefined) attrs.push(attr.u32(RTA_PRIORITY, spec.metric));
  if (spec.src !== undefined) attrs.push(attr.bytes(RTA_PREFSRC, ipToBytes(spec.src)));
  const table = spec.table ?? RT_TABLE_MAIN;
  attrs.push(attr.u32(RTA_TABLE, table));
  // Like iproute2: a route with no gateway is on-link (scope link).
  const scope = forDelete ? RT_SCOPE_NOWHERE : spec.gateway === undefined && family === AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  return Buffer.concat([
    encodeRtMsg({
      family, dstLen, table: table < 256 ? table : 0, protocol: forDelete ? 0 : RTPROT_BOOT, scope,
      type: forDelete ? 0 : RTN_UNICAST,
    }),
    encodeAttrs(attrs),
  ]);
}

export function encodeRouteDump(family: number): Buffer {
  return encodeRtMsg({ family });
}

/** undefined for cached clones, which are not routes anyone configured. */
export function decodeRoute(msg: NetlinkMessage): Route | undefined {
  const head = decodeRtMsg(msg.payload);
  if (head.flags & RTM_F_CLONED) return undefined;
  const attrs = Attrs.decode(msg.payload.subarray(RTMSG_LEN));
  const dst = attrs.get(RTA_DST);
  const gw = attrs.get(RTA_GATEWAY);
  const src = attrs.get(RTA_PREFSRC);
  return {
    family: head.family,
    dst: dst ? `${bytesToIp(dst)}/${head.dstLen}` : head.dstLen === 0 ? 'default' : `${head.family === AF_INET6 ? '::' : '0.0.0.0'}/${head.dstLen}`,
    gateway: gw ? bytesToIp(gw) : undefined,
    oif: attrs.u32(RTA_OIF),
    table: attrs.u32(RTA_TABLE) ?? head.table,
    protocol: head.protocol,
    scope: head.scope,
    type: head.type,
    metric: attrs.u32(RTA_PRIORITY),
    src: src ? bytesToIp(src) : undefined,
  };
}
