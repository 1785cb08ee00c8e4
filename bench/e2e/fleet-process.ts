// The simulated nodes of the end-to-end bench, in a process of their own: N SimulatedAgents, each
// with its own certificate and TLS connection to the managers.
import { SimulatedFleet, type FleetNode } from '../../agent/simulated/fleet.js';
import { serve } from './ipc.js';
import { monitorEventLoopDelay } from 'node:perf_hooks';

// How long the event loop was blocked at worst: a manager blocked past the election timeout loses its leadership.
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

let fleet: SimulatedFleet | undefined;
let sessionErrors = 0;
// Why sessions ended: each distinct reason (digits masked, so node IDs and ports collapse) and its count.
const sessionErrorReasons = new Map<string, number>();

function report() {
  const agents = fleet?.nodes() ?? [];
  return {
    pid: process.pid,
    nodes: agents.length,
    sessions: agents.reduce((n, a) => n + a.sessions, 0),
    runningTasks: fleet?.slots.total ?? 0,
    maxCopiesPerSlot: fleet?.slots.maxCopies ?? 0,
    statusBacklog: agents.reduce((n, a) => n + a.reporter.backlog, 0),
    sessionErrors,
    sessionErrorReasons: Object.fromEntries([...sessionErrorReasons].sort((a, b) => b[1] - a[1]).slice(0, 8)),
    rssBytes: process.memoryUsage().rss,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    heapUsedBytes: process.memoryUsage().heapUsed,
    cpu: process.cpuUsage(),
    eventLoopDelayMaxMs: Math.round(loopDelay.max / 1e6),
  };
}
export type FleetReport = ReturnType<typeof report>;

serve({
  init: (args: { managers: string[]; concurrency: number; readyTimeoutMs: number }) => {
    fleet = new SimulatedFleet({
      managers: args.managers,
      concurrency: args.concurrency,
      readyTimeoutMs: args.readyTimeoutMs,
      agent: {
        session: {
          // A session that ends is logged by the session; count them (a healthy run has none).
          log: (message, fields) => {
            if (message !== 'session with manager ended') return;
            sessionErrors++;
            const reason = String(fields.error).replace(/[0-9a-z]{20,}/g, 'ID').replace(/\d+/g, 'N').slice(0, 160);
            if (sessionErrorReasons.size < 100 || sessionErrorReasons.has(reason)) sessionErrorReasons.set(reason, (sessionErrorReasons.get(reason) ?? 0) + 1);
          },
        },
      },
    });
  },
  add: async (args: { nodes: FleetNode[] }) => {
    if (!fleet) throw new Error('the fleet is not initialized');
    const started = Date.now();
    await fleet.add(args.nodes);
    return { ms: Date.now() - started };
  },
  report: () => report(),
  stop: async () => {
    await fleet?.stop();
    setImmediate(() => process.exit(0));
  },
});
