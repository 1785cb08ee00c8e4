// The rtnetlink client: one per network namespace, one socket, requests pipelined over it.
import { parsePrefix } from './addr.js';
import { decodeAddress, encodeAddress, encodeAddressDump, type Address, type AddressOptions } from './addresses.js';
import { Connection, type RequestOptions } from './connection.js';
import {
  AF_BRIDGE, AF_INET, AF_INET6, AF_UNSPEC, NUD_NOARP, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, RT_TABLE_MAIN,
  RTM_DELADDR, RTM_DELLINK, RTM_DELNEIGH, RTM_DELROUTE, RTM_GETADDR, RTM_GETLINK, RTM_GETNEIGH, RTM_GETROUTE,
  RTM_NEWADDR, RTM_NEWLINK, RTM_NEWNEIGH, RTM_NEWROUTE,
} from './constants.js';
import { NetlinkError } from './errors.js';
import {
  decodeLink, describeLinkRef, encodeChangeLink, encodeCreateLink, encodeLinkDump, encodeLinkSelector,
  explainCreateError, type Link, type LinkChanges, type LinkRef, type LinkSpec, type NetnsTarget, type ResolvedLinkRefs,
} from './links.js';
import {
  decodeFdb, decodeNeighbour, encodeFdb, encodeNeighbour, encodeNeighbourDump, type FdbEntry, type FdbSpec, type Neighbour,
} from './neighbours.js';
import { netnsPath, withNetns, type NetnsRef } from './netns.js';
import { decodeRoute, encodeRoute, encodeRouteDump, type Route, type RouteSpec } from './routes.js';
import { NetlinkWatcher, type WatchGroup } from './watch.js';

const ENODEV = 19;

export interface OpenOptions {
  /** A namespace name ("blue" → /run/netns/blue) or path; the caller's own namespace if left out. */
  netns?: string;
}

/** A link create spec whose link references are names or indexes, plus where to create it. */
export type CreateLinkSpec = LinkSpec & {
  /** Create the link directly in another namespace (the parent/master are looked up here). */
  netns?: NetnsRef;
};

export interface RouteOptions extends Omit<RouteSpec, 'oif'> {
  /** Output interface. */
  dev?: LinkRef;
}

export class Netlink {
  private constructor(
    private readonly conn: Connection,
    /** The namespace path this client speaks to; undefined for the caller's own. */
    readonly netns: string | undefined,
  ) {}

  static async open(opts: OpenOptions = {}): Promise<Netlink> {
    const path = opts.netns === undefined ? undefined : netnsPath(opts.netns);
    try {
      return new Netlink(new Connection(path), path);
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      if (errno) throw new NetlinkError(`open netlink socket in ${path ?? 'own netns'}`, errno);
      throw err;
    }
  }

  close(): void {
    this.conn.close();
  }

  /** Subscribes to change notifications in this client's namespace (a socket of its own). */
  watch(groups: WatchGroup[], opts: { receiveBuffer?: number } = {}): NetlinkWatcher {
    return new NetlinkWatcher(this.netns, groups, opts.receiveBuffer);
  }

  // ---- links ----

  async createLink(spec: CreateLinkSpec): Promise<void> {
    const operation = `${spec.kind} ${spec.name}`;
    const refs: ResolvedLinkRefs = {};
    if (spec.master !== undefined) refs.master = await this.indexOf(spec.master, operation);
    if (spec.kind === 'macvlan' || spec.kind === 'vlan') refs.lower = await this.indexOf(spec.parent, operation);
    if (spec.kind === 'vxlan' && spec.dev !== undefined) refs.lower = await this.indexOf(spec.dev, operation);
    const opts: RequestOptions = { operation, explain: (errno, km) => explainCreateError(spec.kind, errno, km) };
    const send = (linkSpec: LinkSpec) =>
      this.conn.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, encodeCreateLink(linkSpec, refs), opts);
    const withPeerNs = async () => {
      if (spec.kind === 'veth' && spec.peer.netns !== undefined) {
        return withNetns(spec.peer.netns, (target) => send({ ...spec, peer: { ...spec.peer, netns: target } }));
      }
      return send(spec as LinkSpec);
    };
    if (spec.netns !== undefined) {
      await withNetns(spec.netns, async (target) => {
        refs.netns = target;
        await withPeerNs();
      });
    } else {
      await withPeerNs();
    }
  }

  async deleteLink(ref: LinkRef): Promise<void> {
    await this.conn.request(RTM_DELLINK, 0, encodeLinkSelector(ref), { operation: `delete ${describeLinkRef(ref)}` });
  }

  /** The link, or a NetlinkError (ENODEV) naming it. */
  async getLink(ref: LinkRef): Promise<Link> {
    const msgs = await this.conn.request(RTM_GETLINK, 0, encodeLinkSelector(ref), { operation: describeLinkRef(ref) });
    const link = msgs.find((m) => m.type === RTM_NEWLINK);
    if (!link) throw new NetlinkError(describeLinkRef(ref), ENODEV);
    return decodeLink(link);
  }

  /** The link, or undefined when there is none by that name or index. */
  async findLink(ref: LinkRef): Promise<Link | undefined> {
    try {
      return await this.getLink(ref);
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENODEV) return undefined;
      throw err;
    }
  }

  async listLinks(): Promise<Link[]> {
    const msgs = await this.conn.dump(RTM_GETLINK, encodeLinkDump(), { operation: 'list links' });
    return msgs.filter((m) => m.type === RTM_NEWLINK).map(decodeLink);
  }

  /** Applies several changes in one request; `master` here may be a name. */
  async setLink(ref: LinkRef, changes: Omit<LinkChanges, 'master' | 'netns'> & { master?: LinkRef | null; netns?: NetnsRef }): Promise<void> {
    const what = describeChanges(changes);
    const operation = `set ${describeLinkRef(ref)}${what ? ` ${what}` : ''}`;
    const target = changes.name !== undefined && typeof ref === 'string' ? await this.indexOf(ref, operation) : ref;
    const master = changes.master === undefined || changes.master === null ? changes.master : await this.indexOf(changes.master, operation);
    const send = (netns: NetnsTarget | undefined) =>
      this.conn.request(RTM_NEWLINK, 0, encodeChangeLink(target, { ...changes, master, netns }), { operation });
    if (changes.netns !== undefined) await withNetns(changes.netns, send);
    else await send(undefined);
  }

  async setUp(ref: LinkRef): Promise<void> {
    await this.setLink(ref, { up: true });
  }
  async setDown(ref: LinkRef): Promise<void> {
    await this.setLink(ref, { up: false });
  }
  async setMtu(ref: LinkRef, mtu: number): Promise<void> {
    await this.setLink(ref, { mtu });
  }
  async setMac(ref: LinkRef, mac: string): Promise<void> {
    await this.setLink(ref, { mac });
  }
  /** Enslaves the link to a bridge. */
  async setMaster(ref: LinkRef, bridge: LinkRef): Promise<void> {
    await this.setLink(ref, { master: bridge });
  }
  async setNoMaster(ref: LinkRef): Promise<void> {
    await this.setLink(ref, { master: null });
  }
  async rename(ref: LinkRef, name: string): Promise<void> {
    await this.setLink(ref, { name });
  }
  /** Moves the link into another namespace (name, path, open fd or a process's namespace). */
  async moveToNetns(ref: LinkRef, netns: NetnsRef): Promise<void> {
    await this.setLink(ref, { netns });
  }

  // ---- addresses ----

  async addAddress(link: LinkRef, cidr: string, opts: AddressOptions = {}): Promise<void> {
    const operation = `add address ${cidr} to ${describeLinkRef(link)}`;
    const index = await this.indexOf(link, operation);
    await this.conn.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, encodeAddress(index, cidr, opts), { operation });
  }

  async deleteAddress(link: LinkRef, cidr: string): Promise<void> {
    const operation = `delete address ${cidr} from ${describeLinkRef(link)}`;
    const index = await this.indexOf(link, operation);
    await this.conn.request(RTM_DELADDR, 0, encodeAddress(index, cidr), { operation });
  }

  async listAddresses(filter: { link?: LinkRef; family?: number } = {}): Promise<Address[]> {
    const index = filter.link === undefined ? undefined : await this.indexOf(filter.link, 'list addresses');
    const msgs = await this.conn.dump(RTM_GETADDR, encodeAddressDump(filter.family ?? AF_UNSPEC), { operation: 'list addresses' });
    return msgs
      .filter((m) => m.type === RTM_NEWADDR)
      .map(decodeAddress)
      .filter((a) => (index === undefined || a.index === index) && (filter.family === undefined || a.family === filter.family));
  }

  // ---- routes ----

  async addRoute(route: RouteOptions): Promise<void> {
    const operation = `add route ${describeRoute(route)}`;
    const spec = await this.routeSpec(route, operation);
    await this.conn.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, encodeRoute(spec), { operation });
  }

  async replaceRoute(route: RouteOptions): Promise<void> {
    const operation = `replace route ${describeRoute(route)}`;
    const spec = await this.routeSpec(route, operation);
    await this.conn.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, encodeRoute(spec), { operation });
  }

  async deleteRoute(route: RouteOptions): Promise<void> {
    const operation = `delete route ${describeRoute(route)}`;
    const spec = await this.routeSpec(route, operation);
    await this.conn.request(RTM_DELROUTE, 0, encodeRoute(spec, true), { operation });
  }

  /** Routes of one table (main unless given); all tables with table: 'all'. */
  async listRoutes(filter: { table?: number | 'all'; family?: number } = {}): Promise<Route[]> {
    const family = filter.family ?? AF_UNSPEC;
    const table = filter.table ?? RT_TABLE_MAIN;
    const msgs = await this.conn.dump(RTM_GETROUTE, encodeRouteDump(family), { operation: 'list routes' });
    return msgs
      .filter((m) => m.type === RTM_NEWROUTE)
      .map(decodeRoute)
      .filter((r): r is Route => r !== undefined && (table === 'all' || r.table === table) && (family === AF_UNSPEC || r.family === family));
  }

  // ---- neighbours ----

  /** A permanent IP → MAC entry; fails with EEXIST if one exists. */
  async addNeighbour(link: LinkRef, ip: string, mac: string): Promise<void> {
    await this.neighbour(link, ip, mac, NLM_F_CREATE | NLM_F_EXCL, 'add');
  }
  /** A permanent IP → MAC entry, replacing any. */
  async replaceNeighbour(link: LinkRef, ip: string, mac: string): Promise<void> {
    await this.neighbour(link, ip, mac, NLM_F_CREATE | NLM_F_REPLACE, 'replace');
  }
  async deleteNeighbour(link: LinkRef, ip: string): Promise<void> {
    const operation = `delete neighbour ${ip} on ${describeLinkRef(link)}`;
    const index = await this.indexOf(link, operation);
    await this.conn.request(RTM_DELNEIGH, 0, encodeNeighbour(index, ip, undefined, 0), { operation });
  }
  /** Like `ip neigh show`: entries in state NOARP only (multicast mappings) are left out unless all. */
  async listNeighbours(filter: { link?: LinkRef; family?: number; all?: boolean } = {}): Promise<Neighbour[]> {
    const index = filter.link === undefined ? undefined : await this.indexOf(filter.link, 'list neighbours');
    const msgs = await this.conn.dump(RTM_GETNEIGH, encodeNeighbourDump(filter.family ?? AF_UNSPEC), { operation: 'list neighbours' });
    return msgs
      .filter((m) => m.type === RTM_NEWNEIGH)
      .map(decodeNeighbour)
      .filter((n) => (n.family === AF_INET || n.family === AF_INET6) && (index === undefined || n.index === index) &&
        (filter.family === undefined || n.family === filter.family) && (filter.all === true || (n.state & ~NUD_NOARP) !== 0));
  }

  // ---- bridge FDB ----

  /**
   * A permanent FDB entry on the device itself (NTF_SELF): for a vxlan device, "frames for this
   * MAC go to VTEP dst". mode 'append' adds another destination for the same MAC (as for the
   * all-zero MAC that floods broadcast to every VTEP).
   */
  async addFdb(link: LinkRef, entry: FdbSpec, mode: 'add' | 'replace' | 'append' = 'add'): Promise<void> {
    const operation = `${mode} fdb ${entry.mac}${entry.dst ? ` dst ${entry.dst}` : ''} on ${describeLinkRef(link)}`;
    const index = await this.indexOf(link, operation);
    const flags = NLM_F_CREATE | (mode === 'add' ? NLM_F_EXCL : mode === 'replace' ? NLM_F_REPLACE : NLM_F_APPEND);
    await this.conn.request(RTM_NEWNEIGH, flags, encodeFdb(index, entry), { operation });
  }
  async replaceFdb(link: LinkRef, entry: FdbSpec): Promise<void> {
    await this.addFdb(link, entry, 'replace');
  }
  /** Deletes the entry for a MAC (only the given dst when one is named). */
  async deleteFdb(link: LinkRef, entry: FdbSpec): Promise<void> {
    const operation = `delete fdb ${entry.mac}${entry.dst ? ` dst ${entry.dst}` : ''} on ${describeLinkRef(link)}`;
    const index = await this.indexOf(link, operation);
    await this.conn.request(RTM_DELNEIGH, 0, encodeFdb(index, entry), { operation });
  }
  async listFdb(filter: { link?: LinkRef } = {}): Promise<FdbEntry[]> {
    const index = filter.link === undefined ? undefined : await this.indexOf(filter.link, 'list fdb');
    const msgs = await this.conn.dump(RTM_GETNEIGH, encodeNeighbourDump(AF_BRIDGE), { operation: 'list fdb' });
    return msgs
      .filter((m) => m.type === RTM_NEWNEIGH)
      .map(decodeFdb)
      .filter((e) => index === undefined || e.index === index);
  }

  // ---- helpers ----

  private async neighbour(link: LinkRef, ip: string, mac: string, flags: number, verb: string): Promise<void> {
    const operation = `${verb} neighbour ${ip} lladdr ${mac} on ${describeLinkRef(link)}`;
    const index = await this.indexOf(link, operation);
    await this.conn.request(RTM_NEWNEIGH, flags, encodeNeighbour(index, ip, mac), { operation });
  }

  private async routeSpec(route: RouteOptions, operation: string): Promise<RouteSpec> {
    const { dev, ...rest } = route;
    if (rest.dst !== 'default') parsePrefix(rest.dst); // a bad destination fails before any lookup
    return dev === undefined ? rest : { ...rest, oif: await this.indexOf(dev, operation) };
  }

  /** Resolves a link name to its index here; errors name the operation that needed it. */
  private async indexOf(ref: LinkRef, operation: string): Promise<number> {
    if (typeof ref === 'number') return ref;
    const link = await this.findLink(ref);
    if (!link) throw new NetlinkError(operation, ENODEV, undefined, `${describeLinkRef(ref)} does not exist`);
    return link.index;
  }
}

function describeChanges(c: { up?: boolean; mtu?: number; mac?: string; master?: LinkRef | null; name?: string; netns?: NetnsRef }): string {
  const parts: string[] = [];
  if (c.name !== undefined) parts.push(`name ${c.name}`);
  if (c.up !== undefined) parts.push(c.up ? 'up' : 'down');
  if (c.mtu !== undefined) parts.push(`mtu ${c.mtu}`);
  if (c.mac !== undefined) parts.push(`address ${c.mac}`);
  if (c.master === null) parts.push('nomaster');
  else if (c.master !== undefined) parts.push(`master ${c.master}`);
  if (c.netns !== undefined) parts.push(typeof c.netns === 'string' ? `netns ${c.netns}` : 'fd' in c.netns ? `netns fd ${c.netns.fd}` : `netns pid ${c.netns.pid}`);
  return parts.join(' ');
}

function describeRoute(r: RouteOptions): string {
  let s = r.dst;
  if (r.gateway !== undefined) s += ` via ${r.gateway}`;
  if (r.dev !== undefined) s += ` dev ${r.dev}`;
  if (r.table !== undefined) s += ` table ${r.table}`;
  return s;
}
