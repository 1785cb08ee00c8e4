// What the attacher has built, kept in one JSON file under its state directory so that an agent
// that restarts finds its namespaces, links, rules and KV keys again and releases them correctly.
// Written after every change (write to a temporary file, then rename: never half a file).
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NetworkSetup } from '../worker/network.js';
import type { PortRule } from './nftables.js';
import type { DriverName, NetworkInfo } from './spec.js';

export interface EndpointRecord {
  networkId: string;
  driver: DriverName;
  /** The interface in the task's namespace ("eth0"). */
  ifname: string;
  /** "10.0.1.5/24". */
  cidr: string;
  mac: string;
  subnetIndex: number;
  /** The veth end outside the task (host or sandbox namespace); none for macvlan. */
  outerLink?: string;
  /** The peer-table key published for it. */
  kvKey: string;
  /** The JSON value published there. */
  kvValue: string;
}

export interface TaskRecord {
  taskId: string;
  netns: string;
  /** False while being wired: such a record is unwound before the task is wired again. */
  complete: boolean;
  endpoints: EndpointRecord[];
  /** The veth into the gateway bridge. */
  gateway?: { ip: string; ifname: string; outerLink: string };
  ports: PortRule[];
  /** What prepare() returned, returned again to a repeated prepare. */
  setup?: NetworkSetup;
}

export interface NetworkRecord {
  info: NetworkInfo;
  /** The overlay sandbox namespace. */
  sandbox?: string;
  /** The bridge network's Linux bridge. */
  bridge?: string;
  /** An 802.1Q parent the macvlan driver created (and removes with the network). */
  createdParent?: string;
}

export interface AttacherState {
  version: 1;
  /** The KV session this host's endpoints are held under. */
  session?: string;
  /** The gateway bridge's subnet and the host's address in it. */
  gateway?: { subnet: string; address: string };
  tasks: Record<string, TaskRecord>;
  networks: Record<string, NetworkRecord>;
  /** Peer-table keys whose deletion failed (the KV was unreachable); retried until done. */
  staleKeys: string[];
}

export function emptyState(): AttacherState {
  return { version: 1, tasks: {}, networks: {}, staleKeys: [] };
}

export class StateFile {
  private readonly path: string;

  constructor(private readonly dir: string) {
    this.path = join(dir, 'network-state.json');
  }

  async load(): Promise<AttacherState> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw new Error(`read network state ${this.path}: ${(err as Error).message}`);
    }
    let parsed: AttacherState;
    try {
      parsed = JSON.parse(text) as AttacherState;
    } catch (err) {
      throw new Error(`read network state ${this.path}: not JSON (${(err as Error).message})`);
    }
    if (parsed.version !== 1) throw new Error(`read network state ${this.path}: unknown version ${String(parsed.version)}`);
    return { ...emptyState(), ...parsed };
  }

  async save(state: AttacherState): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const tmp = `${this.path}.tmp`;
    await writeFile(tmp, JSON.stringify(state, null, 1));
    await rename(tmp, this.path);
  }
}
