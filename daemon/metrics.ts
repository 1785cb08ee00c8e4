// Prometheus metrics of one shoald: a registry of its own (so tests can run several daemons in
// one process) served over plain HTTP on --metrics-addr, like dockerd's.
import { createServer, type Server } from 'node:http';
import { Registry, collectDefaultMetrics, Gauge, Histogram } from 'prom-client';

/** What the cluster gauges read at scrape time (this node's manager, when it is one). */
export interface ClusterView {
  term: number;
  commit: number;
  applied: number;
  /** Node states as the store has them (READY, DOWN, ...). */
  nodeStates: string[];
  /** Store transactions this manager proposed, by outcome. */
  proposals: { committed: number; refused: number; failed: number };
}

export class DaemonMetrics {
  private view: () => ClusterView | undefined = () => undefined;

  readonly registry = new Registry();
  readonly info = new Gauge({ name: 'shoal_daemon_info', help: 'shoald version and node', labelNames: ['version', 'node_id'], registers: [this.registry] });
  readonly rpcDuration = new Histogram({
    name: 'shoal_rpc_duration_seconds',
    help: 'Latency of RPCs served, by method and gRPC status',
    labelNames: ['method', 'code'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly raftTerm = this.viewGauge('shoal_raft_term', 'Current Raft term', (v) => v.term);
  readonly raftCommit = this.viewGauge('shoal_raft_commit_index', 'Raft commit index', (v) => v.commit);
  readonly raftApplied = this.viewGauge('shoal_raft_applied_index', 'Raft applied index', (v) => v.applied);
  readonly proposals: Gauge<'result'> = new Gauge({
    name: 'shoal_raft_proposals_total',
    help: 'Store transactions proposed by this manager, by result (committed, refused at apply, failed)',
    labelNames: ['result'],
    registers: [this.registry],
    collect: () => {
      const v = this.view();
      if (!v) return;
      for (const [result, n] of Object.entries(v.proposals)) this.proposals.set({ result }, n);
    },
  });
  readonly nodes: Gauge<'state'> = new Gauge({
    name: 'shoal_nodes',
    help: 'Nodes by state (managers only)',
    labelNames: ['state'],
    registers: [this.registry],
    collect: () => {
      const v = this.view();
      this.nodes.reset();
      if (!v) return;
      for (const state of ['READY', 'DOWN', 'UNKNOWN', 'DISCONNECTED']) this.nodes.set({ state: state.toLowerCase() }, v.nodeStates.filter((s) => s === state).length);
    },
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'shoal_' });
  }

  /**
   * Times a grpc-js service's unary handlers into shoal_rpc_duration_seconds (method, status
   * code); streaming handlers are left as they are.
   */
  instrument<H extends object>(service: string, handlers: H): H {
    const out: Record<string, unknown> = { ...(handlers as Record<string, unknown>) };
    for (const [name, fn] of Object.entries(handlers)) {
      if (typeof fn !== 'function' || fn.length !== 2) continue;
      out[name] = (call: unknown, cb: (err: { code?: number } | null, value?: unknown) => void) => {
        const end = this.rpcDuration.startTimer({ method: `${service}/${name}` });
        (fn as (c: unknown, cb: (err: { code?: number } | null, value?: unknown) => void) => void)(call, (err, value) => {
          end({ code: String(err ? (err.code ?? 2) : 0) });
          cb(err, value);
        });
      };
    }
    return out as H;
  }

  /** Where the Raft and node gauges read from at scrape time; undefined while not a manager. */
  observe(view: () => ClusterView | undefined): void {
    this.view = view;
  }

  /** A gauge set at scrape time from the cluster view (left as it was while there is none). */
  private viewGauge(name: string, help: string, pick: (v: ClusterView) => number): Gauge {
    const view = () => this.view();
    return new Gauge({
      name,
      help,
      registers: [this.registry],
      collect() {
        const v = view();
        if (v) this.set(pick(v));
      },
    });
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
