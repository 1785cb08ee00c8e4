// Linux bridges in the host namespace: one per bridge network (its gateway address on it, NAT by
// the nftables rules) and the gateway bridge that gives overlay tasks their way out. A task is
// plugged in with a veth whose outer end is a bridge port and whose inner end is its ethN.
import { AF_INET, type Netlink } from '../../netlink/index.js';
import { ignoreGone } from './host.js';
import { formatIp, formatPrefix, overlaps, parseCidr, type Prefix } from './ipv4.js';

/** Makes sure the bridge exists, is up and carries `address` ("10.0.2.1/24") if given. */
export async function ensureBridge(host: Netlink, name: string, address: string | undefined): Promise<void> {
  let link = await host.findLink(name);
  if (!link) {
    await host.createLink({ kind: 'bridge', name, up: true });
    link = await host.getLink(name);
  } else if (link.kind !== 'bridge') {
    throw new Error(`bridge ${name}: a ${link.kind ?? 'plain'} link of that name is in the way`);
  }
  if (address !== undefined) {
    const held = await host.listAddresses({ link: link.index, family: AF_INET });
    if (!held.some((a) => a.cidr === address)) await host.addAddress(link.index, address);
  }
  if (!link.up) await host.setUp(link.index);
}

export async function removeBridge(host: Netlink, name: string): Promise<void> {
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
