// Change notifications: a socket bound to rtnetlink multicast groups, turned into events.
import { EventEmitter } from 'node:events';
import { decodeAddress, type Address } from './addresses.js';
import {
  AF_BRIDGE, RTM_DELADDR, RTM_DELLINK, RTM_DELNEIGH, RTM_DELROUTE, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH,
  RTM_NEWROUTE, RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK, RTMGRP_NEIGH,
} from './constants.js';
import { NetlinkError } from './errors.js';
import { decodeLink, type Link } from './links.js';
import { decodeMessages, type NetlinkMessage } from './message.js';
import { native, type NativeSocket } from './native.js';
import { decodeFdb, decodeNeighbour, type FdbEntry, type Neighbour } from './neighbours.js';
import { decodeRoute, type Route } from './routes.js';
import { RECEIVE_BUFFER } from './connection.js';

export type WatchGroup = 'link' | 'ipv4-address' | 'ipv6-address' | 'neighbour' | 'ipv4-route' | 'ipv6-route';

const GROUP_BITS: Record<WatchGroup, number> = {
  link: RTMGRP_LINK,
  'ipv4-address': RTMGRP_IPV4_IFADDR,
  'ipv6-address': RTMGRP_IPV6_IFADDR,
  neighbour: RTMGRP_NEIGH,
  'ipv4-route': RTMGRP_IPV4_ROUTE,
  'ipv6-route': RTMGRP_IPV6_ROUTE,
};

export type ChangeAction = 'new' | 'del';

export interface NetlinkWatcherEvents {
  link: [{ action: ChangeAction; link: Link }];
  address: [{ action: ChangeAction; address: Address }];
  neighbour: [{ action: ChangeAction; neighbour: Neighbour }];
  fdb: [{ action: ChangeAction; entry: FdbEntry }];
  route: [{ action: ChangeAction; route: Route }];
  /**
   * The kernel dropped notifications (ENOBUFS) or sent garbage: the listener's picture is stale
   * and it should re-list what it cares about.
   */
  error: [Error];
}

/**
 * Emits 'link', 'address', 'neighbour', 'fdb' and 'route' events for changes in one namespace.
 * Keeps the process alive until close().
 */
export class NetlinkWatcher extends EventEmitter<NetlinkWatcherEvents> {
  private readonly socket: NativeSocket;
  private closed = false;

  /** receiveBuffer: bytes the kernel may queue for us before it drops notifications (ENOBUFS). */
  constructor(readonly netns: string | undefined, groups: WatchGroup[], receiveBuffer = RECEIVE_BUFFER) {
    super();
    let bits = 0;
    for (const g of groups) {
      if (!(g in GROUP_BITS)) throw new TypeError(`"${g}" is not a netlink group (${Object.keys(GROUP_BITS).join(', ')})`);
      bits |= GROUP_BITS[g];
    }
    try {
      this.socket = native().open(netns ?? null, bits, receiveBuffer, (data, errno) => this.onDatagram(data, errno));
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      if (errno) throw new NetlinkError(`watch ${groups.join(', ')} in ${netns ?? 'own netns'}`, errno);
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    native().close(this.socket);
  }

  private onDatagram(data: Buffer | null, errno: number): void {
    if (this.closed) return;
    if (data === null) {
      this.emit('error', new NetlinkError(`watch ${this.netns ?? 'own netns'}: notifications lost`, errno));
      return;
    }
    let messages: NetlinkMessage[];
    try {
      messages = decodeMessages(data);
    } catch (err) {
      this.emit('error', err as Error);
      return;
    }
    for (const msg of messages) {
      try {
        this.dispatch(msg);
      } catch (err) {
        this.emit('error', err as Error);
      }
    }
  }

  private dispatch(msg: NetlinkMessage): void {
    switch (msg.type) {
      case RTM_NEWLINK:
      case RTM_DELLINK:
        this.emit('link', { action: msg.type === RTM_NEWLINK ? 'new' : 'del', link: decodeLink(msg) });
        break;
      case RTM_NEWADDR:
      case RTM_DELADDR:
        this.emit('address', { action: msg.type === RTM_NEWADDR ? 'new' : 'del', address: decodeAddress(msg) });
        break;
      case RTM_NEWNEIGH:
      case RTM_DELNEIGH: {
        const action = msg.type === RTM_NEWNEIGH ? 'new' : 'del';
        if (msg.payload[0] === AF_BRIDGE) this.emit('fdb', { action, entry: decodeFdb(msg) });
        else this.emit('neighbour', { action, neighbour: decodeNeighbour(msg) });
        break;
      }
      case RTM_NEWROUTE:
      case RTM_DELROUTE: {
        const route = decodeRoute(msg);
        if (route) this.emit('route', { action: msg.type === RTM_NEWROUTE ? 'new' : 'del', route });
        break;
      }
    }
  }
}
