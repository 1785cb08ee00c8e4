// The hook through which network drivers give a task its network. prepare() runs while the task
// is PREPARING, before its container is created; release() once its container has stopped for good
// (and again on removal: it must be idempotent). The default gives each task a named network
// namespace holding only an up loopback: the place the drivers will later plug veths into.
import { execFile } from 'node:child_process';
import { access } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Task } from '../../proto/gen/objects.js';
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
}

export interface NetworkAttacher {
  prepare(task: Task, containerId: string): Promise<NetworkSetup>;
  release(task: Task, containerId: string): Promise<void>;
}

/** No namespace of our own: the runtime creates an empty one (with loopback down). */
export class NoNetworkAttacher implements NetworkAttacher {
  async prepare(): Promise<NetworkSetup> {
    return {};
  }

  async release(): Promise<void> {}
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
