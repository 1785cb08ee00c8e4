// The network drivers behind the worker's NetworkAttacher: each task gets a namespace of its own,
// and per attachment an interface (eth0, eth1… in attachment order) from its network's driver —
// overlay (VXLAN, see overlay.ts), bridge or macvlan. Overlay tasks get one more interface into
// the host's gateway bridge for their way out. Published host-mode ports and NAT are nftables
// rules in the host namespace, and every endpoint is published in the KV's peer table.
//
// Everything built is recorded in a state file before it is built, so an agent that restarts
// (or a prepare that failed half-way) finds it and releases it; shared pieces (a network's
// sandbox or bridge, the gateway bridge) are made by the first task that needs them and removed
// with the last. Changes are serialized: one prepare, release or peer update at a time.
import type { Kv, KvEntry } from '../../kv/kv.js';
import { Netlink } from '../../netlink/index.js';
import type { PortConfig, Task } from '../../proto/gen/objects.js';
import { silentLogger, type Logger } from '../../util/log.js';
import type { DnsConfig } from '../runtime/runtime.js';
import { taskName } from '../worker/naming.js';
import type { NetworkAttacher, NetworkSetup } from '../worker/network.js';
import { attachVeth, chooseGatewaySubnet, ensureBridge, removeBridge } from './bridge.js';
import type { DiscoveryHook } from './discovery.js';
import { createNetns, deleteNetns, enableForwarding, enableRouteLocalnet, ignoreGone, netnsExists, netnsPathOf, nftApply, withNetlink } from './host.js';
import { formatIp, parseCidr, stripPrefix } from './ipv4.js';
import { attachMacvlan, ensureParent, macvlanParent } from './macvlan.js';
import { GW_BRIDGE, Names } from './names.js';
import { renderRuleset, type PortRule, type RulesetPlan } from './nftables.js';
import { attachToSandbox, buildSandbox, emptySandbox, OverlayPeers, sandboxIntact, type LocalPort } from './overlay.js';
import { EndpointPublisher, encodePeer, isServing, peerKey, PeerWatcher, type PeerRecord } from './peers.js';
import { describeNetwork, planEndpoints, planPorts, prefixOf, type NetworkInfo, type PlannedEndpoint, type PlannedPort } from './spec.js';
import { StateFile, emptyState, type AttacherState, type EndpointRecord, type NetworkRecord, type TaskRecord } from './state.js';

export interface DriverNetworkAttacherOptions {
  kv: Kv;
  nodeId: string;
  /** This host's underlay address: the VXLAN devices' local end, and what peers send our endpoints' frames to. */
  vtep: string;
  /** Where the state that must survive an agent restart is kept. */
  stateDir: string;
  /** The namespace to treat as the host's (a path); default: the agent's own. Lets tests run two hosts in one process. */
  hostNetns?: string;
  log?: Logger;
  /** Service discovery, told about each wired task; its nameserver goes into the task's resolv.conf. */
  discovery?: DiscoveryHook;
  /** Namespace names start with it; default "shoal-" (task namespaces are NetnsNetworkAttacher's). */
  netnsPrefix?: string;
  /** TTL of the KV session holding this host's peer-table entries; default 15 s. */
  sessionTtlMs?: number;
  /** How long one blocking watch of the peer table waits; default 60 s. */
  watchTimeoutMs?: number;
}

const DYNAMIC_PORTS = { min: 30000, max: 32767 };

/** One change at a time: prepare, release and peer updates all touch shared devices and the state file. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

export class DriverNetworkAttacher implements NetworkAttacher {
  private readonly names: Names;
  private readonly file: StateFile;
  private readonly log: Logger;
  private readonly lock = new Mutex();
  private readonly publisher: EndpointPublisher;
  private readonly overlays = new Map<string, { peers: OverlayPeers; watcher: PeerWatcher }>();
  private readonly stopping = new Set<Promise<void>>();
  private state: AttacherState = emptyState();
  private hostClient: Netlink | undefined;
  private started: Promise<void> | undefined;
  private appliedRules: string | undefined;
  private forwarding = false;
  /** Bridges given route_localnet in this run. */
  private readonly routeLocalnet = new Set<string>();
  private closed = false;

  constructor(private readonly opts: DriverNetworkAttacherOptions) {
    this.names = new Names(opts.netnsPrefix ?? 'shoal-', opts.nodeId);
    this.file = new StateFile(opts.stateDir);
    this.log = opts.log ?? silentLogger;
    this.publisher = new EndpointPublisher({
      kv: opts.kv,
      nodeId: opts.nodeId,
      ttlMs: opts.sessionTtlMs ?? 15_000,
      log: this.log,
      current: () => this.publishedEndpoints(),
      onSession: async (id) => {
        this.state.session = id;
        await this.save();
      },
      exclusive: (fn) => this.lock.run(fn),
      onRenew: () => this.lock.run(() => this.retryStaleKeys()),
    });
  }

  /** The KV session holding this host's peer-table entries, if any. */
  get sessionId(): string | undefined {
    return this.publisher.sessionId;
  }

  /**
   * Loads the state and takes over what an earlier agent built: peer watches for the sandboxes,
   * the nftables rules, the KV session, service discovery of running tasks. prepare() and
   * release() call it themselves; calling it early starts the peer watches at agent start.
   */
  start(): Promise<void> {
    this.started ??= this.lock.run(() => this.resume());
    return this.started;
  }

  /** Stops watching and renewing; everything built stays for the next agent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.started?.catch(() => undefined);
    await this.lock.run(async () => {
      for (const id of [...this.overlays.keys()]) this.stopOverlayWatch(id);
    });
    await Promise.all(this.stopping);
    await this.publisher.close();
    this.hostClient?.close();
    this.hostClient = undefined;
  }

  async prepare(task: Task, containerId: string): Promise<NetworkSetup> {
    await this.start();
    return this.lock.run(() => this.prepareTask(task, containerId));
  }

  async release(task: Task, containerId: string): Promise<void> {
    await this.start();
    await this.lock.run(async () => {
      const record = this.state.tasks[containerId];
      if (record) {
        await this.unwind(containerId, record, false);
        return;
      }
      // Never wired by us (or released already): a namespace by its name may still be left.
      await deleteNetns(this.names.taskNetns(containerId));
      for (const a of task.networks) await this.withdraw(peerKey(a.networkId, task.id));
    });
  }

  /**
   * Says whether service discovery should send the task traffic: rewrites the `serving` field of
   * its peer-table records (their L2 part stays as it is). True when some record changed from
   * serving to not serving, i.e. other tasks may still be sending it traffic that will now drain.
   */
  async setServing(task: Task, containerId: string, serving: boolean): Promise<boolean> {
    await this.start();
    return this.lock.run(async () => {
      const record = this.state.tasks[containerId];
      if (!record?.complete || record.taskId !== task.id) return false;
      const changed = record.endpoints.filter((ep) => isServing(JSON.parse(ep.kvValue) as PeerRecord) !== serving);
      if (changed.length === 0) return false;
      for (const ep of changed) ep.kvValue = encodePeer({ ...(JSON.parse(ep.kvValue) as PeerRecord), serving });
      await this.save();
      for (const ep of changed) await this.publisher.publish(ep.kvKey, ep.kvValue);
      this.log.info(serving ? 'task serving' : 'task withdrawn from service discovery', { task: task.id, networks: changed.map((ep) => ep.networkId) });
      return !serving;
    });
  }

  /** Releases every task this attacher wired (leaving the cluster): nothing of ours remains after it. */
  async releaseAll(): Promise<void> {
    await this.start();
    await this.lock.run(async () => {
      for (const [cid, record] of Object.entries(this.state.tasks)) await this.unwind(cid, record, false);
      await this.applyRules();
    });
  }

  // ---- prepare ----

  private async prepareTask(task: Task, cid: string): Promise<NetworkSetup> {
    if (this.closed) throw new Error(`prepare network of task ${task.id}: the network attacher is closed`);
    const netns = this.names.taskNetns(cid);
    const existing = this.state.tasks[cid];
    if (existing?.complete && existing.setup && (await netnsExists(netns))) {
      // Wired already (a repeated prepare, or one after an agent restart): heal its KV entries only.
      for (const ep of existing.endpoints) await this.publisher.publish(ep.kvKey, ep.kvValue);
      return existing.ports.length > 0 ? { ...existing.setup, hostPorts: existing.ports.map(boundPort) } : existing.setup;
    }
    if (existing) await this.unwind(cid, existing, true);

    const plan = planEndpoints(task);
    const ports = planPorts(task);
    const record: TaskRecord = { taskId: task.id, netns, complete: false, endpoints: [], ports: [] };
    this.state.tasks[cid] = record;
    await this.save();
    try {
      if (await netnsExists(netns)) await clearNetns(netns);
      else await createNetns(netns);
      const setup = await withNetlink(netns, (tn) => this.wireTask(task, cid, record, plan, ports, tn));
      record.setup = setup;
      record.complete = true;
      await this.save();
      this.log.info('task network prepared', { task: task.id, netns, endpoints: record.endpoints.map((e) => `${e.ifname}=${e.cidr}`), gateway: record.gateway?.ip });
      return setup;
    } catch (err) {
      await this.unwind(cid, record, false).catch((e: unknown) => this.log.warn('undoing a failed network prepare failed', { task: task.id, err: String(e) }));
      throw err;
    }
  }

  private async wireTask(task: Task, cid: string, record: TaskRecord, plan: PlannedEndpoint[], ports: PlannedPort[], tn: Netlink): Promise<NetworkSetup> {
    for (const ep of plan) {
      const net = await this.ensureNetwork(ep.network);
      const rec: EndpointRecord = {
        networkId: ep.network.id, driver: ep.network.driver, ifname: ep.ifname, cidr: ep.cidr, mac: ep.mac, subnetIndex: ep.subnetIndex,
        ...(ep.network.driver === 'macvlan' ? {} : { outerLink: this.names.endpointLink(cid, ep.index) }),
        kvKey: peerKey(ep.network.id, task.id), kvValue: encodePeer(this.peerRecord(task, ep)),
      };
      // Recorded before it is built: undoing a half-built task finds the outer end by this.
      record.endpoints.push(rec);
      await this.save();
      try {
        await this.wireEndpoint(net, ep, rec, record.netns, tn);
      } catch (err) {
        throw new Error(`task ${task.id}: attach to ${ep.network.driver} network ${describeNetwork(ep.network)} as ${ep.ifname} ${ep.cidr}: ${(err as Error).message}`);
      }
    }

    // The default route: a bridge or macvlan network's gateway, else the gateway bridge for overlays.
    const provider = plan.find((ep) => ep.network.driver !== 'overlay' && !ep.network.internal && ep.network.subnets[ep.subnetIndex]!.gateway);
    if (provider) {
      const gateway = provider.network.subnets[provider.subnetIndex]!.gateway!;
      await tn.addRoute({ dst: 'default', gateway, dev: provider.ifname });
    } else if (plan.some((ep) => ep.network.driver === 'overlay' && !ep.network.internal)) {
      await this.wireGateway(cid, record, plan.length, tn);
    }

    record.ports = this.portRules(task, plan, record, ports);
    await this.save();
    await this.applyRules();

    for (const ep of record.endpoints) await this.publisher.publish(ep.kvKey, ep.kvValue);

    const setup: NetworkSetup = { netnsPath: netnsPathOf(record.netns) };
    if (plan[0]) setup.ip = plan[0].ip;
    if (record.ports.length > 0) setup.hostPorts = record.ports.map(boundPort);
    const client = dnsClient(record);
    if (this.opts.discovery && client) {
      const answer = await this.opts.discovery.attach({
        containerId: cid, netnsPath: netnsPathOf(record.netns), ...client, attachments: plan.map((ep) => ({ networkId: ep.network.id, ip: ep.ip })),
      }).catch((err: unknown) => {
        throw new Error(`task ${task.id}: register with service discovery: ${(err as Error).message}`);
      });
      if (answer) setup.dns = dnsConfig(answer.nameserver);
    }
    return setup;
  }

  private async wireEndpoint(net: NetworkRecord, ep: PlannedEndpoint, rec: EndpointRecord, netns: string, tn: Netlink): Promise<void> {
    const host = await this.host();
    switch (ep.network.driver) {
      case 'overlay':
        await attachToSandbox(net.sandbox!, netns, { outerLink: rec.outerLink!, subnetIndex: ep.subnetIndex, ifname: ep.ifname, mac: ep.mac });
        break;
      case 'bridge':
        await attachVeth(host, { outerLink: rec.outerLink!, bridge: net.bridge!, taskNetns: netns, ifname: ep.ifname, mac: ep.mac });
        break;
      case 'macvlan':
        await attachMacvlan(host, macvlanParent(ep.network), { taskNetns: netns, ifname: ep.ifname, mac: ep.mac });
        break;
    }
    await tn.addAddress(ep.ifname, ep.cidr);
    await tn.setUp(ep.ifname);
    if (ep.network.driver === 'overlay') await this.overlays.get(ep.network.id)?.peers.programPort({ netns, ifname: ep.ifname });
  }

  /** The task's veth into the gateway bridge, its address there and its default route through it. */
  private async wireGateway(cid: string, record: TaskRecord, index: number, tn: Netlink): Promise<void> {
    const gateway = await this.ensureGatewayBridge();
    const subnet = parseCidr(gateway.address)!;
    const taken = new Set(Object.values(this.state.tasks).flatMap((t) => (t.gateway ? [parseCidr(t.gateway.ip)!.ip] : [])));
    let ip = subnet.prefix.base + 2;
    while (taken.has(ip)) ip++;
    if (ip >= subnet.prefix.base + 2 ** (32 - subnet.prefix.bits) - 1) throw new Error(`gateway bridge ${GW_BRIDGE}: no free address left in ${gateway.subnet}`);
    record.gateway = { ip: `${formatIp(ip)}/${subnet.prefix.bits}`, ifname: Names.taskInterface(index), outerLink: this.names.gatewayLink(cid) };
    await this.save();
    const host = await this.host();
    await attachVeth(host, { outerLink: record.gateway.outerLink, bridge: GW_BRIDGE, taskNetns: record.netns, ifname: record.gateway.ifname });
    await tn.addAddress(record.gateway.ifname, record.gateway.ip);
    await tn.setUp(record.gateway.ifname);
    await tn.addRoute({ dst: 'default', gateway: formatIp(subnet.ip), dev: record.gateway.ifname });
  }

  private async ensureGatewayBridge(): Promise<{ subnet: string; address: string }> {
    const host = await this.host();
    if (!this.state.gateway) {
      const inUse = Object.values(this.state.networks).flatMap((n) => n.info.subnets.map(prefixOf));
      this.state.gateway = await chooseGatewaySubnet(host, inUse);
      await this.save();
    }
    await ensureBridge(host, GW_BRIDGE, this.state.gateway.address);
    await this.serveDns(this.state.gateway.address);
    await this.enableForwarding();
    await this.enableRouteLocalnet(GW_BRIDGE);
    return this.state.gateway;
  }

  /** The network's shared pieces on this host: an overlay's sandbox, a bridge, a macvlan parent. */
  private async ensureNetwork(info: NetworkInfo): Promise<NetworkRecord> {
    let net = this.state.networks[info.id];
    if (!net) {
      net = { info };
      this.state.networks[info.id] = net;
      await this.save();
    }
    const label = `${info.driver} network ${describeNetwork(info)}`;
    const host = await this.host();
    try {
      switch (info.driver) {
        case 'overlay': {
          if (this.overlays.has(info.id)) break;
          const sandbox = this.names.sandboxNetns(info.id);
          net.sandbox = sandbox;
          await this.save();
          if (!(await netnsExists(sandbox))) await createNetns(sandbox);
          else if (!(await sandboxIntact(sandbox, net.info))) await emptySandbox(sandbox, net.info);
          await buildSandbox(host, sandbox, net.info, this.opts.vtep);
          this.watchOverlay(net);
          break;
        }
        case 'bridge': {
          net.bridge = Names.bridge(info.id);
          await this.save();
          await ensureBridge(host, net.bridge, undefined);
          for (const s of info.subnets) {
            if (s.gateway) {
              await ensureBridge(host, net.bridge, `${s.gateway}/${prefixOf(s).bits}`);
              await this.serveDns(`${s.gateway}/${prefixOf(s).bits}`);
            }
          }
          if (!info.internal) {
            await this.enableForwarding();
            await this.enableRouteLocalnet(net.bridge);
          }
          break;
        }
        case 'macvlan': {
          const created = await ensureParent(host, info, macvlanParent(info));
          if (created) {
            net.createdParent = created;
            await this.save();
          }
          break;
        }
      }
    } catch (err) {
      throw new Error(`set up ${label}: ${(err as Error).message}`);
    }
    return net;
  }

  // ---- published ports ----

  private portRules(task: Task, plan: PlannedEndpoint[], record: TaskRecord, ports: PlannedPort[]): PortRule[] {
    if (ports.length === 0) return [];
    const target = plan.find((ep) => ep.network.driver === 'bridge')?.ip ?? (record.gateway ? stripPrefix(record.gateway.ip) : undefined);
    if (!target) throw new Error(`task ${task.id}: host-mode published ports need a bridge network or an overlay's gateway bridge to reach the task through`);
    const held = new Map<string, string>();
    for (const t of Object.values(this.state.tasks)) for (const p of t.ports) held.set(`${p.protocol}/${p.published}`, t.taskId);
    return ports.map((p) => {
      let published = p.published;
      if (published === 0) {
        published = DYNAMIC_PORTS.min;
        while (held.has(`${p.protocol}/${published}`) && published <= DYNAMIC_PORTS.max) published++;
        if (published > DYNAMIC_PORTS.max) throw new Error(`task ${task.id}: no free ${p.protocol} host port left in ${DYNAMIC_PORTS.min}-${DYNAMIC_PORTS.max}`);
      }
      const holder = held.get(`${p.protocol}/${published}`);
      if (holder !== undefined) throw new Error(`task ${task.id}: host port ${published}/${p.protocol} is already published on this node by task ${holder}`);
      held.set(`${p.protocol}/${published}`, task.id);
      return { protocol: p.protocol, published, ip: target, target: p.target };
    });
  }

  /** Loads the nftables rules the state calls for, when they differ from what was loaded last. */
  private async applyRules(): Promise<void> {
    const plan: RulesetPlan = { bridges: [], ports: [] };
    if (this.state.gateway) plan.gatewaySubnet = this.state.gateway.subnet;
    for (const net of Object.values(this.state.networks)) {
      if (!net.bridge) continue;
      for (const s of net.info.subnets) plan.bridges.push({ name: net.bridge, subnet: s.subnet, internal: net.info.internal });
    }
    for (const t of Object.values(this.state.tasks)) plan.ports.push(...t.ports);
    const script = renderRuleset(plan);
    if (script === this.appliedRules) return;
    try {
      await nftApply(this.opts.hostNetns, script);
    } catch (err) {
      throw new Error(`load the nftables table shoal in ${this.opts.hostNetns ?? 'the host namespace'}: ${(err as Error).message}`);
    }
    this.appliedRules = script;
  }

  // ---- release ----

  /**
   * Takes apart what a task record says was built (anything already gone is fine), then the shared
   * pieces no other task uses. keepNetns: empty the task's namespace but keep it, to wire it again.
   */
  private async unwind(cid: string, record: TaskRecord, keepNetns: boolean): Promise<void> {
    await this.opts.discovery?.detach(cid).catch((err: unknown) => this.log.warn('service discovery detach failed', { task: record.taskId, err: String(err) }));
    for (const ep of record.endpoints) await this.withdraw(ep.kvKey);
    const host = await this.host();
    for (const ep of record.endpoints) {
      if (!ep.outerLink) continue;
      const sandbox = this.state.networks[ep.networkId]?.sandbox;
      if (ep.driver === 'overlay') {
        if (sandbox && (await netnsExists(sandbox))) await withNetlink(sandbox, (sb) => ignoreGone(sb.deleteLink(ep.outerLink!)));
      } else {
        await ignoreGone(host.deleteLink(ep.outerLink));
      }
    }
    if (record.gateway) await ignoreGone(host.deleteLink(record.gateway.outerLink));
    if (keepNetns) {
      if (await netnsExists(record.netns)) await clearNetns(record.netns);
    } else {
      await deleteNetns(record.netns);
    }
    delete this.state.tasks[cid];
    await this.save();

    const tasks = Object.values(this.state.tasks);
    for (const id of new Set(record.endpoints.map((e) => e.networkId))) {
      if (!tasks.some((t) => t.endpoints.some((e) => e.networkId === id))) await this.removeNetwork(id);
    }
    if (this.state.gateway && !tasks.some((t) => t.gateway)) {
      await this.opts.discovery?.unserve?.(stripPrefix(this.state.gateway.address));
      await removeBridge(host, GW_BRIDGE);
      this.routeLocalnet.delete(GW_BRIDGE);
      delete this.state.gateway;
      await this.save();
    }
    await this.applyRules();
    await this.publisher.idle();
    if (!keepNetns) this.log.info('task network released', { task: record.taskId, netns: record.netns });
  }

  private async removeNetwork(id: string): Promise<void> {
    const net = this.state.networks[id];
    if (!net) return;
    const host = await this.host();
    this.stopOverlayWatch(id);
    if (net.sandbox && (await netnsExists(net.sandbox))) {
      await emptySandbox(net.sandbox, net.info);
      await deleteNetns(net.sandbox);
    }
    if (net.bridge) {
      for (const s of net.info.subnets) if (s.gateway) await this.opts.discovery?.unserve?.(s.gateway);
      await removeBridge(host, net.bridge);
      this.routeLocalnet.delete(net.bridge);
    }
    if (net.createdParent) await ignoreGone(host.deleteLink(net.createdParent));
    delete this.state.networks[id];
    await this.save();
    this.log.info('network removed from this host', { network: describeNetwork(net.info), driver: net.info.driver });
  }

  // ---- the peer table ----

  private peerRecord(task: Task, ep: PlannedEndpoint): PeerRecord {
    const rec: PeerRecord = {
      ip: ep.ip, mac: ep.mac, node: this.opts.nodeId, vtep: this.opts.vtep, task: task.id, taskName: taskName(task),
      serviceId: task.serviceId, serviceName: task.serviceName, slot: task.slot, aliases: ep.aliases,
      endpointMode: task.endpoint?.spec?.mode === 'DNSRR' ? 'dnsrr' : 'vip', driver: ep.network.driver,
      // Reachable from now on, but not given traffic until the worker says the task serves.
      serving: false,
    };
    if (ep.vip) rec.vip = stripPrefix(ep.vip);
    return rec;
  }

  private publishedEndpoints(): Array<[string, string]> {
    return Object.values(this.state.tasks)
      .filter((t) => t.complete)
      .flatMap((t) => t.endpoints.map((e): [string, string] => [e.kvKey, e.kvValue]));
  }

  /** Deletes a peer-table key; if the KV cannot be reached, remembers it for the next renewal. */
  private async withdraw(key: string): Promise<void> {
    try {
      await this.publisher.withdraw(key);
    } catch (err) {
      this.log.warn('deleting a peer-table entry failed; will retry', { key, err: String(err) });
      if (!this.state.staleKeys.includes(key)) this.state.staleKeys.push(key);
      await this.save();
    }
  }

  private async retryStaleKeys(): Promise<void> {
    if (this.state.staleKeys.length === 0) return;
    const left: string[] = [];
    for (const key of this.state.staleKeys) {
      // A key that was published again meanwhile is live, not stale.
      if (this.publishedEndpoints().some(([k]) => k === key)) continue;
      await this.publisher.withdraw(key).catch(() => left.push(key));
    }
    this.state.staleKeys = left;
    await this.save();
  }

  private watchOverlay(net: NetworkRecord): void {
    const id = net.info.id;
    const peers = new OverlayPeers(net.sandbox!, net.info, { nodeId: this.opts.nodeId, vtep: this.opts.vtep }, this.log);
    const watcher: PeerWatcher = new PeerWatcher(
      this.opts.kv,
      id,
      (entries) => this.lock.run(() => this.onPeers(id, watcher, entries)),
      this.log,
      this.opts.watchTimeoutMs,
    );
    this.overlays.set(id, { peers, watcher });
  }

  /** Stops a network's peer watch without waiting for it (its loop may be queued on the lock we hold). */
  private stopOverlayWatch(id: string): void {
    const entry = this.overlays.get(id);
    if (!entry) return;
    this.overlays.delete(id);
    const stopped = entry.watcher.stop();
    this.stopping.add(stopped);
    void stopped.finally(() => this.stopping.delete(stopped));
  }

  private async onPeers(id: string, watcher: PeerWatcher, entries: KvEntry[]): Promise<void> {
    const entry = this.overlays.get(id);
    if (!entry || entry.watcher !== watcher) return; // the sandbox went meanwhile
    const locals: LocalPort[] = [];
    for (const t of Object.values(this.state.tasks)) {
      for (const e of t.endpoints) if (e.networkId === id) locals.push({ netns: t.netns, ifname: e.ifname });
    }
    await entry.peers.apply(entries, locals);
  }

  // ---- restart ----

  private async resume(): Promise<void> {
    this.state = await this.file.load();
    for (const [cid, record] of Object.entries(this.state.tasks)) {
      if (!(await netnsExists(record.netns))) {
        this.log.info('task namespace gone since the last run; releasing its network', { task: record.taskId, netns: record.netns });
        await this.unwind(cid, record, false);
      }
    }
    for (const net of Object.values(this.state.networks)) {
      const used = Object.values(this.state.tasks).some((t) => t.endpoints.some((e) => e.networkId === net.info.id));
      if (!used) await this.removeNetwork(net.info.id);
      else if (net.sandbox && (await netnsExists(net.sandbox))) this.watchOverlay(net);
      else if (net.sandbox) this.log.warn('the sandbox of an overlay network in use is gone; its tasks are cut off until they are prepared again', { network: describeNetwork(net.info), sandbox: net.sandbox });
    }
    await this.applyRules();
    this.publisher.resume(this.state.session);
    if (this.opts.discovery) {
      // The DNS server listens again on the gateways that survived the restart, before re-attaching.
      if (this.state.gateway) await this.serveDns(this.state.gateway.address);
      for (const net of Object.values(this.state.networks)) {
        if (net.bridge) for (const s of net.info.subnets) if (s.gateway) await this.serveDns(`${s.gateway}/${prefixOf(s).bits}`);
      }
      for (const [cid, record] of Object.entries(this.state.tasks)) {
        if (!record.complete || !record.setup) continue;
        const client = dnsClient(record);
        if (!client) continue;
        try {
          const answer = await this.opts.discovery.attach({
            containerId: cid, netnsPath: netnsPathOf(record.netns), ...client,
            attachments: record.endpoints.map((e) => ({ networkId: e.networkId, ip: stripPrefix(e.cidr) })),
          });
          if (answer) record.setup.dns = dnsConfig(answer.nameserver);
        } catch (err) {
          this.log.warn('service discovery attach after restart failed', { task: record.taskId, err: String(err) });
        }
      }
      await this.save();
    }
  }

  // ---- plumbing ----

  /** Service discovery answers on a gateway address ("172.18.0.1/16") of the host namespace. */
  private async serveDns(cidr: string): Promise<void> {
    if (!this.opts.discovery?.serve) return;
    const [ip, bits] = cidr.split('/');
    await this.opts.discovery.serve(ip!, Number(bits));
  }

  private async host(): Promise<Netlink> {
    this.hostClient ??= await Netlink.open(this.opts.hostNetns === undefined ? {} : { netns: this.opts.hostNetns });
    return this.hostClient;
  }

  /** Once per agent run: routing for NAT and published ports (nothing turns it off again, as with Docker). */
  private async enableForwarding(): Promise<void> {
    if (this.forwarding) return;
    await enableForwarding(this.opts.hostNetns);
    this.forwarding = true;
  }

  /** Once per bridge and agent run (a bridge made again after its removal gets it again). */
  private async enableRouteLocalnet(bridge: string): Promise<void> {
    if (this.routeLocalnet.has(bridge)) return;
    await enableRouteLocalnet(this.opts.hostNetns, bridge);
    this.routeLocalnet.add(bridge);
  }

  private async save(): Promise<void> {
    await this.file.save(this.state);
  }
}

/**
 * Where a task's DNS queries come from: its gateway-bridge address, else its bridge network's; a
 * task with neither (macvlan only, an internal overlay) is answered inside its own namespace.
 */
function dnsClient(record: TaskRecord): { clientIp: string; inNetns: boolean } | undefined {
  if (record.gateway) return { clientIp: stripPrefix(record.gateway.ip), inNetns: false };
  const bridge = record.endpoints.find((e) => e.driver === 'bridge');
  if (bridge) return { clientIp: stripPrefix(bridge.cidr), inNetns: false };
  const first = record.endpoints[0];
  return first ? { clientIp: stripPrefix(first.cidr), inNetns: true } : undefined;
}

/** A port as bound, for the task status (Docker's PortStatus): the published port is the one chosen. */
function boundPort(p: PortRule): PortConfig {
  return { name: '', protocol: p.protocol.toUpperCase() as PortConfig['protocol'], targetPort: p.target, publishedPort: p.published, publishMode: 'HOST' };
}

function dnsConfig(nameserver: string): DnsConfig {
  // Docker's swarm containers resolve single-label service names through the embedded server first.
  return { nameservers: [nameserver], options: ['ndots:0'] };
}

/** Deletes every link but loopback in a namespace (a half-wired task's leftovers). */
async function clearNetns(netns: string): Promise<void> {
  await withNetlink(netns, async (nl) => {
    for (const link of await nl.listLinks()) {
      if (link.name !== 'lo') await ignoreGone(nl.deleteLink(link.index));
    }
  });
}
