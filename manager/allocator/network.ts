// Network allocation: subnets and gateway (user-given or from the default pools) into
// `network.ipam`, the driver and, for overlay, one VXLAN id per subnet into `network.driverState`.
// macvlan and bridge are node-local drivers, but their subnet is still chosen here so every node
// builds the same network and endpoints get cluster-unique addresses.
import type { Driver, IPAMOptions, Network, NetworkSpec } from '../../proto/gen/objects.js';
import { invalid } from './errors.js';
import type { SubnetOwner } from './ipam/pool.js';
import { describe } from './ipam/pool.js';
import type { AllocationState, Resource } from './state.js';
import { VXLAN_ID_OPTION, parseVniList } from './vni.js';

export const DEFAULT_DRIVER = 'overlay';
/** Drivers and their scope: "swarm" spans nodes (VXLAN), "local" is built on each node alike. */
export const DRIVER_SCOPE: Readonly<Record<string, 'swarm' | 'local'>> = { overlay: 'swarm', bridge: 'local', macvlan: 'local' };

/**
 * The routing mesh's network, as Docker creates it on `swarm init`: an overlay named "ingress"
 * with its subnet from the default pool. The manager creates it once, at cluster creation.
 */
export function defaultIngressNetwork(id: string): Network {
  return {
    id,
    meta: null,
    spec: {
      annotations: { name: 'ingress', labels: {} },
      driverConfig: { name: 'overlay', options: {} },
      ipv6: false,
      internal: false,
      attachable: false,
      ingress: true,
      ipam: null,
      scope: 'swarm',
    },
    driverState: null,
    ipam: null,
  };
}

export const networkOwner = (id: string): string => `network:${id}`;

export function driverName(spec: NetworkSpec | null | undefined): string {
  return spec?.driverConfig?.name || DEFAULT_DRIVER;
}

export function subnetOwner(n: Network): SubnetOwner {
  return { networkId: n.id, networkName: n.spec?.annotations?.name ?? '' };
}

/** The spec checks that need no cluster state: driver, IPAM driver, IPv6. */
export function checkNetworkDriver(spec: NetworkSpec | null | undefined, label: string): void {
  const driver = driverName(spec);
  if (!(driver in DRIVER_SCOPE)) {
    throw invalid(`network ${label}: unsupported driver ${JSON.stringify(driver)}; supported: ${Object.keys(DRIVER_SCOPE).join(', ')}`);
  }
  const ipamDriver = spec?.ipam?.driver?.name ?? '';
  if (ipamDriver && ipamDriver !== 'default') throw invalid(`network ${label}: unsupported IPAM driver ${JSON.stringify(ipamDriver)}; only "default" is`);
  if (spec?.ipv6) throw invalid(`network ${label}: IPv6 is not supported`);
}

export function isNetworkAllocated(n: Network): boolean {
  return (n.ipam?.configs.length ?? 0) > 0 && !!n.driverState?.name;
}

/** VXLAN ids a committed network holds. */
export function vnisOf(n: Network): number[] {
  const text = n.driverState?.options?.[VXLAN_ID_OPTION] ?? '';
  try {
    return parseVniList(text);
  } catch {
    return [];
  }
}

export function networkResources(n: Network): Resource[] {
  return vnisOf(n).map((vni) => ({ kind: 'vni', vni }));
}

/**
 * Allocates a network in `state` (pending until committed): returns the `ipam` and `driverState`
 * to write. Throws an AllocatorError naming the bad value (overlap, bad gateway, unknown driver).
 */
export function allocateNetwork(state: AllocationState, n: Network): { ipam: IPAMOptions; driverState: Driver } {
  const owner = subnetOwner(n);
  checkNetworkDriver(n.spec, describe(owner));
  const requests = (n.spec?.ipam?.configs ?? []).map((c) => ({ subnet: c.subnet, gateway: c.gateway, range: c.range }));
  const configs = state.ipam.addNetwork(owner, requests);
  state.notePendingNetwork(n.id);
  try {
    return { ipam: { driver: { name: 'default', options: {} }, configs }, driverState: driverStateFor(state, n, configs.length) };
  } catch (e) {
    state.rollbackOwner(networkOwner(n.id), n.id);
    throw e;
  }
}

function driverStateFor(state: AllocationState, n: Network, subnets: number): Driver {
  const driver = driverName(n.spec);
  const options: Record<string, string> = { ...(n.spec?.driverConfig?.options ?? {}) };
  if (driver === 'overlay') {
    const given = parseVniList(options[VXLAN_ID_OPTION] ?? '');
    if (given.length > 0 && given.length !== subnets) {
      throw invalid(`network ${describe(subnetOwner(n))}: ${VXLAN_ID_OPTION} names ${given.length} VXLAN ids for ${subnets} subnets`);
    }
    const vnis = Array.from({ length: subnets }, (_, i) => {
      const wanted = given[i];
      if (wanted === undefined) return state.allocateVni(networkOwner(n.id));
      state.reserveVni(networkOwner(n.id), wanted);
      return wanted;
    });
    options[VXLAN_ID_OPTION] = vnis.join(',');
  }
  return { name: driver, options };
}

/** Re-adds a committed network's subnets to a fresh state (leader failover, snapshot restore). */
export function restoreNetwork(state: AllocationState, n: Network): void {
  const configs = (n.ipam?.configs ?? []).map((c) => ({ subnet: c.subnet, gateway: c.gateway, range: c.range }));
  state.ipam.addNetwork(subnetOwner(n), configs);
}
