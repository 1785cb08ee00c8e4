// What a task's attachments ask for, read from the Network objects the dispatcher sends along
// with the task: driver, options, subnets with their gateways and (overlay) VXLAN ids. Everything
// is checked here, before any device is made, and errors name the network and the bad value.
import type { Network, NetworkAttachment, PortConfig, Task } from '../../proto/gen/objects.js';
import { contains, formatIp, formatPrefix, macFromIp, parseCidr, parseIp, type Prefix } from './ipv4.js';
import { Names } from './names.js';

export type DriverName = 'overlay' | 'bridge' | 'macvlan';
export const DRIVERS: readonly DriverName[] = ['overlay', 'bridge', 'macvlan'];

/** The allocator's option carrying an overlay's VXLAN ids, one per subnet (manager/allocator/vni.ts). */
export const VXLAN_ID_OPTION = 'com.docker.network.driver.overlay.vxlanid_list';

export interface SubnetInfo {
  /** "10.0.1.0/24". */
  subnet: string;
  /** "10.0.1.1", or undefined when the network has none. */
  gateway: string | undefined;
  /** The subnet's VXLAN id (overlay only). */
  vni: number | undefined;
}

export interface NetworkInfo {
  id: string;
  name: string;
  driver: DriverName;
  /** The driver options: the user's (`-o parent=eth0`) with the allocator's on top. */
  options: Record<string, string>;
  subnets: SubnetInfo[];
  /** No outside access: no gateway route, no NAT. */
  internal: boolean;
}

export interface PlannedEndpoint {
  /** Position among the task's attachments: its interface is eth<index>. */
  index: number;
  network: NetworkInfo;
  ifname: string;
  /** "10.0.1.5/24". */
  cidr: string;
  ip: string;
  mac: string;
  /** Which of the network's subnets holds the address. */
  subnetIndex: number;
  aliases: string[];
  /** The service's virtual IP on this network, if any. */
  vip: string | undefined;
}

export interface PlannedPort {
  protocol: 'tcp' | 'udp' | 'sctp';
  /** The host port; 0: pick one. */
  published: number;
  target: number;
}

/** `"web" (3f2a9c1b7d0e)`: how errors name a network. */
export function describeNetwork(n: { id: string; name: string }): string {
  return n.name ? `"${n.name}" (${n.id.slice(0, 12)})` : n.id.slice(0, 12);
}

export function networkInfo(network: Network, context: string): NetworkInfo {
  const name = network.spec?.annotations?.name ?? '';
  const label = `${context}: network ${describeNetwork({ id: network.id, name })}`;
  const driverName = network.driverState?.name || network.spec?.driverConfig?.name || 'overlay';
  if (!(DRIVERS as readonly string[]).includes(driverName)) {
    throw new Error(`${label}: unsupported driver ${JSON.stringify(driverName)}; supported: ${DRIVERS.join(', ')}`);
  }
  const driver = driverName as DriverName;
  const options = { ...(network.spec?.driverConfig?.options ?? {}), ...(network.driverState?.options ?? {}) };
  const configs = (network.ipam?.configs.length ? network.ipam.configs : network.spec?.ipam?.configs) ?? [];
  if (configs.length === 0) throw new Error(`${label}: no subnet (the network is not allocated)`);
  const vnis = driver === 'overlay' ? parseVnis(options[VXLAN_ID_OPTION], label) : [];
  if (driver === 'overlay' && vnis.length !== configs.length) {
    throw new Error(`${label}: ${vnis.length} VXLAN id(s) in option ${VXLAN_ID_OPTION} for ${configs.length} subnet(s)`);
  }
  const subnets = configs.map((c, i): SubnetInfo => {
    const parsed = parseCidr(c.subnet);
    if (!parsed || parsed.ip !== parsed.prefix.base) throw new Error(`${label}: invalid subnet ${JSON.stringify(c.subnet)}: expected an IPv4 prefix like 10.0.1.0/24`);
    let gateway: string | undefined;
    if (c.gateway) {
      const gw = parseIp(c.gateway);
      if (gw === undefined || !contains(parsed.prefix, gw)) throw new Error(`${label}: gateway ${JSON.stringify(c.gateway)} is not an address in ${c.subnet}`);
      gateway = formatIp(gw);
    }
    return { subnet: formatPrefix(parsed.prefix), gateway, vni: vnis[i] };
  });
  return { id: network.id, name, driver, options, subnets, internal: network.spec?.internal ?? false };
}

function parseVnis(text: string | undefined, label: string): number[] {
  if (!text) throw new Error(`${label}: no VXLAN id (driver state option ${VXLAN_ID_OPTION} is empty)`);
  return text.split(',').map((part) => {
    const vni = Number(part.trim());
    if (!/^\d+$/.test(part.trim()) || vni < 1 || vni > 0xffffff) throw new Error(`${label}: invalid VXLAN id ${JSON.stringify(part)} (1-16777215)`);
    return vni;
  });
}

/** The subnet (as a Prefix) of subnet info. */
export function prefixOf(s: SubnetInfo): Prefix {
  return parseCidr(s.subnet)!.prefix;
}

function planEndpoint(task: Task, a: NetworkAttachment, index: number): PlannedEndpoint {
  const context = `task ${task.id}`;
  if (!a.network) throw new Error(`${context}: the attachment to network ${a.networkId} carries no network definition`);
  const network = networkInfo(a.network, context);
  const label = `${context}: network ${describeNetwork(network)}`;
  const address = a.addresses[0];
  if (!address) throw new Error(`${label}: the attachment has no address`);
  const withPrefix = address.includes('/') ? parseCidr(address) : undefined;
  const ip = withPrefix?.ip ?? parseIp(address);
  if (ip === undefined) throw new Error(`${label}: invalid address ${JSON.stringify(address)}: expected an IPv4 address like 10.0.1.5/24`);
  const subnetIndex = network.subnets.findIndex((s) => contains(prefixOf(s), ip));
  if (subnetIndex < 0) throw new Error(`${label}: address ${address} is in none of its subnets (${network.subnets.map((s) => s.subnet).join(', ')})`);
  const bits = prefixOf(network.subnets[subnetIndex]!).bits;
  const mac = a.mac || macFromIp(ip);
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) throw new Error(`${label}: invalid MAC address ${JSON.stringify(mac)}`);
  const vip = task.endpoint?.virtualIps.find((v) => v.networkId === a.networkId)?.addr;
  return {
    index, network, ifname: Names.taskInterface(index), cidr: `${formatIp(ip)}/${bits}`, ip: formatIp(ip), mac: mac.toLowerCase(),
    subnetIndex, aliases: [...a.aliases], vip: vip || undefined,
  };
}

/** The task's endpoints in attachment order; throws naming the first bad attachment. */
export function planEndpoints(task: Task): PlannedEndpoint[] {
  const seen = new Set<string>();
  return task.networks.map((a, i) => {
    if (seen.has(a.networkId)) throw new Error(`task ${task.id}: network ${a.networkId} is attached twice`);
    seen.add(a.networkId);
    return planEndpoint(task, a, i);
  });
}

/** Host-mode published ports: the allocated ones (endpoint.ports) or, failing those, the spec's. */
export function planPorts(task: Task): PlannedPort[] {
  const allocated = task.endpoint?.ports ?? [];
  const source: PortConfig[] = allocated.length > 0 ? allocated : task.endpoint?.spec?.ports ?? [];
  const out: PlannedPort[] = [];
  for (const p of source) {
    if (p.publishMode !== 'HOST') continue;
    const protocol = p.protocol.toLowerCase() as PlannedPort['protocol'];
    if (!Number.isInteger(p.targetPort) || p.targetPort < 1 || p.targetPort > 65535) throw new Error(`task ${task.id}: invalid target port ${p.targetPort} (1-65535)`);
    if (p.publishedPort > 65535) throw new Error(`task ${task.id}: invalid published port ${p.publishedPort} (1-65535)`);
    if (out.some((o) => o.protocol === protocol && o.published !== 0 && o.published === p.publishedPort)) {
      throw new Error(`task ${task.id}: port ${p.publishedPort}/${protocol} is published twice`);
    }
    out.push({ protocol, published: p.publishedPort, target: p.targetPort });
  }
  return out;
}
