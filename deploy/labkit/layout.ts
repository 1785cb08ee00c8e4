// Where everything of a lab lives: namespace names, paths, addresses. Pure (no I/O), so the lab,
// its tests and later tooling (per-host shoald, `lab cli`, the registry host) agree on one plan.
//
// Naming. A lab called LAB owns exactly these names, and nothing else:
//   network namespaces  LAB-underlay (the shared segment: bridge br0, one port per host)
//                       LAB-h1 … LAB-hN (the hosts: lo, and eth0 whose peer is port hI on br0)
//                       LAB-registry (the registry host)
//                       LAB-hI.* (what host hI's shoald makes: task namespaces, overlay sandboxes)
//   cgroups             /shoal-lab/LAB/hI/<container> (host hI's containers)
//   state               /run/shoal-lab/LAB/            hosts.json, one folder per host:
//                       /run/shoal-lab/LAB/hosts/hI/   uts (persistent UTS namespace file),
//                                                      shoal.sock (the host's daemon socket)
//   data                /var/lib/shoal-lab/LAB/hI/     the host's daemon data directory
// Roles never contain '-', so `LAB-<role>` can be told apart from another lab's names even when
// one lab's name starts with another's (lab `a` owns `a-h1`, lab `a-h1` owns `a-h1-h1`).
//
// Addresses. In the lab subnet (default 198.18.0.0/24, the benchmarking range, so it never
// clashes with a real network), host hI has the address at offset I: h1 = .1, h2 = .2, …. The
// last usable address (.254 in a /24) is kept for the registry host. Each eth0 has a MAC derived
// from its address (02:00 + the four address bytes), so captures and FDB entries are readable
// and the same on every run.
import { UserError } from '../../util/command.js';
import { addressAt, parseSubnet, type Subnet } from './ipv4.js';
import type { RegistryLayout } from './registry.js';

export const DEFAULT_LAB = 'shoal';
export const DEFAULT_SUBNET = '198.18.0.0/24';
export const STATE_ROOT = '/run/shoal-lab';
export const DATA_ROOT = '/var/lib/shoal-lab';
export const NETNS_DIR = '/run/netns';
export const UNDERLAY_BRIDGE = 'br0';
/** The interface every host sees, like a machine's first NIC. */
export const HOST_IFACE = 'eth0';

const LAB_NAME = /^[a-z0-9][a-z0-9_.-]{0,39}$/;
/** Roles a lab namespace can have; see isLabNamespace. Add new roles here (without '-'). */
const ROLE = /^(h[1-9][0-9]*(\.[a-z0-9-]+)?|underlay|registry)$/;

export interface HostLayout {
  /** `h1` … `hN`: the hostname, and the name used by `lab exec`. */
  name: string;
  index: number;
  address: string;
  /** `198.18.0.1/24`, as configured on eth0. */
  cidr: string;
  mac: string;
  netns: string;
  netnsPath: string;
  /** Name of this host's port on the underlay bridge. */
  underlayPort: string;
  runDir: string;
  /** Bind mount of the host's UTS namespace (the hostname lives there). */
  utsPath: string;
  socket: string;
  dataDir: string;
}

export interface LabLayout {
  name: string;
  subnet: string;
  prefixLen: number;
  stateDir: string;
  stateFile: string;
  dataDir: string;
  underlay: { netns: string; netnsPath: string; bridge: string };
  hosts: HostLayout[];
  /** Addresses kept free for hosts that later work adds. */
  reserved: { registry: string };
  /** The registry host, when the lab was brought up with one. */
  registry?: RegistryLayout;
}

export function validateLabName(name: string): string {
  if (!LAB_NAME.test(name)) {
    throw new UserError(`invalid lab name "${name}": use 1 to 40 of a-z, 0-9, '-', '_', '.', starting with a letter or digit`);
  }
  return name;
}

export function maxHosts(subnet: Subnet): number {
  // Network and broadcast addresses are unusable; one more is the registry's.
  return subnet.size - 3;
}

export function labLayout(name: string, hostCount: number, subnetCidr: string = DEFAULT_SUBNET, withRegistry = false): LabLayout {
  validateLabName(name);
  const subnet = parseSubnet(subnetCidr);
  const max = maxHosts(subnet);
  if (!Number.isInteger(hostCount) || hostCount < 1 || hostCount > max) {
    throw new UserError(`invalid host count ${hostCount}: ${subnet.cidr} has room for 1 to ${max} hosts`);
  }
  const stateDir = `${STATE_ROOT}/${name}`;
  const dataDir = `${DATA_ROOT}/${name}`;
  const underlayNs = namespaceName(name, 'underlay');
  const hosts: HostLayout[] = [];
  for (let i = 1; i <= hostCount; i++) {
    const host = `h${i}`;
    const address = addressAt(subnet, i);
    const netns = namespaceName(name, host);
    const runDir = `${stateDir}/hosts/${host}`;
    hosts.push({
      name: host,
      index: i,
      address,
      cidr: `${address}/${subnet.prefixLen}`,
      mac: macFor(address),
      netns,
      netnsPath: `${NETNS_DIR}/${netns}`,
      underlayPort: host,
      runDir,
      utsPath: `${runDir}/uts`,
      socket: `${runDir}/shoal.sock`,
      dataDir: `${dataDir}/${host}`,
    });
  }
  const registryAddress = addressAt(subnet, subnet.size - 2);
  const registryNs = namespaceName(name, 'registry');
  const registry: RegistryLayout | undefined = withRegistry
    ? {
        netns: registryNs,
        netnsPath: `${NETNS_DIR}/${registryNs}`,
        address: registryAddress,
        cidr: `${registryAddress}/${subnet.prefixLen}`,
        mac: macFor(registryAddress),
        underlayPort: 'registry',
        runDir: `${stateDir}/registry`,
        dataDir: `${dataDir}/registry`,
      }
    : undefined;
  return {
    name,
    subnet: subnet.cidr,
    prefixLen: subnet.prefixLen,
    stateDir,
    stateFile: `${stateDir}/hosts.json`,
    dataDir,
    underlay: { netns: underlayNs, netnsPath: `${NETNS_DIR}/${underlayNs}`, bridge: UNDERLAY_BRIDGE },
    hosts,
    reserved: { registry: registryAddress },
    ...(registry ? { registry } : {}),
  };
}

/** The --netns-prefix of host `host`'s shoald: its namespaces are `LAB-hI.<name>`. */
export function agentNetnsPrefix(lab: string, host: string): string {
  return `${lab}-${host}.`;
}

export const LAB_CGROUP_ROOT = '/shoal-lab';

/** The --cgroup-parent of host `host`'s shoald. */
export function labCgroupParent(lab: string, host: string): string {
  return `${LAB_CGROUP_ROOT}/${lab}/${host}`;
}

export function namespaceName(lab: string, role: string): string {
  return `${lab}-${role}`;
}

/** True when network namespace `ns` is one lab `lab` may have made (by the naming convention). */
export function isLabNamespace(lab: string, ns: string): boolean {
  if (!ns.startsWith(lab + '-')) return false;
  return ROLE.test(ns.slice(lab.length + 1));
}

function macFor(address: string): string {
  const bytes = address.split('.').map((b) => Number(b).toString(16).padStart(2, '0'));
  return ['02', '00', ...bytes].join(':');
}
