// The hook through which the network drivers tell service discovery (agent/network/dns/) about a
// task once its namespace is wired, and again when it goes. The DNS server listens in the host
// namespace on the gateway bridge's gateway (172.18.0.1) and on each bridge network's gateway, so
// tasks reach it over an interface they already have; for a task with no such interface (macvlan
// only) it answers on 127.0.0.11 inside the task's namespace.

export interface DiscoveryAttachment { networkId: string; ip: string /* no prefix */; }

export interface DiscoveryHook {
  /**
   * A task's netns is wired: `clientIp` is the address its DNS queries come from (its gwbridge or
   * bridge address); `nameserver` is where resolv.conf must point. Returns the nameserver IP to
   * write in its resolv.conf, or null for no DNS. `inNetns`: the task shares no interface with the
   * host (macvlan only), so the server answers inside its namespace, on 127.0.0.11; `clientIp`
   * then only names the task (one of its addresses).
   */
  attach(c: { containerId: string; netnsPath: string; clientIp: string; attachments: DiscoveryAttachment[]; inNetns?: boolean }): Promise<{ nameserver: string } | null>;
  detach(containerId: string): Promise<void>;
  /** A gateway address ("172.18.0.1/16") now exists in the host namespace: answer queries on it. */
  serve?(ip: string, prefixLength: number): Promise<unknown>;
  /** The gateway address is going away with its bridge. */
  unserve?(ip: string): Promise<void>;
}
