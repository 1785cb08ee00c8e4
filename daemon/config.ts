// shoald's configuration: flags with Docker's names where dockerd has one.
import type { FlagSpec, FlagValues } from '../util/flags.js';
import { UsageError } from '../util/flags.js';
import type { Level } from '../util/log.js';
import { parseRedisUrl } from '../kv/redis.js';

export interface DaemonConfig {
  dataRoot: string;
  /** The local API: a unix socket path. */
  socketPath: string;
  /** host:port for the cluster's gRPC (managers and agents); used once the node is in a swarm. */
  listenAddr: string;
  advertiseAddr: string;
  /** host:port of the Prometheus endpoint; empty turns it off. */
  metricsAddr: string;
  logLevel: Level;
  /** Registries (host:port) pulled from over plain HTTP or unverified TLS, like dockerd's option. */
  insecureRegistries: string[];
  /**
   * The KV of a cluster this daemon founds (`swarm init`): '' keeps it in the managers' Raft log,
   * a redis:// url puts it in that Redis server (recorded in ClusterSpec.kv_url for every agent).
   */
  kvUrl: string;
  /** cgroup parent of every container (dockerd's --cgroup-parent). */
  cgroupParent: string;
  /** Prefix of the network namespaces the agent names (tasks, overlay sandboxes) under /run/netns. */
  netnsPrefix: string;
}

export const daemonFlags: FlagSpec[] = [
  { name: 'version', short: 'v', kind: 'bool', description: 'Print version information and quit' },
  { name: 'data-root', kind: 'string', default: '/var/lib/shoal', description: 'Root directory of persistent state' },
  { name: 'host', short: 'H', kind: 'string', default: 'unix:///run/shoal/shoal.sock', description: 'Local API socket (unix only: remote clients use mutual TLS on the listen address)' },
  { name: 'listen-addr', kind: 'string', default: '0.0.0.0:2377', description: 'Cluster listen address (host:port)' },
  { name: 'advertise-addr', kind: 'string', default: '', description: 'Address other nodes reach this one at (host:port)' },
  { name: 'metrics-addr', kind: 'string', default: '127.0.0.1:9323', description: 'Address of the Prometheus /metrics endpoint ("" to disable)' },
  { name: 'insecure-registry', kind: 'list', description: 'Registry (host:port) to pull from without TLS verification (repeatable)' },
  { name: 'cgroup-parent', kind: 'string', default: '/shoal', description: 'Parent cgroup of all containers' },
  { name: 'netns-prefix', kind: 'string', default: 'shoal-', description: 'Prefix of the network namespaces this daemon creates in /run/netns (several daemons on one machine need distinct ones)' },
  { name: 'log-level', short: 'l', kind: 'string', default: 'info', description: 'Log level (debug, info, warn, error)' },
  { name: 'kv', kind: 'string', default: '', description: 'KV of a swarm this node founds: redis://HOST:PORT[/DB][?prefix=P] ("" = embedded in the managers)' },
];

const LEVELS: Level[] = ['debug', 'info', 'warn', 'error'];

export function parseHostPort(value: string, flag: string): { host: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]*):(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 0 || port > 65535) throw new UsageError(`invalid ${flag} "${value}": expected host:port`);
  return { host: m[1]!.replace(/^\[|\]$/g, '') || '0.0.0.0', port };
}

export function configFromFlags(flags: FlagValues): DaemonConfig {
  const host = String(flags.host);
  if (!host.startsWith('unix://')) throw new UsageError(`invalid --host "${host}": shoald serves its local API on a unix socket (unix:///path)`);
  const logLevel = String(flags['log-level']) as Level;
  if (!LEVELS.includes(logLevel)) throw new UsageError(`invalid --log-level "${logLevel}": expected one of ${LEVELS.join(', ')}`);
  const listenAddr = String(flags['listen-addr']);
  parseHostPort(listenAddr, '--listen-addr');
  const advertiseAddr = String(flags['advertise-addr']);
  if (advertiseAddr) parseHostPort(advertiseAddr, '--advertise-addr');
  const metricsAddr = String(flags['metrics-addr']);
  if (metricsAddr) parseHostPort(metricsAddr, '--metrics-addr');
  const insecureRegistries = (flags['insecure-registry'] as string[] | undefined) ?? [];
  for (const r of insecureRegistries) if (!/^[a-zA-Z0-9.-]+(:\d+)?$/.test(r)) throw new UsageError(`invalid --insecure-registry "${r}": expected host or host:port`);
  const kvUrl = String(flags.kv ?? '');
  if (kvUrl) {
    try {
      parseRedisUrl(kvUrl);
    } catch (err) {
      throw new UsageError(`invalid --kv: ${(err as Error).message}`);
    }
  }
  const cgroupParent = String(flags['cgroup-parent']);
  if (!/^\/[A-Za-z0-9_./-]*$/.test(cgroupParent) || cgroupParent.includes('..')) throw new UsageError(`invalid --cgroup-parent "${cgroupParent}": expected an absolute cgroup path like /shoal`);
  const netnsPrefix = String(flags['netns-prefix']);
  if (!/^[A-Za-z0-9_.-]{1,40}$/.test(netnsPrefix)) throw new UsageError(`invalid --netns-prefix "${netnsPrefix}": use 1 to 40 of A-Z, a-z, 0-9, '_', '.', '-'`);
  return { dataRoot: String(flags['data-root']), socketPath: host.slice('unix://'.length), listenAddr, advertiseAddr, metricsAddr, logLevel, insecureRegistries, kvUrl, cgroupParent, netnsPrefix };
}
