// Published ports of the routing mesh (ingress mode): one cluster-wide namespace per protocol,
// since every node listens on every ingress port. A port given by the user is honoured when free;
// 0 takes one from Docker's dynamic range. Host-mode ports are node-level and left to the
// scheduler.
import type { PortConfig, PortConfig_Protocol } from '../../proto/gen/objects.js';
import { conflict, exhausted, invalid } from './errors.js';

export const DYNAMIC_PORT_MIN = 30000;
export const DYNAMIC_PORT_MAX = 32767;

export interface PortOwner {
  serviceId: string;
  serviceName: string;
}

const key = (protocol: PortConfig_Protocol, port: number): string => `${protocol}/${port}`;

export function portOwnerText(o: PortOwner): string {
  return o.serviceName && o.serviceName !== o.serviceId ? `service "${o.serviceName}" (${o.serviceId})` : `service ${o.serviceId}`;
}

export function conflictMessage(port: number, protocol: PortConfig_Protocol, holder: PortOwner): string {
  return `port ${port}/${protocol.toLowerCase()} is already in use by ${portOwnerText(holder)} as an ingress port`;
}

export class PortAllocator {
  private readonly held = new Map<string, PortOwner>();
  private readonly cursor = new Map<PortConfig_Protocol, number>();

  ownerOf(protocol: PortConfig_Protocol, port: number): PortOwner | undefined {
    return this.held.get(key(protocol, port));
  }

  /** Claims a given port for a service; holding it already is fine. */
  reserve(protocol: PortConfig_Protocol, port: number, owner: PortOwner): void {
    checkPortNumber(port, 'published port');
    const holder = this.held.get(key(protocol, port));
    if (holder && holder.serviceId !== owner.serviceId) throw conflict(conflictMessage(port, protocol, holder));
    this.held.set(key(protocol, port), owner);
  }

  /** A free port from the dynamic range, after the last one given. */
  allocateDynamic(protocol: PortConfig_Protocol, owner: PortOwner): number {
    const span = DYNAMIC_PORT_MAX - DYNAMIC_PORT_MIN + 1;
    let p = this.cursor.get(protocol) ?? DYNAMIC_PORT_MIN;
    for (let i = 0; i < span; i++) {
      if (!this.held.has(key(protocol, p))) {
        this.held.set(key(protocol, p), owner);
        this.cursor.set(protocol, p >= DYNAMIC_PORT_MAX ? DYNAMIC_PORT_MIN : p + 1);
        return p;
      }
      p = p >= DYNAMIC_PORT_MAX ? DYNAMIC_PORT_MIN : p + 1;
    }
    throw exhausted(`no free ${protocol.toLowerCase()} port left in the dynamic range ${DYNAMIC_PORT_MIN}-${DYNAMIC_PORT_MAX}`);
  }

  /** Frees a port if `serviceId` holds it. */
  release(protocol: PortConfig_Protocol, port: number, serviceId: string): void {
    const k = key(protocol, port);
    if (this.held.get(k)?.serviceId === serviceId) this.held.delete(k);
  }
}

export function checkPortNumber(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`invalid ${what} ${port}: must be between 1 and 65535`);
}

/** Ports that go through the routing mesh and so take a cluster-wide published port. */
export function isIngressPort(p: PortConfig): boolean {
  return p.publishMode === 'INGRESS';
}
