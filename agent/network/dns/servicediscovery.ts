// Service discovery for tasks, Docker-style: an embedded DNS server in the host namespace that
// answers each task with the names of the networks it is attached to, fed by the peer table in
// the KV, and a VIP load balancer (nftables) inside each task's namespace.
//
// The network drivers call `serve(ip)` when a gateway address tasks reach appears (the gwbridge's,
// each bridge network's), then `attach()` once a task's namespace is wired: its queries will come
// from `clientIp`, and the nameserver to write in its resolv.conf is the served address on the
// same subnet. A task that shares no interface with the host (macvlan only) is attached with
// `inNetns`: the server answers it on 127.0.0.11 inside its own namespace (netnssockets.ts), as
// Docker's embedded resolver does. A network's peer table is watched while at least one attached
// task uses it.
import { randomInt } from 'node:crypto';
import type { Kv } from '../../../kv/kv.js';
import { silentLogger, type Logger } from '../../../util/log.js';
import type { DiscoveryAttachment, DiscoveryHook } from '../discovery.js';
import { NftLoadBalancer, type LoadBalancer } from './loadbalancer.js';
import { contains, parseCidr, parseIp } from '../ipv4.js';
import { isIpv4, type NetworkRecords, type VipBackends } from './records.js';
import { DnsResponder } from './responder.js';
import { bindInNetns, IN_NETNS_DNS_IP } from './netnssockets.js';
import { DnsServer } from './server.js';
import { readResolvConf, udpForwarder } from './upstream.js';
import { PeerTableWatch } from './watch.js';

export interface ServiceDiscoveryOptions {
  kv: Kv;
  log?: Logger;
  /** The DNS port on every served address. Default 53; 0 picks a free one (tests). */
  port?: number;
  /** Root of the peer table in the KV. Default `endpoints`. */
  prefix?: string;
  /** TTL of every answer. Default 0: a change shows in the very next query. */
  ttl?: number;
  /** Uniform in [0, 1), orders dnsrr answers. Default: crypto randomness. Tests pass a seeded one. */
  random?: () => number;
  /** Forward names we do not own to the nameservers of `resolvConfPath`. Default off. */
  forward?: boolean;
  /** The host's resolver configuration (search domains, upstream nameservers). Default /etc/resolv.conf. */
  resolvConfPath?: string;
  /** Search domains tolerated at the end of a name. Default: `search` of `resolvConfPath`. */
  searchDomains?: string[];
  /** Programs VIPs in task namespaces. Default: nftables through nsenter. */
  loadBalancer?: LoadBalancer;
  /** How long one blocking KV watch waits. Default 60 s. */
  watchTimeoutMs?: number;
  /** How long attach() waits for a network's first peer-table read. Default 5 s. */
  readyTimeoutMs?: number;
}

/** resolv.conf names no port: inside a task's own namespace the server is always on 53. */
const IN_NETNS_DNS_PORT = 53;

interface Client {
  containerId: string;
  netnsPath: string;
  clientIp: string;
  /** Network ids in the task's attachment order, each once. */
  networks: string[];
  /** The VIPs last programmed into the namespace (JSON), undefined before the first sync. */
  applied?: string;
  /** Load-balancer syncs of this client run one after another. */
  lbQueue: Promise<void>;
  detached: boolean;
}

interface WatchedNetwork {
  watch: PeerTableWatch;
  users: Set<string>;
}

export class ServiceDiscovery implements DiscoveryHook {
  private readonly log: Logger;
  private readonly server: DnsServer;
  private readonly lb: LoadBalancer;
  private readonly clients = new Map<string, Client>();
  private readonly clientsByIp = new Map<string, Client>();
  private readonly networks = new Map<string, WatchedNetwork>();
  /** Served address → its prefix length, when the caller said. */
  private readonly served = new Map<string, number | undefined>();
  private closed = false;

  constructor(private readonly opts: ServiceDiscoveryOptions) {
    this.log = opts.log ?? silentLogger;
    this.lb = opts.loadBalancer ?? new NftLoadBalancer();
    const resolvConf = readResolvConf(opts.resolvConfPath ?? '/etc/resolv.conf');
    const random = opts.random ?? (() => randomInt(2 ** 47) / 2 ** 47);
    // Never forward to ourselves (a host whose resolv.conf names a gateway we serve).
    const forwarder = opts.forward
      ? (packet: Uint8Array) => udpForwarder({ nameservers: resolvConf.nameservers.filter((ns) => !this.served.has(ns)) })(packet)
      : undefined;
    const responder = new DnsResponder({
      networksOf: (ip) => this.networksOf(ip),
      searchDomains: opts.searchDomains ?? resolvConf.search,
      ttl: opts.ttl ?? 0,
      random,
      ...(forwarder ? { forward: forwarder } : {}),
    });
    this.server = new DnsServer({
      port: opts.port ?? 53,
      log: this.log,
      handle: (packet, clientIp, transport) => responder.respond(packet, clientIp, transport),
    });
  }

  /**
   * Serves DNS on `ip`, an address of the host namespace that tasks reach (a gateway). With
   * `prefixLength`, attach() hands it to clients inside that subnet; without, to clients on the
   * same /24, or else the same /16. Resolves with the port.
   */
  async serve(ip: string, prefixLength?: number): Promise<number> {
    if (this.closed) throw new Error('service discovery is closed');
    if (!isIpv4(ip)) throw new Error(`cannot serve DNS on ${JSON.stringify(ip)}: not an IPv4 address`);
    if (prefixLength !== undefined && !(Number.isInteger(prefixLength) && prefixLength >= 1 && prefixLength <= 32)) {
      throw new Error(`cannot serve DNS on ${ip}/${prefixLength}: the prefix length must be 1-32`);
    }
    const port = await this.server.listen(ip);
    this.served.set(ip, prefixLength);
    return port;
  }

  /** Stops serving on `ip` (its gateway went away). */
  async unserve(ip: string): Promise<void> {
    this.served.delete(ip);
    await this.server.unlisten(ip);
  }

  /** The addresses served, with the port each listens on. */
  addresses(): { ip: string; port: number }[] {
    return this.server.addresses();
  }

  async attach(c: { containerId: string; netnsPath: string; clientIp: string; attachments: DiscoveryAttachment[]; inNetns?: boolean }): Promise<{ nameserver: string } | null> {
    if (this.closed) throw new Error('service discovery is closed');
    if (!isIpv4(c.clientIp)) throw new Error(`task ${c.containerId}: DNS client address ${JSON.stringify(c.clientIp)} is not an IPv4 address`);
    const client: Client = {
      containerId: c.containerId,
      netnsPath: c.netnsPath,
      clientIp: c.clientIp,
      networks: [...new Set(c.attachments.map((a) => a.networkId))],
      lbQueue: Promise.resolve(),
      detached: false,
    };
    // Attaching again (the agent re-prepares a task): the new view replaces the old one, and the
    // networks both use keep their watches.
    const previous = this.clients.get(c.containerId);
    for (const id of client.networks) this.use(id, c.containerId);
    if (previous) {
      client.applied = previous.applied;
      client.lbQueue = previous.lbQueue;
      previous.detached = true;
      this.forgetClient(previous);
      for (const id of previous.networks) if (!client.networks.includes(id)) this.release(id, c.containerId);
    }
    this.clients.set(c.containerId, client);
    const other = this.clientsByIp.get(c.clientIp);
    if (other && other.containerId !== c.containerId) {
      this.log.warn('two tasks share a DNS client address; the newer one is answered', { clientIp: c.clientIp, previous: other.containerId, containerId: c.containerId });
    }
    this.clientsByIp.set(c.clientIp, client);

    const readyTimeout = this.opts.readyTimeoutMs ?? 5_000;
    const ready = await Promise.all(client.networks.map((id) => this.networks.get(id)!.watch.ready(readyTimeout)));
    client.networks.forEach((id, i) => {
      if (!ready[i]) this.log.warn('peer table not read yet; names of this network will follow', { network: id, containerId: c.containerId });
    });
    try {
      await this.syncLoadBalancer(client);
    } catch (err) {
      await this.detach(c.containerId);
      throw new Error(`task ${c.containerId}: cannot program its service VIPs: ${(err as Error).message}`);
    }
    if (c.inNetns) {
      // Attaching again: the sockets of the earlier attach hold the address; they go first.
      await this.server.release(c.containerId);
      try {
        this.server.adopt(c.containerId, await bindInNetns(c.netnsPath, IN_NETNS_DNS_IP, IN_NETNS_DNS_PORT), c.clientIp);
      } catch (err) {
        await this.detach(c.containerId);
        throw new Error(`task ${c.containerId}: cannot answer DNS inside its namespace: ${(err as Error).message}`);
      }
      this.log.debug('task attached to service discovery', { containerId: c.containerId, clientIp: c.clientIp, nameserver: IN_NETNS_DNS_IP, networks: client.networks });
      return { nameserver: IN_NETNS_DNS_IP };
    }
    const nameserver = this.nameserverFor(c.clientIp);
    if (nameserver === undefined) {
      this.log.warn('no DNS server address on the subnet of this task; it gets no nameserver', { clientIp: c.clientIp, served: [...this.served.keys()], containerId: c.containerId });
      return null;
    }
    this.log.debug('task attached to service discovery', { containerId: c.containerId, clientIp: c.clientIp, nameserver, networks: client.networks });
    return { nameserver };
  }

  async detach(containerId: string): Promise<void> {
    const client = this.clients.get(containerId);
    if (!client) return;
    client.detached = true;
    this.clients.delete(containerId);
    this.forgetClient(client);
    for (const id of client.networks) this.release(id, containerId);
    await this.server.release(containerId);
    await client.lbQueue;
    if (client.applied !== undefined && client.applied !== '[]' && client.netnsPath !== '') {
      try {
        await this.lb.remove(client.netnsPath);
      } catch (err) {
        this.log.warn('cannot remove the VIP table of a detached task', { containerId, netns: client.netnsPath, error: err });
      }
    }
  }

  /** Stops the server and every watch. VIP tables stay: running tasks keep reaching services. */
  async close(): Promise<void> {
    this.closed = true;
    const watches = [...this.networks.values()].map((n) => n.watch.stop());
    this.networks.clear();
    await Promise.all([...watches, this.server.close(), ...[...this.clients.values()].map((c) => c.lbQueue)]);
  }

  /** The served address for a client: the longest subnet match (see serve()). */
  nameserverFor(clientIp: string): string | undefined {
    const client = parseIp(clientIp);
    if (client === undefined) return undefined;
    let best: { ip: string; bits: number } | undefined;
    for (const [ip, prefixLength] of this.served) {
      const bits = (prefixLength === undefined ? [24, 16] : [prefixLength]).find((len) => contains(parseCidr(`${ip}/${len}`)!.prefix, client));
      if (bits !== undefined && (!best || bits > best.bits)) best = { ip, bits };
    }
    return best?.ip;
  }

  private networksOf(clientIp: string): NetworkRecords[] | undefined {
    const client = this.clientsByIp.get(clientIp);
    if (!client) return undefined;
    return client.networks.map((id) => this.networks.get(id)?.watch.records).filter((r): r is NetworkRecords => r !== undefined);
  }

  private forgetClient(client: Client): void {
    if (this.clientsByIp.get(client.clientIp) === client) this.clientsByIp.delete(client.clientIp);
  }

  private use(networkId: string, containerId: string): void {
    let network = this.networks.get(networkId);
    if (!network) {
      const watch = new PeerTableWatch({
        kv: this.opts.kv,
        networkId,
        prefix: this.opts.prefix ?? 'endpoints',
        timeoutMs: this.opts.watchTimeoutMs ?? 60_000,
        log: this.log,
        onChange: () => this.networkChanged(networkId),
      });
      network = { watch, users: new Set() };
      this.networks.set(networkId, network);
      watch.start();
    }
    network.users.add(containerId);
  }

  /** Drops the watch once no attached task uses the network. */
  private release(networkId: string, containerId: string): void {
    const network = this.networks.get(networkId);
    if (!network) return;
    network.users.delete(containerId);
    if (network.users.size > 0) return;
    this.networks.delete(networkId);
    network.watch.stop().catch((err: unknown) => this.log.warn('stopping a peer table watch failed', { network: networkId, error: err }));
  }

  private networkChanged(networkId: string): void {
    const users = this.networks.get(networkId)?.users ?? new Set<string>();
    for (const containerId of users) {
      const client = this.clients.get(containerId);
      if (!client) continue;
      this.syncLoadBalancer(client).catch((err: unknown) =>
        this.log.warn('cannot update the VIP table of a task', { containerId, netns: client.netnsPath, network: networkId, error: err }),
      );
    }
  }

  /**
   * Queues a sync of the client's VIP table with the records now known. Syncs of one client never
   * overlap; a sync that finds the table already right does nothing, so a burst of changes costs
   * one nft run.
   */
  private syncLoadBalancer(client: Client): Promise<void> {
    const run = client.lbQueue.then(async () => {
      if (client.detached || client.netnsPath === '') return;
      const vips = this.vipsOf(client);
      const wanted = JSON.stringify(vips);
      if (wanted === client.applied) return;
      // The first sync runs even with no VIP: a table left by an earlier agent must go.
      await this.lb.apply(client.netnsPath, vips);
      client.applied = wanted;
    });
    client.lbQueue = run.catch(() => {});
    return run;
  }

  /** Every VIP of the client's networks (the first network that has a VIP decides its backends). */
  private vipsOf(client: Client): VipBackends[] {
    const byVip = new Map<string, VipBackends>();
    for (const id of client.networks) {
      for (const v of this.networks.get(id)?.watch.records.vipBackends() ?? []) if (!byVip.has(v.vip)) byVip.set(v.vip, v);
    }
    return [...byVip.values()];
  }
}
