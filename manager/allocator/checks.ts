// What the control API calls before it writes, so users get the error at once instead of an object
// the allocator later cannot allocate. The allocator checks again when it allocates (two requests
// can race past these checks), and then leaves the object unallocated with the reason logged.
import type { Network, NetworkSpec, Service, ServiceSpec } from '../../proto/gen/objects.js';
import type { ReadView } from '../store/memory.js';
import { conflict, invalid, precondition } from './errors.js';
import { formatCidr, parseCidr } from './ipam/ipv4.js';
import { AddressSpace, describe, parseAddressPools } from './ipam/pool.js';
import { resolveSubnetConfig } from './ipam/subnet.js';
import { checkNetworkDriver, driverName, subnetOwner, vnisOf } from './network.js';
import { conflictMessage, isIngressPort } from './ports.js';
import { checkEndpointSpec, endpointSpecOf, portOwnerOf, serviceNetworkIds } from './service.js';
import { isTaskEnded } from './task.js';
import { VXLAN_ID_OPTION, parseVniList } from './vni.js';

export { parseAddressPools };

/** Subnets a network holds (as allocated) or asks for (not yet allocated). */
function subnetsOf(n: Network): string[] {
  const configs = n.ipam?.configs.length ? n.ipam.configs : (n.spec?.ipam?.configs ?? []);
  return configs.map((c) => c.subnet).filter((s) => s !== '');
}

/**
 * Checks a network spec before `network create`: driver, IPAM configs (subnet, gateway inside it,
 * ip-range inside it), no overlap with any existing network's subnets (naming both networks), a
 * given VXLAN id not in use. `existing` is every network in the store.
 */
export function validateNetworkSpec(spec: NetworkSpec, existing: readonly Network[]): void {
  const name = spec.annotations?.name ?? '';
  const label = name ? `"${name}"` : '(unnamed)';
  checkNetworkDriver(spec, label);
  if (spec.ingress && driverName(spec) !== 'overlay') throw invalid(`network ${label}: an ingress network must use the overlay driver`);
  if (spec.ingress) {
    const other = existing.find((n) => n.spec?.ingress);
    if (other) throw conflict(`network ${label}: an ingress network already exists: ${describe(subnetOwner(other))}`);
  }
  const space = new AddressSpace(parseAddressPools());
  for (const n of existing) {
    for (const s of subnetsOf(n)) {
      try {
        space.reserve(parseCidr(s), subnetOwner(n));
      } catch {
        // Existing clashes are not this request's fault.
      }
    }
  }
  const me = { networkId: '', networkName: name || '(new network)' };
  for (const c of spec.ipam?.configs ?? []) {
    if (!c.subnet) {
      if (c.gateway || c.range) throw invalid(`network ${label}: a gateway or ip-range needs a subnet (--subnet)`);
      continue;
    }
    const config = resolveSubnetConfig(c.subnet, c.gateway, c.range);
    const clash = space.findOverlap(config.subnet);
    if (clash) {
      const who = clash.networkId === '' ? `another subnet of the same network` : `network ${describe(clash)}`;
      throw conflict(`subnet ${formatCidr(config.subnet)} of network ${label} overlaps subnet ${formatCidr(clash.cidr)} of ${who}`);
    }
    space.reserve(config.subnet, me);
  }
  const vnis = parseVniList(spec.driverConfig?.options?.[VXLAN_ID_OPTION] ?? '');
  for (const vni of vnis) {
    const holder = existing.find((n) => vnisOf(n).includes(vni));
    if (holder) throw conflict(`VXLAN id ${vni} asked for by network ${label} is already used by network ${describe(subnetOwner(holder))}`);
  }
}

/**
 * Checks a service's endpoint before `service create/update`: port numbers, duplicates, dnsrr with
 * ingress ports, and published ports another service holds ("port 8080/tcp is already in use by
 * service "web" (id) as an ingress port"). `serviceId` is empty for a new service; `services` is
 * every service in the store.
 */
export function validateServiceEndpoint(spec: ServiceSpec, serviceId: string, services: readonly Service[]): void {
  const label = spec.annotations?.name || serviceId || '(unnamed)';
  const endpoint = endpointSpecOf({ spec } as Service);
  checkEndpointSpec(endpoint, label);
  for (const p of endpoint.ports) {
    if (!isIngressPort(p) || p.publishedPort === 0) continue;
    for (const other of services) {
      if (other.id === serviceId) continue;
      // Held (allocated) or asked for (not allocated yet): either way it is taken.
      const ports = [...(other.endpoint?.ports ?? []), ...(other.spec?.endpoint?.ports ?? [])];
      if (ports.some((q) => isIngressPort(q) && q.protocol === p.protocol && q.publishedPort === p.publishedPort)) {
        throw conflict(conflictMessage(p.publishedPort, p.protocol, portOwnerOf(other)));
      }
    }
  }
}

/**
 * Refuses removing a network that services or running tasks still use, as Docker does; the
 * ingress network while a service publishes ingress ports.
 */
export function checkNetworkRemovable(view: ReadView, networkId: string): void {
  const n = view.get('networks', networkId);
  if (!n) return;
  const label = describe(subnetOwner(n));
  for (const s of view.all('services')) {
    if (serviceNetworkIds(s).includes(networkId)) {
      throw precondition(`network ${label} is in use by service ${describe({ networkId: s.id, networkName: s.spec?.annotations?.name ?? '' })}`);
    }
    if (n.spec?.ingress && endpointSpecOf(s).ports.some(isIngressPort)) {
      throw precondition(`ingress network ${label} cannot be removed: service ${describe({ networkId: s.id, networkName: s.spec?.annotations?.name ?? '' })} publishes ports through it`);
    }
  }
  for (const t of view.all('tasks')) {
    if (!isTaskEnded(t) && t.networks.some((a) => a.networkId === networkId)) {
      throw precondition(`network ${label} is in use by task ${t.id}`);
    }
  }
}
