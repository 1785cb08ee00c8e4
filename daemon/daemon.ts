// One shoald: owns the local API socket, the metrics endpoint, and (as the cluster work lands)
// the agent and, on managers, the manager. start() and stop() are the whole lifecycle; stop()
// is what SIGTERM runs, and leaves nothing listening and no socket file behind.
import * as grpc from '@grpc/grpc-js';
import { mkdirSync, rmSync, chmodSync, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Server as HttpServer } from 'node:http';
import { HealthService, type HealthHandlers } from '../proto/gen/health.js';
import { version } from '../util/version.js';
import type { Logger } from '../util/log.js';
import type { DaemonConfig } from './config.js';
import { parseHostPort } from './config.js';
import { DaemonMetrics } from './metrics.js';
import { Swarm } from './swarm.js';
import { registerControl } from './control.js';
import { registerEngine } from './engine.js';
import { registerLocalLogs } from '../manager/logbroker/frontend.js';

export class Daemon {
  readonly metrics = new DaemonMetrics();
  private localServer: grpc.Server | null = null;
  private metricsServer: HttpServer | null = null;
  private readonly startedAt = Date.now();
  metricsPort = 0;
  readonly swarm: Swarm;

  constructor(
    readonly config: DaemonConfig,
    private readonly log: Logger,
  ) {
    this.swarm = new Swarm(config.dataRoot, log.child('swarm'), undefined, { insecureRegistries: config.insecureRegistries, cgroupParent: config.cgroupParent, netnsPrefix: config.netnsPrefix }, { kvUrl: config.kvUrl });
  }

  async start(): Promise<void> {
    mkdirSync(this.config.dataRoot, { recursive: true, mode: 0o700 });
    await this.swarm.resume();
    await this.startLocalApi();
    if (this.config.metricsAddr) {
      const { host, port } = parseHostPort(this.config.metricsAddr, '--metrics-addr');
      const { server, port: bound } = await this.metrics.serve(host, port);
      this.metricsServer = server;
      this.metricsPort = bound;
    }
    this.metrics.info.set({ version, node_id: '' }, 1);
    this.metrics.observe(() => {
      const m = this.swarm.manager;
      if (!m) return undefined;
      return {
        term: m.raft.currentTerm,
        commit: m.raft.commitIndex,
        applied: m.raft.applied,
        nodeStates: m.store.all('nodes').map((n) => n.status?.state ?? 'UNKNOWN'),
        proposals: { ...m.store.proposals },
      };
    });
    this.log.info('shoald started', { version, dataRoot: this.config.dataRoot, socket: this.config.socketPath, metricsPort: this.metricsPort });
  }

  private async startLocalApi(): Promise<void> {
    const path = this.config.socketPath;
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    // A socket file left by a daemon that was killed would make bind fail.
    if (existsSync(path)) rmSync(path);
    const server = new grpc.Server();
    const health: HealthHandlers = {
      check: (_call, cb) => cb(null, { status: 'SERVING', version, uptimeMs: Date.now() - this.startedAt }),
      watch: (call) => {
        call.write({ status: 'SERVING', version, uptimeMs: Date.now() - this.startedAt });
      },
    };
    server.addService(HealthService, health);
    registerControl(server, this.swarm, this.config.dataRoot, (service, h) => this.metrics.instrument(service, h));
    registerEngine(server, this.swarm, this.config, this.log.child('engine'));
    // `service logs`: served by the local manager when it leads, forwarded to the leader otherwise.
    registerLocalLogs(server, () => this.swarm.manager?.logs, { credentials: () => this.swarm.managerCredentials() });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix://${path}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(new Error(`cannot listen on ${path}: ${err.message}`)) : resolve())),
    );
    // The local API needs no TLS because only root may open it.
    chmodSync(path, 0o600);
    this.localServer = server;
  }

  async stop(): Promise<void> {
    const server = this.localServer;
    this.localServer = null;
    if (server) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.metricsServer) {
      const m = this.metricsServer;
      this.metricsServer = null;
      m.closeAllConnections();
      await new Promise<void>((resolve) => m.close(() => resolve()));
    }
    await this.swarm.stop();
    rmSync(this.config.socketPath, { force: true });
    this.log.info('shoald stopped');
  }
}
