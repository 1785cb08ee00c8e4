// The overlay driver, libnetwork's layout. Per overlay network on a host, one sandbox namespace
// holding, per subnet, a bridge and a VXLAN device; each local task gets a veth from its own
// namespace into that bridge. The VXLAN device is created in the host namespace and only then
// moved into the sandbox: its UDP socket (port 4789) stays in the namespace it was created in, so
// it sends and receives on the host's underlay while its frames are bridged inside the sandbox.
//
// Remote endpoints are programmed, not learned: an FDB entry on the VXLAN device (MAC → remote
// VTEP) and a permanent neighbour entry (IP → MAC) in every local task on that network, so no ARP
// request ever needs to cross the underlay (no flooding, no multicast, no ARP proxy).
import type { KvEntry } from '../../kv/kv.js';
import type { Netlink } from '../../netlink/index.js';
import type { Logger } from '../../util/log.js';
import { ignoreGone, netnsPathOf, withNetlink } from './host.js';
import { contains, parseIp } from './ipv4.js';
import { Names, OVERLAY_MTU } from './names.js';
import { decodePeer } from './peers.js';
import { describeNetwork, prefixOf, type NetworkInfo } from './spec.js';

/** Builds the sandbox's bridges and VXLAN devices in an empty, existing sandbox namespace. */
export async function buildSandbox(host: Netlink, sandbox: string, info: NetworkInfo, vtep: string): Promise<void> {
  await withNetlink(sandbox, async (sb) => {
    for (const [i, subnet] of info.subnets.entries()) {
      const bridge = Names.sandboxBridge(i);
      const vni = subnet.vni!;
      const vxlan = Names.vxlan(vni);
      if (!(await sb.findLink(bridge))) await sb.createLink({ kind: 'bridge', name: bridge, mtu: OVERLAY_MTU, up: true });
      if (await sb.findLink(vxlan)) continue;
      // A device left in the host namespace by a crash between create and move holds the VNI.
      if (await host.findLink(vxlan)) await host.deleteLink(vxlan);
      await host.createLink({ kind: 'vxlan', name: vxlan, vni, local: vtep, learning: false, mtu: OVERLAY_MTU });
      await host.moveToNetns(vxlan, netnsPathOf(sandbox));
      await sb.setLink(vxlan, { master: bridge, up: true });
    }
  });
}

/** Whether the sandbox has every bridge and VXLAN device it should. */
export async function sandboxIntact(sandbox: string, info: NetworkInfo): Promise<boolean> {
  return withNetlink(sandbox, async (sb) => {
    for (const [i, subnet] of info.subnets.entries()) {
      if (!(await sb.findLink(Names.sandboxBridge(i)))) return false;
      const vx = await sb.findLink(Names.vxlan(subnet.vni!));
      if (!vx?.up) return false;
    }
    return true;
  });
}

/**
 * Deletes the sandbox's devices before its namespace: a namespace is destroyed asynchronously, and
 * until then its VXLAN devices would keep their VNIs bound in the host namespace.
 */
export async function emptySandbox(sandbox: string, info: NetworkInfo): Promise<void> {
  await withNetlink(sandbox, async (sb) => {
    for (const [i, subnet] of info.subnets.entries()) {
      await ignoreGone(sb.deleteLink(Names.vxlan(subnet.vni!)));
      await ignoreGone(sb.deleteLink(Names.sandboxBridge(i)));
    }
  });
}

/** A task's veth: `outerLink` in the sandbox's bridge, `ifname` in the task namespace with the endpoint's MAC. */
export async function attachToSandbox(sandbox: string, taskNetns: string, ep: { outerLink: string; subnetIndex: number; ifname: string; mac: string }): Promise<void> {
  await withNetlink(sandbox, (sb) =>
    sb.createLink({
      kind: 'veth', name: ep.outerLink, mtu: OVERLAY_MTU, master: Names.sandboxBridge(ep.subnetIndex), up: true,
      peer: { name: ep.ifname, mac: ep.mac, mtu: OVERLAY_MTU, netns: taskNetns },
    }),
  );
}

/** A local task's interface on the network, where remote endpoints' neighbour entries go. */
export interface LocalPort {
  netns: string;
  ifname: string;
}

interface Peer {
  ip: string;
  mac: string;
  vtep: string;
  subnetIndex: number;
}

const same = (a: Peer, b: Peer) => a.ip === b.ip && a.mac === b.mac && a.vtep === b.vtep;

/**
 * Keeps one sandbox's FDB and the local tasks' neighbour entries equal to the remote endpoints of
 * the peer table. The first view after (re)starting is compared with what the kernel holds (an
 * agent that restarted knows nothing it programmed); later views with what was programmed.
 */
export class OverlayPeers {
  private programmed = new Map<string, Peer>();
  private synced = false;

  constructor(
    readonly sandbox: string,
    readonly info: NetworkInfo,
    private readonly self: { nodeId: string; vtep: string },
    private readonly log: Logger,
  ) {}

  /** The remote endpoints programmed now, by key. */
  get peers(): ReadonlyMap<string, Readonly<Peer>> {
    return this.programmed;
  }

  private desired(entries: KvEntry[]): Map<string, Peer> {
    const out = new Map<string, Peer>();
    for (const entry of entries) {
      const rec = decodePeer(entry);
      if (!rec) {
        this.log.warn('ignoring a malformed peer-table entry', { key: entry.key });
        continue;
      }
      if (rec.node === this.self.nodeId || rec.vtep === this.self.vtep) continue;
      const ip = parseIp(rec.ip.split('/')[0]!);
      const subnetIndex = ip === undefined ? -1 : this.info.subnets.findIndex((s) => contains(prefixOf(s), ip));
      if (subnetIndex < 0 || parseIp(rec.vtep) === undefined) {
        this.log.warn('ignoring a peer outside the network\'s subnets', { key: entry.key, ip: rec.ip, vtep: rec.vtep, network: describeNetwork(this.info) });
        continue;
      }
      out.set(entry.key, { ip: rec.ip.split('/')[0]!, mac: rec.mac.toLowerCase(), vtep: rec.vtep, subnetIndex });
    }
    return out;
  }

  /** Programs the difference between `entries` (the network's whole directory) and what is programmed. */
  async apply(entries: KvEntry[], locals: LocalPort[]): Promise<void> {
    const want = this.desired(entries);
    if (!this.synced) {
      await this.syncWithKernel(want, locals);
      this.synced = true;
    }
    const gone = [...this.programmed].filter(([key, p]) => !want.has(key) || !same(p, want.get(key)!));
    const added = [...want].filter(([key, p]) => !this.programmed.has(key) || !same(p, this.programmed.get(key)!));
    if (gone.length === 0 && added.length === 0) return;
    await withNetlink(this.sandbox, async (sb) => {
      for (const [key, p] of gone) {
        // A MAC another key now claims (an address reused) is rewritten below, not deleted.
        if (![...want.values()].some((w) => w.mac === p.mac)) await ignoreGone(sb.deleteFdb(this.vxlanOf(p), { mac: p.mac }));
        this.programmed.delete(key);
      }
      for (const [key, p] of added) {
        await sb.replaceFdb(this.vxlanOf(p), { mac: p.mac, dst: p.vtep });
        this.programmed.set(key, p);
      }
    });
    const staleIps = gone.map(([, p]) => p.ip).filter((ip) => ![...want.values()].some((w) => w.ip === ip));
    for (const port of locals) {
      await withNetlink(port.netns, async (nl) => {
        for (const ip of staleIps) await ignoreGone(nl.deleteNeighbour(port.ifname, ip));
        for (const [, p] of added) await nl.replaceNeighbour(port.ifname, p.ip, p.mac);
      }).catch((err: unknown) => this.log.warn('programming a local task\'s neighbours failed', { netns: port.netns, err: String(err) }));
    }
    this.log.debug('overlay peers programmed', { network: this.info.id, added: added.length, removed: gone.length, total: this.programmed.size });
  }

  /** Gives a task that just joined the neighbour entries of every remote endpoint known. */
  async programPort(port: LocalPort): Promise<void> {
    if (this.programmed.size === 0) return;
    await withNetlink(port.netns, async (nl) => {
      for (const p of this.programmed.values()) await nl.replaceNeighbour(port.ifname, p.ip, p.mac);
    });
  }

  private vxlanOf(p: Peer): string {
    return Names.vxlan(this.info.subnets[p.subnetIndex]!.vni!);
  }

  /** Removes what the kernel holds and the peer table no longer says; what it still says counts as programmed. */
  private async syncWithKernel(want: Map<string, Peer>, locals: LocalPort[]): Promise<void> {
    const wanted = [...want.values()];
    await withNetlink(this.sandbox, async (sb) => {
      for (const subnet of this.info.subnets) {
        const vxlan = Names.vxlan(subnet.vni!);
        const link = await sb.findLink(vxlan);
        if (!link) continue;
        for (const e of await sb.listFdb({ link: link.index })) {
          if (e.dst === undefined || e.mac === '00:00:00:00:00:00') continue;
          if (!wanted.some((w) => w.mac === e.mac && w.vtep === e.dst)) await ignoreGone(sb.deleteFdb(link.index, { mac: e.mac }));
        }
      }
    });
    for (const port of locals) {
      await withNetlink(port.netns, async (nl) => {
        const link = await nl.findLink(port.ifname);
        if (!link) return;
        for (const n of await nl.listNeighbours({ link: link.index })) {
          if (!n.states.includes('permanent')) continue;
          if (!wanted.some((w) => w.ip === n.ip && w.mac === n.mac)) await ignoreGone(nl.deleteNeighbour(link.index, n.ip));
        }
      }).catch((err: unknown) => this.log.warn('reading a local task\'s neighbours failed', { netns: port.netns, err: String(err) }));
    }
    // Entries that match stay: the diff below rewrites them all once (replace is idempotent).
  }
}
