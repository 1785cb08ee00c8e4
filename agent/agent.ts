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
import { RuncRuntime } from './runtime/runc/runtime.js';
import { clusterCredentials, type NodeCertificates } from './credentials.js';
import { NodeDescription } from '../proto/gen/objects.js';
import { version } from '../util/version.js';
import type { Logger } from '../util/log.js';

/** What the daemon's configuration says about the agent (flags of shoald). */
export interface AgentSettings {
  /** Registries (host[:port]) pulled from without TLS verification. */
  insecureRegistries?: string[];
}

export interface AgentOptions extends AgentSettings {
  dataRoot: string;
  managers: string[];
  certs: NodeCertificates;
  log: Logger;
}

export class Agent {
  private session: AgentSession | null = null;
  private worker: Worker | null = null;
  private runtime: RuncRuntime | null = null;

  constructor(private readonly opts: AgentOptions) {}

  async start(): Promise<void> {
    const root = join(this.opts.dataRoot, 'agent');
    const log = (message: string, fields: Record<string, unknown>) => this.opts.log.info(message, fields);
    this.runtime = new RuncRuntime({ root: join(root, 'runtime') });
    const insecure = new Set(this.opts.insecureRegistries ?? []);
    const images = new ImageStoreProvider(new ImageStore(join(root, 'images')), {
      pullOptions: (reference) => ({ insecure: insecure.has(parseReference(reference).registry) }),
    });
    const reporter = new BatchingStatusReporter(undefined);
    this.worker = new Worker({ dataDir: join(root, 'worker'), runtime: this.runtime, images, reporter, log });
    await this.worker.init();
    const { credentials, channelOptions } = clusterCredentials(this.opts.certs);
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
      log,
    });
    this.session.start();
  }

  async stop(): Promise<void> {
    await this.session?.stop();
    await this.worker?.close();
    await this.runtime?.close();
    this.session = null;
    this.worker = null;
    this.runtime = null;
  }
}

