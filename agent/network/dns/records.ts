// What one network's peer table says about names: built from the KV entries under
// `endpoints/<networkId>/` (written by the agents that own the endpoints) and asked by the DNS
// server and the VIP load balancer. Names follow Docker's embedded DNS for swarm services:
//
//   SERVICE        the service's VIP (endpoint mode vip) or all its task IPs (dnsrr)
//   tasks.SERVICE  every task IP
//   TASKNAME       that task's IP (web.1.<task id>)
//   ALIAS          like SERVICE for the service whose endpoints carry the alias; tasks.ALIAS too
//
// Only serving endpoints count for SERVICE, tasks.SERVICE, aliases and VIP backends (a task is
// published from prepare on but serves once RUNNING and healthy, and stops serving before its
// container is stopped; a row without the field serves). A VIP stays known, with no backend,
// while none of its tasks serves; a task name and its PTR answer whatever the task's state.
//
// Names compare case-insensitively (DNS does); a table is immutable, rebuilt on every change.
import type { KvEntry } from '../../../kv/kv.js';
import { parseIp } from '../ipv4.js';

export type EndpointMode = 'vip' | 'dnsrr';

/** One row of the peer table, as the endpoint's agent wrote it. */
export interface PeerEndpoint {
  networkId: string;
  endpointId: string;
  ip: string;
  task: string;
  taskName: string;
  serviceId: string;
  serviceName: string;
  aliases: string[];
  vip?: string;
  endpointMode: EndpointMode;
  /** Whether service discovery sends it traffic (absent in the row: yes). */
  serving: boolean;
}

/** The answer for a name: addresses, and whether their order should be shuffled per query. */
export interface NameAnswer {
  ips: string[];
  /** dnsrr and tasks.* answers: each query gets another order, so clients spread their load. */
  shuffle: boolean;
}

/** A VIP of the network and the task IPs behind it (sorted), for the load balancer. */
export interface VipBackends {
  vip: string;
  serviceName: string;
  backends: string[];
}

interface ServiceGroup {
  vips: Set<string>;
  ips: Set<string>;
  dnsrr: boolean;
}

export function isIpv4(s: string): boolean {
  return parseIp(s) !== undefined;
}

/**
 * Reads one peer-table entry; undefined (and the reason) for a value that is not a usable
 * endpoint, so one bad row never hides the others.
 */
export function parseEndpoint(networkId: string, entry: KvEntry): { endpoint?: PeerEndpoint; problem?: string } {
  const endpointId = entry.key.slice(entry.key.lastIndexOf('/') + 1);
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(entry.value).toString('utf8'));
  } catch {
    return { problem: `${entry.key}: value is not JSON` };
  }
  if (typeof raw !== 'object' || raw === null) return { problem: `${entry.key}: value is not an object` };
  const r = raw as Record<string, unknown>;
  const str = (k: string): string => (typeof r[k] === 'string' ? (r[k] as string) : '');
  const ip = str('ip');
  if (!isIpv4(ip)) return { problem: `${entry.key}: ip ${JSON.stringify(r.ip)} is not an IPv4 address` };
  const vip = str('vip');
  if (vip !== '' && !isIpv4(vip)) return { problem: `${entry.key}: vip ${JSON.stringify(r.vip)} is not an IPv4 address` };
  const mode = r.endpointMode;
  if (mode !== undefined && mode !== 'vip' && mode !== 'dnsrr') return { problem: `${entry.key}: endpointMode ${JSON.stringify(mode)} is not vip or dnsrr` };
  const aliases = Array.isArray(r.aliases) ? r.aliases.filter((a): a is string => typeof a === 'string' && a !== '') : [];
  const endpoint: PeerEndpoint = {
    networkId,
    endpointId,
    ip,
    task: str('task'),
    taskName: str('taskName'),
    serviceId: str('serviceId'),
    serviceName: str('serviceName'),
    aliases,
    // Without a VIP there is nothing to balance on: answer with the task IPs.
    endpointMode: mode === 'dnsrr' || vip === '' ? 'dnsrr' : 'vip',
    serving: r.serving !== false,
  };
  if (vip !== '') endpoint.vip = vip;
  return { endpoint };
}

export class NetworkRecords {
  /** Service names and aliases (lower case) → what stands behind them. */
  private readonly groups = new Map<string, ServiceGroup>();
  private readonly taskIps = new Map<string, string>();
  private readonly ptr = new Map<string, string>();
  private readonly vips = new Map<string, VipBackends>();

  constructor(
    readonly networkId: string,
    readonly endpoints: readonly PeerEndpoint[],
  ) {
    for (const ep of endpoints) {
      const names = new Set([ep.serviceName, ...ep.aliases].filter((n) => n !== '').map((n) => n.toLowerCase()));
      const vipMode = ep.endpointMode === 'vip' && ep.vip !== undefined;
      // A dnsrr endpoint that does not serve adds nothing to its names.
      if (ep.serving || vipMode) {
        for (const name of names) {
          let group = this.groups.get(name);
          if (!group) this.groups.set(name, (group = { vips: new Set(), ips: new Set(), dnsrr: false }));
          if (ep.serving) group.ips.add(ep.ip);
          if (vipMode) group.vips.add(ep.vip!);
          else group.dnsrr = true;
        }
      }
      if (ep.taskName !== '') {
        this.taskIps.set(ep.taskName.toLowerCase(), ep.ip);
        this.ptr.set(ep.ip, ep.taskName);
      }
      if (vipMode) {
        let lb = this.vips.get(ep.vip!);
        if (!lb) this.vips.set(ep.vip!, (lb = { vip: ep.vip!, serviceName: ep.serviceName, backends: [] }));
        if (ep.serving && !lb.backends.includes(ep.ip)) lb.backends.push(ep.ip);
      }
    }
    for (const lb of this.vips.values()) lb.backends.sort(compareIps);
  }

  static fromEntries(networkId: string, entries: readonly KvEntry[], onProblem?: (problem: string) => void): NetworkRecords {
    const endpoints: PeerEndpoint[] = [];
    for (const entry of entries) {
      const { endpoint, problem } = parseEndpoint(networkId, entry);
      if (endpoint) endpoints.push(endpoint);
      else if (problem) onProblem?.(problem);
    }
    return new NetworkRecords(networkId, endpoints);
  }

  /** The A answer for a lower-case name, or undefined if this network does not know it. */
  resolve(name: string): NameAnswer | undefined {
    if (name.startsWith('tasks.')) {
      const group = this.groups.get(name.slice('tasks.'.length));
      if (group && group.ips.size > 0) return { ips: [...group.ips].sort(compareIps), shuffle: true };
    }
    const group = this.groups.get(name);
    if (group) {
      // A service whose endpoints disagree (mid-update) answers with its VIP as long as one has it.
      if (group.vips.size > 0) return { ips: [...group.vips].sort(compareIps), shuffle: false };
      return { ips: [...group.ips].sort(compareIps), shuffle: true };
    }
    const ip = this.taskIps.get(name);
    return ip === undefined ? undefined : { ips: [ip], shuffle: false };
  }

  /** The task name owning an IP, for PTR queries. */
  reverse(ip: string): string | undefined {
    return this.ptr.get(ip);
  }

  /** Every VIP on this network with its backends, sorted by VIP. */
  vipBackends(): VipBackends[] {
    return [...this.vips.values()].sort((a, b) => compareIps(a.vip, b.vip));
  }
}

/** Numeric order of dotted quads (both already checked by isIpv4). */
export function compareIps(a: string, b: string): number {
  return (parseIp(a) ?? 0) - (parseIp(b) ?? 0);
}
