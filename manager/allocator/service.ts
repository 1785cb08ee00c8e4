// Service endpoints: published ports (ingress mode) and one virtual IP per network in VIP mode,
// written to `service.endpoint`. What is already held is kept across updates: a service keeps its
// dynamic port and its VIPs while its spec changes around them.
import { EndpointSpec, type Endpoint, type PortConfig, type Service, type VirtualIP } from '../../proto/gen/objects.js';
import { blank } from '../store/blank.js';
import { invalid, precondition } from './errors.js';
import { checkPortNumber, isIngressPort, type PortOwner } from './ports.js';
import type { AllocationState, Resource } from './state.js';

export const serviceOwner = (id: string): string => `service:${id}`;

export function portOwnerOf(s: Service): PortOwner {
  return { serviceId: s.id, serviceName: s.spec?.annotations?.name ?? '' };
}

export function endpointSpecOf(s: Service): EndpointSpec {
  return s.spec?.endpoint ?? blank(EndpointSpec, { mode: 'VIP', ports: [] });
}

export function hasIngressPorts(spec: EndpointSpec | null | undefined): boolean {
  return (spec?.ports ?? []).some(isIngressPort);
}

/** The networks a service's tasks attach to, in spec order, without duplicates. */
export function serviceNetworkIds(s: Service): string[] {
  return [...new Set((s.spec?.task?.networks ?? []).map((n) => n.target).filter((t) => t !== ''))];
}

/**
 * Where the service needs a VIP: none in DNSRR mode; otherwise the ingress network first when it
 * publishes ingress ports (the routing mesh balances to the VIP), then its own networks.
 */
export function vipNetworkIds(s: Service, ingressNetworkId?: string): string[] {
  const spec = endpointSpecOf(s);
  if (spec.mode === 'DNSRR') return [];
  const ids = serviceNetworkIds(s);
  if (ingressNetworkId && hasIngressPorts(spec) && !ids.includes(ingressNetworkId)) ids.unshift(ingressNetworkId);
  return ids;
}

const sameSpec = (a: EndpointSpec, b: EndpointSpec): boolean => Buffer.from(EndpointSpec.encode(a)).equals(Buffer.from(EndpointSpec.encode(b)));

/** Whether `service.endpoint` matches its spec: ports published and a VIP on each network. */
export function isServiceAllocated(s: Service, ingressNetworkId?: string): boolean {
  const ep = s.endpoint;
  if (!ep?.spec || !sameSpec(ep.spec, endpointSpecOf(s))) return false;
  const have = ep.virtualIps.map((v) => v.networkId).sort();
  const want = vipNetworkIds(s, ingressNetworkId).sort();
  return have.length === want.length && have.every((id, i) => id === want[i]);
}

/** What a committed service holds: its VIPs and its published ingress ports. */
export function serviceResources(s: Service): Resource[] {
  const out: Resource[] = [];
  const owner = portOwnerOf(s);
  for (const p of s.endpoint?.ports ?? []) {
    if (isIngressPort(p) && p.publishedPort > 0) out.push({ kind: 'port', protocol: p.protocol, port: p.publishedPort, owner });
  }
  for (const v of s.endpoint?.virtualIps ?? []) if (v.addr) out.push({ kind: 'ip', networkId: v.networkId, address: v.addr });
  return out;
}

/** The checks on ports that need no cluster state. */
export function checkEndpointSpec(spec: EndpointSpec, label: string): void {
  const seen = new Map<string, PortConfig>();
  for (const p of spec.ports) {
    checkPortNumber(p.targetPort, `target port of service ${label}`);
    if (p.publishedPort !== 0) checkPortNumber(p.publishedPort, `published port of service ${label}`);
    if (!isIngressPort(p) || p.publishedPort === 0) continue;
    const k = `${p.protocol}/${p.publishedPort}`;
    if (seen.has(k)) throw invalid(`service ${label}: published port ${p.publishedPort}/${p.protocol.toLowerCase()} is given twice`);
    seen.set(k, p);
  }
  if (spec.mode === 'DNSRR' && hasIngressPorts(spec)) {
    throw invalid(`service ${label}: ports published in ingress mode need endpoint mode vip, not dnsrr (publish them in host mode instead)`);
  }
}

/**
 * Allocates a service's endpoint in `state` (pending until committed). Throws an AllocatorError:
 * a port conflict names the port and the service holding it; a network without subnets yet is a
 * FailedPrecondition (retry once it is allocated).
 */
export function allocateServiceEndpoint(state: AllocationState, s: Service, ingressNetworkId?: string): Endpoint {
  const owner = serviceOwner(s.id);
  try {
    return buildEndpoint(state, s, ingressNetworkId);
  } catch (e) {
    state.rollbackOwner(owner);
    throw e;
  }
}

function buildEndpoint(state: AllocationState, s: Service, ingressNetworkId?: string): Endpoint {
  const owner = serviceOwner(s.id);
  const portOwner = portOwnerOf(s);
  const label = portOwner.serviceName || s.id;
  const spec = endpointSpecOf(s);
  checkEndpointSpec(spec, label);
  const current = s.endpoint;

  const ports: PortConfig[] = spec.ports.map((p) => ({ ...p }));
  // Explicit ports first, so a dynamic port kept from before cannot take one asked for now.
  const taken = new Set<string>();
  for (const p of ports) {
    if (!isIngressPort(p) || p.publishedPort === 0) continue;
    state.reservePort(owner, p.protocol, p.publishedPort, portOwner);
    taken.add(`${p.protocol}/${p.publishedPort}`);
  }
  const previous = (current?.ports ?? []).filter((q) => isIngressPort(q) && q.publishedPort > 0);
  for (let i = 0; i < ports.length; i++) {
    const p = ports[i]!;
    if (!isIngressPort(p) || p.publishedPort !== 0) continue;
    const kept = previous.find(
      (q) => q.protocol === p.protocol && q.targetPort === p.targetPort && q.name === p.name && !taken.has(`${q.protocol}/${q.publishedPort}`) && !spec.ports.some((x) => x.publishedPort === q.publishedPort && x.protocol === q.protocol),
    );
    if (kept) {
      state.reservePort(owner, p.protocol, kept.publishedPort, portOwner);
      ports[i] = { ...p, publishedPort: kept.publishedPort };
    } else {
      ports[i] = { ...p, publishedPort: state.allocatePort(owner, p.protocol, portOwner) };
    }
    taken.add(`${p.protocol}/${ports[i]!.publishedPort}`);
  }

  const virtualIps: VirtualIP[] = [];
  for (const networkId of vipNetworkIds(s, ingressNetworkId)) {
    if (!state.ipam.hasNetwork(networkId)) throw precondition(`service ${label}: network ${networkId} is not allocated yet`);
    const kept = current?.virtualIps.find((v) => v.networkId === networkId && v.addr);
    virtualIps.push({ networkId, addr: kept ? kept.addr : state.allocateIp(owner, networkId) });
  }
  return { spec, ports, virtualIps };
}
