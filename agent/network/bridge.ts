// Linux bridges in the host namespace: one per bridge network (its gateway address on it, NAT by
// the nftables rules) and the gateway bridge that gives overlay tasks their way out. A task is
// plugged in with a veth whose outer end is a bridge port and whose inner end is its ethN.
import { randomBytes } from 'node:crypto';
import { AF_INET, type Netlink } from '../../netlink/index.js';
import { ignoreGone } from './host.js';
import { formatIp, formatPrefix, overlaps, parseCidr, type Prefix } from './ipv4.js';

/** Bridges whose MAC address this process has pinned, per host namespace client (see ensureBridge). */
const pinned = new WeakMap<Netlink, Set<string>>();

/**
 * Makes sure the bridge exists, is up, keeps one MAC address, and carries `address` ("10.0.2.1/24")
 * if given.
 *
 * The MAC: a bridge whose address was never set takes the lowest of its ports' and changes it
 * as tasks come and go. A task that cached the old one (its gateway, its DNS server) then sends
 * to the address of another task's port; the bridge passes such a frame up marked "for another
 * host", and IP drops it, so the task loses its DNS and its way out until its neighbour entry
 * expires (Docker sets a bridge's MAC for the same reason). A bridge made here is given a random
 * one at creation; one found already (an agent restart) gets its current address set again,
 * which changes nothing but keeps it from moving after.
 */
export async function ensureBridge(host: Netlink, name: string, address: string | undefined): Promise<void> {
  let done = pinned.get(host);
  if (!done) pinned.set(host, (done = new Set()));
  let link = await host.findLink(name);
  if (!link) {
    await host.createLink({ kind: 'bridge', name, mac: randomMac(), up: true });
    link = await host.getLink(name);
    done.add(name);
  } else if (link.kind !== 'bridge') {
    throw new Error(`bridge ${name}: a ${link.kind ?? 'plain'} link of that name is in the way`);
  } else if (!done.has(name) && link.mac) {
    await host.setMac(link.index, link.mac);
    done.add(name);
  }
  if (address !== undefined) {
    const held = await host.listAddresses({ link: link.index, family: AF_INET });
    if (!held.some((a) => a.cidr === address)) await host.addAddress(link.index, address);
  }
  if (!link.up) await host.setUp(link.index);
}

/** A random unicast, locally administered MAC (Docker's GenerateRandomMAC). */
function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

export async function removeBridge(host: Netlink, name: string): Promise<void> {
  pinned.get(host)?.delete(name);
  await ignoreGone(host.deleteLink(name));
}

/** A veth with `outerLink` in `bridge` (host side) and `ifname` in the task's namespace. */
export async function attachVeth(host: Netlink, v: { outerLink: string; bridge: string; taskNetns: string; ifname: string; mac?: string; mtu?: number }): Promise<void> {
  await host.createLink({
    kind: 'veth', name: v.outerLink, master: v.bridge, up: true, ...(v.mtu !== undefined ? { mtu: v.mtu } : {}),
    peer: { name: v.ifname, netns: v.taskNetns, ...(v.mac !== undefined ? { mac: v.mac } : {}), ...(v.mtu !== undefined ? { mtu: v.mtu } : {}) },
  });
}

/** Docker's choice for docker_gwbridge: the first of 172.18-31.0.0/16 nothing on the host uses. */
export const GATEWAY_CANDIDATES: readonly string[] = Array.from({ length: 14 }, (_, i) => `172.${18 + i}.0.0/16`);

/**
 * A subnet for the gateway bridge that overlaps no address or route of the host and none of
 * `avoid` (the networks tasks use); the host takes its first address.
 */
export async function chooseGatewaySubnet(host: Netlink, avoid: Prefix[]): Promise<{ subnet: string; address: string }> {
  const used: Prefix[] = [...avoid];
  for (const a of await host.listAddresses({ family: AF_INET })) used.push(parseCidr(a.cidr)!.prefix);
  for (const r of await host.listRoutes({ family: AF_INET })) {
    if (r.dst === 'default') continue;
    const p = parseCidr(r.dst);
    if (p) used.push(p.prefix);
  }
  for (const candidate of GATEWAY_CANDIDATES) {
    const prefix = parseCidr(candidate)!.prefix;
    if (used.some((u) => overlaps(u, prefix))) continue;
    return { subnet: formatPrefix(prefix), address: `${formatIp(prefix.base + 1)}/${prefix.bits}` };
  }
  throw new Error(`gateway bridge: no free subnet among ${GATEWAY_CANDIDATES[0]}-${GATEWAY_CANDIDATES.at(-1)}: each overlaps an address or route of the host, or a network in use`);
}
