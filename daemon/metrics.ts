// Prometheus metrics of one shoald: a registry of its own (so tests can run several daemons in
// one process) served over plain HTTP on --metrics-addr, like dockerd's.
import { createServer, type Server } from 'node:http';
import { Registry, collectDefaultMetrics, Gauge, Counter, Histogram } from 'prom-client';

export class DaemonMetrics {
  readonly registry = new Registry();
  readonly info = new Gauge({ name: 'shoal_daemon_info', help: 'shoald version and node', labelNames: ['version', 'node_id'], registers: [this.registry] });
  readonly rpcDuration = new Histogram({
    name: 'shoal_rpc_duration_seconds',
    help: 'Latency of RPCs served, by method and gRPC status',
    labelNames: ['method', 'code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly raftTerm = new Gauge({ name: 'shoal_raft_term', help: 'Current Raft term', registers: [this.registry] });
  readonly raftCommit = new Gauge({ name: 'shoal_raft_commit_index', help: 'Raft commit index', registers: [this.registry] });
  readonly raftApplied = new Gauge({ name: 'shoal_raft_applied_index', help: 'Raft applied index', registers: [this.registry] });
  readonly proposals = new Counter({ name: 'shoal_raft_proposals_total', help: 'Store transactions proposed', labelNames: ['result'], registers: [this.registry] });
  readonly nodes = new Gauge({ name: 'shoal_nodes', help: 'Nodes by state', labelNames: ['state'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'shoal_' });
  }

  /** Starts the /metrics endpoint; resolves with the bound port. */
  serve(host: string, port: number): Promise<{ server: Server; port: number }> {
    const server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('not found\n');
        return;
      }
      this.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text))
        .catch((e: unknown) => res.writeHead(500).end(String(e)));
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        const addr = server.address();
        resolve({ server, port: typeof addr === 'object' && addr ? addr.port : port });
      });
    });
  }
}
