// The hook through which network drivers give a task its network. prepare() runs while the task
// is PREPARING, before its container is created; release() once its container has stopped for good
// (and again on removal: it must be idempotent). The default gives each task a named network
// namespace holding only an up loopback: the place the drivers will later plug veths into.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { PortConfig, Task } from '../../proto/gen/objects.js';
import type { DnsConfig, HostEntry } from '../runtime/runtime.js';

const run = promisify(execFile);

export interface NetworkSetup {
  /** A network namespace for the container to join (e.g. /run/netns/x); none: the runtime makes a fresh one. */
  netnsPath?: string;
  /** Extra /etc/hosts entries (service discovery aliases, peers). */
  hosts?: HostEntry[];
  /** The container's own address, written into /etc/hosts for its hostname. */
  ip?: string;
  /** What /etc/resolv.conf says (the embedded DNS server, search domains). */
  dns?: DnsConfig;
  /** Host-mode ports as bound on this node (a published port of 0 has its chosen one): the task status reports them. */
  hostPorts?: PortConfig[];
}

/**
 * Whether the task needs the network drivers: it is attached to a network or publishes a port
 * in host mode. Otherwise the container's own fresh namespace (loopback only) is all it gets.
 */
export function needsNetwork(task: Task): boolean {
  if (task.networks.length > 0) return true;
  const allocated = task.endpoint?.ports ?? [];
  const ports = allocated.length > 0 ? allocated : (task.endpoint?.spec?.ports ?? []);
  return ports.length > 0;
}

export interface NetworkAttacher {
  prepare(task: Task, containerId: string): Promise<NetworkSetup>;
  release(task: Task, containerId: string): Promise<void>;
  /**
   * Whether service discovery (the service's names, tasks.NAME, its VIP's backends) sends the
   * task traffic: false from prepare on; the controller says true once the task runs (and is
   * healthy, with a health check), false when it turns unhealthy and before it is stopped.
   * Resolves true when the task stopped serving now (traffic to it must drain before the stop).
   * Optional: an attacher without service discovery has nothing to do.
   */
  setServing?(task: Task, containerId: string, serving: boolean): Promise<boolean>;
}

/** No namespace of our own: the runtime creates an empty one (with loopback down). */
export class NoNetworkAttacher implements NetworkAttacher {
  async prepare(): Promise<NetworkSetup> {
    return {};
  }

  async release(): Promise<void> {}

  async setServing(): Promise<boolean> {
    return false;
  }
}

export interface NetnsAttacherOptions {
  /** Namespace names are `<prefix><first 12 of the container id>`. Default "shoal-". */
  prefix?: string;
  /** iproute2's `ip`; default: found on PATH. */
  ipPath?: string;
}

/** One named netns per task (`ip netns add`), loopback up, nothing else. */
export class NetnsNetworkAttacher implements NetworkAttacher {
  private readonly prefix: string;
  private readonly ipPath: string;

  constructor(options: NetnsAttacherOptions = {}) {
    this.prefix = options.prefix ?? 'shoal-';
    this.ipPath = options.ipPath ?? 'ip';
  }

  name(containerId: string): string {
    return `${this.prefix}${containerId.slice(0, 12)}`;
  }

  path(containerId: string): string {
    return `/run/netns/${this.name(containerId)}`;
  }

  async prepare(_task: Task, containerId: string): Promise<NetworkSetup> {
    const name = this.name(containerId);
    // Preparing again after an agent restart: the namespace (and whatever is in it) stays.
    const exists = await access(this.path(containerId)).then(
      () => true,
      () => false,
    );
    if (!exists) await this.ip(['netns', 'add', name]);
    await this.ip(['-n', name, 'link', 'set', 'lo', 'up']);
    return { netnsPath: this.path(containerId) };
  }

  /** No service discovery here: nothing sends the task traffic by name. */
  async setServing(): Promise<boolean> {
    return false;
  }

  async release(_task: Task, containerId: string): Promise<void> {
    const exists = await access(this.path(containerId)).then(
      () => true,
      () => false,
    );
    if (exists) await this.ip(['netns', 'delete', this.name(containerId)]);
  }

  private async ip(args: string[]): Promise<void> {
    try {
      await run(this.ipPath, args);
    } catch (err) {
      const stderr = (err as { stderr?: string }).stderr?.trim();
      throw new Error(`ip ${args.join(' ')} failed: ${stderr || (err as Error).message}`);
    }
  }
}
