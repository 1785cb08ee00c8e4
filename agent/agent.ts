// The agent of one node: a session with the managers (fails over between them), the worker that
// runs assigned tasks as real containers, and the reporter that carries their status back.
// Everything it keeps lives under <data-root>/agent, so a restarted shoald re-attaches.
import { cpus, totalmem, hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { AgentSession } from './session/session.js';
import { Worker } from './worker/worker.js';
import { BatchingStatusReporter } from './worker/reporter.js';
import { ImageStoreProvider } from './worker/images.js';
import { ImageStore } from './runtime/image/store.js';
import { parseReference } from './runtime/image/reference.js';
import { DriverNetworkAttacher } from './network/attacher.js';
import { ServiceDiscovery } from './network/dns/servicediscovery.js';
import { connectKv } from '../kv/connect.js';
import { DeferredKv, connectWithRetry } from '../kv/deferred.js';
import { RuncRuntime } from './runtime/runc/runtime.js';
import { LogPublisher } from './logs/publisher.js';
import { runcTaskLogs } from './logs/source.js';
import { clusterCredentials, type NodeCertificates } from './credentials.js';
import { NodeDescription, type Node, type Task, type TaskStatus } from '../proto/gen/objects.js';
import { version } from '../util/version.js';
import type { Logger } from '../util/log.js';

/** What the daemon's configuration says about the agent (flags of shoald). */
export interface AgentSettings {
  /** Registries (host[:port]) pulled from without TLS verification. */
  insecureRegistries?: string[];
  /** cgroup parent of the containers; default /shoal. */
  cgroupParent?: string;
  /** Prefix of the network namespaces this agent names; default "shoal-". */
  netnsPrefix?: string;
}

export interface AgentOptions extends AgentSettings {
  nodeId: string;
  /** This host's address on the underlay (no port): the VXLAN tunnel endpoint. */
  vtep: string;
  /** This node as the managers see it, on every session message (its desired role, say). */
  onNode?: (node: Node) => void;
  dataRoot: string;
  managers: string[];
  certs: NodeCertificates;
  log: Logger;
}

export class Agent {
  private session: AgentSession | null = null;
  private logPublisher: LogPublisher | null = null;
  private worker: Worker | null = null;
  private runtime: RuncRuntime | null = null;
  private kv: DeferredKv | null = null;
  private network: DriverNetworkAttacher | null = null;
  private discovery: ServiceDiscovery | null = null;

  constructor(private readonly opts: AgentOptions) {}

  async start(): Promise<void> {
    const root = join(this.opts.dataRoot, 'agent');
    const log = (message: string, fields: Record<string, unknown>) => this.opts.log.info(message, fields);
    this.runtime = new RuncRuntime({ root: join(root, 'runtime'), ...(this.opts.cgroupParent ? { cgroupParent: this.opts.cgroupParent } : {}) });
    const insecure = new Set(this.opts.insecureRegistries ?? []);
    const images = new ImageStoreProvider(nodeImageStore(this.opts.dataRoot), {
      pullOptions: (reference) => ({ insecure: insecure.has(parseReference(reference).registry) }),
    });
    const reporter = new BatchingStatusReporter(undefined);
    const { credentials, channelOptions } = clusterCredentials(this.opts.certs);
    // The KV (the overlay peer table, service discovery) is reached through the managers; the
    // drivers exist from the start and their KV calls wait until a manager answers.
    this.kv = new DeferredKv(
      connectWithRetry(
        () => connectKv({ managers: () => this.opts.managers, credentials, channelOptions, log }),
        () => this.kv === null,
        (e) => this.opts.log.warn('cannot reach the cluster KV yet; retrying', { error: (e as Error).message }),
      ),
    );
    this.discovery = new ServiceDiscovery({ kv: this.kv, log: this.opts.log.child('dns') });
    this.network = new DriverNetworkAttacher({
      kv: this.kv,
      nodeId: this.opts.nodeId,
      vtep: this.opts.vtep,
      stateDir: join(root, 'network'),
      ...(this.opts.netnsPrefix ? { netnsPrefix: this.opts.netnsPrefix } : {}),
      log: this.opts.log.child('network'),
      discovery: this.discovery,
    });
    await this.network.start();
    this.worker = new Worker({ dataDir: join(root, 'worker'), runtime: this.runtime, images, reporter, network: this.network, log });
    await this.worker.init();
    this.session = new AgentSession({
      managers: this.opts.managers,
      credentials,
      channelOptions,
      description: NodeDescription.decode(
        NodeDescription.encode({
          hostname: osHostname(),
          platform: { os: 'linux', architecture: process.arch === 'x64' ? 'x86_64' : process.arch },
          resources: { nanoCpus: cpus().length * 1e9, memoryBytes: totalmem(), generic: [], pids: 0 },
          engineVersion: version,
          engineLabels: {},
        }),
      ),
      worker: this.worker,
      reporter,
      onSession: (message) => {
        if (message.node) this.opts.onNode?.(message.node);
      },
      log,
    });
    this.session.start();
    // Service logs: the leader's broker asks for this node's task logs (same managers list, which
    // the session extends with the managers it learns of).
    this.logPublisher = new LogPublisher({ managers: this.opts.managers, credentials, channelOptions, source: runcTaskLogs(this.worker, this.runtime), log });
    this.logPublisher.start();
  }

  /** Leaving the swarm: no more session, and every task's container stopped and removed. */
  async leave(): Promise<void> {
    await this.session?.stop();
    this.session = null;
    if (this.worker) {
      await this.worker.assign([]);
      await this.worker.settled();
    }
    await this.network?.releaseAll();
    await this.stop();
  }

  async stop(): Promise<void> {
    await this.logPublisher?.stop();
    this.logPublisher = null;
    await this.session?.stop();
    await this.worker?.close();
    await this.runtime?.close();
    // Networks stay wired for the containers that keep running; the next agent takes them over.
    await this.network?.close();
    await this.discovery?.close();
    const kv = this.kv;
    this.kv = null;
    await kv?.close();
    this.session = null;
    this.worker = null;
    this.runtime = null;
    this.network = null;
    this.discovery = null;
  }

  // ---- Node-local access for the daemon's Engine service (daemon/engine.ts: exec, images) ----

  /** The tasks this node's worker has, with the status it observed; empty before start(). */
  localTasks(): Array<{ task: Task; status: TaskStatus }> {
    return this.worker?.list() ?? [];
  }

  /** The container runtime, while the agent runs. */
  containerRuntime(): RuncRuntime | null {
    return this.runtime;
  }
}

const imageStores = new Map<string, ImageStore>();

/**
 * The image store of the node whose data root this is: one instance per directory in the process,
 * shared by the agent and the daemon's image commands, because the store serializes its writes
 * and caches its state in memory (two instances over one directory would overwrite each other).
 */
export function nodeImageStore(dataRoot: string): ImageStore {
  const dir = join(dataRoot, 'agent', 'images');
  let store = imageStores.get(dir);
  if (!store) {
    store = new ImageStore(dir);
    imageStores.set(dir, store);
  }
  return store;
}
