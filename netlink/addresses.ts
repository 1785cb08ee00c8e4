// Interface addresses: RTM_NEWADDR / RTM_DELADDR / RTM_GETADDR.
import { bytesToIp, parsePrefix } from './addr.js';
import { AF_INET, IFA_ADDRESS, IFA_BROADCAST, IFA_LABEL, IFA_LOCAL, RT_SCOPE_UNIVERSE } from './constants.js';
import { attr, Attrs, encodeAttrs, type NetlinkMessage } from './message.js';
import { decodeIfAddrMsg, encodeIfAddrMsg, IFADDRMSG_LEN } from './structs.js';

export interface Address {
  /** Interface index. */
  index: number;
  family: number;
  /** The interface's own address ("10.0.0.1"). */
  address: string;
  prefixLen: number;
  /** "10.0.0.1/24". */
  cidr: string;
  /** The peer address on point-to-point links, else the same as address. */
  peer: string | undefined;
  broadcast: string | undefined;
  label: string | undefined;
  scope: number;
}

export interface AddressOptions {
  /** IPv4 broadcast address. */
  broadcast?: string;
}

/** RTM_NEWADDR / RTM_DELADDR payload for "10.0.0.1/24" on interface `index`. */
export function encodeAddress(index: number, cidr: string, opts: AddressOptions = {}): Buffer {
  const p = parsePrefix(cidr);
  const attrs = [attr.bytes(IFA_LOCAL, p.bytes), attr.bytes(IFA_ADDRESS, p.bytes)];
  if (opts.broadcast !== undefined) attrs.push(attr.bytes(IFA_BROADCAST, parsePrefix(opts.broadcast).bytes));
  return Buffer.concat([
    encodeIfAddrMsg({ family: p.family, prefixLen: p.prefixLen, scope: RT_SCOPE_UNIVERSE, index }),
    encodeAttrs(attrs),
  ]);
}

export function encodeAddressDump(family: number): Buffer {
  return encodeIfAddrMsg({ family });
}

export function decodeAddress(msg: NetlinkMessage): Address {
  const head = decodeIfAddrMsg(msg.payload);
  const attrs = Attrs.decode(msg.payload.subarray(IFADDRMSG_LEN));
  const local = attrs.get(IFA_LOCAL);
  const peer = attrs.get(IFA_ADDRESS);
  // IPv4 puts the interface's own address in IFA_LOCAL; IPv6 only sends IFA_ADDRESS.
  const own = local ?? peer;
  const address = own ? bytesToIp(own) : '';
  const brd = attrs.get(IFA_BROADCAST);
  return {
    index: head.index,
    family: head.family,
    address,
    prefixLen: head.prefixLen,
    cidr: `${address}/${head.prefixLen}`,
    peer: peer ? bytesToIp(peer) : undefined,
    broadcast: brd && head.family === AF_INET ? bytesToIp(brd) : undefined,
    label: attrs.string(IFA_LABEL),
    scope: head.scope,
  };
}
