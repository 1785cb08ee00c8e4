// One simulated node: the real AgentSession (mutual TLS with this node's own certificate,
// heartbeats at the manager's period, the Assignments stream, failover between managers) and the
// real BatchingStatusReporter, driving a SimulatedWorker that runs nothing. To the managers it is
// indistinguishable from a shoald whose containers start instantly.
import type * as grpc from '@grpc/grpc-js';
import type { SessionMessage } from '../../proto/gen/dispatcher.js';
import type { NodeDescription } from '../../proto/gen/objects.js';
import { clusterCredentials, type NodeCertificates } from '../credentials.js';
import { AgentSession, type AgentSessionOptions } from '../session/session.js';
import { BatchingStatusReporter, type BatchingReporterOptions } from '../worker/reporter.js';
import { SimulatedWorker, type TaskObserver } from './worker.js';

export interface SimulatedAgentOptions {
  /** The node id its certificate names (CN). */
  nodeId: string;
  certs: NodeCertificates;
  /** Managers' addresses (host:port), tried in order; the session learns the others. */
  managers: string[];
  hostname?: string;
  /** What the node says it has; default: 4 CPUs and 8 GiB of linux/amd64. */
  description?: NodeDescription;
  /** Extra grpc-js channel options, over the cluster's (manager name override). */
  channelOptions?: grpc.ChannelOptions;
  reporter?: BatchingReporterOptions;
  session?: Pick<AgentSessionOptions, 'backoffMs' | 'maxBackoffMs' | 'callTimeoutMs' | 'log'>;
  observer?: TaskObserver;
}

const GiB = 1024 ** 3;

/**
 * Each simulated node has its own certificate, so no two can share a connection. grpc-js's global
 * subchannel pool would still compare every new channel with every pooled subchannel to the same
 * address (options and credentials, buffer by buffer): O(nodes) per connection, which with 5,000
 * nodes made connecting the fleet quadratic. A pool per channel skips that search.
 */
export const SIMULATED_CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.use_local_subchannel_pool': 1 };

export function simulatedDescription(hostname: string): NodeDescription {
  return {
    hostname,
    platform: { os: 'linux', architecture: 'amd64' },
    resources: { nanoCpus: 4e9, memoryBytes: 8 * GiB, generic: [], pids: 0 },
    engineVersion: 'simulated',
    engineLabels: {},
  };
}

export class SimulatedAgent {
  readonly nodeId: string;
  readonly worker: SimulatedWorker;
  readonly reporter: BatchingStatusReporter;
  private readonly session: AgentSession;
  /** Sessions opened so far (a failover opens another). */
  sessions = 0;
  /** The manager of the latest session. */
  manager = '';
  private opened: Promise<void>;
  private resolveOpened!: () => void;
  private state: 'new' | 'started' | 'stopped' | 'dead' = 'new';

  constructor(options: SimulatedAgentOptions) {
    this.nodeId = options.nodeId;
    this.reporter = new BatchingStatusReporter(undefined, options.reporter);
    this.worker = new SimulatedWorker({ nodeId: options.nodeId, reporter: this.reporter, observer: options.observer });
    const { credentials, channelOptions } = clusterCredentials(options.certs);
    this.opened = new Promise((resolve) => (this.resolveOpened = resolve));
    this.session = new AgentSession({
      managers: [...options.managers],
      credentials,
      channelOptions: { ...channelOptions, ...SIMULATED_CHANNEL_OPTIONS, ...options.channelOptions },
      description: options.description ?? simulatedDescription(options.hostname ?? options.nodeId),
      worker: this.worker,
      reporter: this.reporter,
      ...options.session,
      onSession: (message: SessionMessage, manager: string) => {
        if (!message.sessionId) return;
        this.sessions++;
        this.manager = manager;
        this.resolveOpened();
      },
    });
  }

  start(): void {
    if (this.state !== 'new') return;
    this.state = 'started';
    this.session.start();
  }

  /** Resolves once a first session is open (the node is registered and READY on the leader). */
  ready(): Promise<void> {
    return this.opened;
  }

  get alive(): boolean {
    return this.state === 'started';
  }

  /** An orderly shutdown: the status still queued is delivered (best effort), then the session ends. */
  async stop(flushTimeoutMs = 2000): Promise<void> {
    if (this.state !== 'started') return;
    this.state = 'stopped';
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.reporter.flush(), new Promise<void>((resolve) => (timer = setTimeout(resolve, flushTimeoutMs)))]);
    clearTimeout(timer);
    this.reporter.close();
    await this.session.stop();
  }

  /**
   * The node dies: no more heartbeats and no goodbye (the protocol has none: the dispatcher marks a
   * node DOWN only when its heartbeats stop), queued statuses are lost, its tasks vanish with it.
   * Its connections close with the process, as a crashed shoald's would.
   */
  async kill(): Promise<void> {
    if (this.state !== 'started' && this.state !== 'new') return;
    this.state = 'dead';
    this.reporter.close();
    this.worker.die();
    await this.session.stop();
  }
}
