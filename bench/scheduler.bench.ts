// `npm run bench -- scheduler [--nodes N] [--tasks N] [--services N] [--runs N] [--store-tasks N]`
//
// (a) The scheduler's core alone: placements per second deciding 100,000 tasks on 5,000 nodes,
// with a constraint that most nodes meet (node.labels.tier==web on 90%), reservations, and the
// spread strategy; also one service of 100,000 replicas, and a zone placement preference. The
// baseline is the plain definition (a scan of every node for every task) on the same cluster,
// measured on fewer tasks. A last record measures the Scheduler with a MemoryStore (local
// proposer, no Raft): decisions written back in batched transactions.
// (b) End to end with simulated nodes (dispatcher, agents reporting status) is not here yet.
import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Benchmark } from './main.js';
import { parseFlags } from '../util/flags.js';
import { blank } from '../manager/store/blank.js';
import { LocalProposer, MemoryStore } from '../manager/store/memory.js';
import {
  Annotations,
  Node,
  NodeDescription,
  NodeSpec,
  NodeStatus,
  Placement,
  Platform,
  ResourceRequirements,
  Resources,
  Task,
  TaskSpec,
  TaskStatus,
} from '../proto/gen/objects.js';
import { buildNodeInfos, type NodeInfo } from '../manager/scheduler/nodeinfo.js';
import { Pipeline } from '../manager/scheduler/pipeline.js';
import { schedule } from '../manager/scheduler/schedule.js';
import { Scheduler } from '../manager/scheduler/scheduler.js';
import { makeGroup } from '../manager/scheduler/taskgroup.js';

const GiB = 1024 ** 3;

// A collection before each timed run, so garbage from building the workload is not charged to
// the scheduler (node's --expose-gc, switched on from inside since the runner starts node plainly).
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;
const TARGET_PLACEMENTS_PER_S = 20_000;

function makeNodes(count: number): Node[] {
  const nodes: Node[] = [];
  for (let i = 0; i < count; i++) {
    const id = `node-${String(i).padStart(5, '0')}`;
    // Every tenth node is a database machine; the rest serve the web tier. Ten zones.
    const labels = { tier: i % 10 === 9 ? 'db' : 'web', zone: `z${i % 10 === 9 ? 0 : i % 7}` };
    nodes.push(
      blank(Node, {
        id,
        spec: blank(NodeSpec, { annotations: blank(Annotations, { name: id, labels }), availability: 'ACTIVE' }),
        description: blank(NodeDescription, {
          hostname: id,
          platform: blank(Platform, { os: 'linux', architecture: 'amd64' }),
          resources: blank(Resources, { nanoCpus: 64e9, memoryBytes: 256 * GiB }),
        }),
        status: blank(NodeStatus, { state: 'READY' }),
      }),
    );
  }
  return nodes;
}

interface Workload {
  services: number;
  tasks: number;
  preferences?: string[];
}

/** Pending tasks: `tasks` spread over `services` services, each reserving a little CPU and memory. */
function makeTasks(w: Workload): Task[] {
  const tasks: Task[] = [];
  const perService = Math.ceil(w.tasks / w.services);
  for (let s = 0; s < w.services && tasks.length < w.tasks; s++) {
    const serviceId = `svc-${String(s).padStart(4, '0')}`;
    const spec = blank(TaskSpec, {
      placement: blank(Placement, {
        constraints: ['node.labels.tier==web'],
        preferences: (w.preferences ?? []).map((spreadDescriptor) => ({ spreadDescriptor })),
      }),
      resources: blank(ResourceRequirements, { reservations: blank(Resources, { nanoCpus: 1e8, memoryBytes: 64 * 1024 ** 2 }) }),
    });
    const template = blank(Task, { serviceId, serviceName: serviceId, specVersion: 1, desiredState: 'RUNNING', spec });
    for (let slot = 1; slot <= perService && tasks.length < w.tasks; slot++) {
      // Tasks of a service share their spec object, as decoded tasks would share its content.
      tasks.push({ ...template, id: `${serviceId}.${slot}`, slot, status: blank(TaskStatus, { state: 'PENDING' }) });
    }
  }
  return tasks;
}

/** The plain definition of spread: a scan of every node for every task. */
function naiveSchedule(infos: NodeInfo[], tasks: Task[]): number {
  let placed = 0;
  const byService = new Map<string, Task[]>();
  for (const t of tasks) byService.set(t.serviceId, [...(byService.get(t.serviceId) ?? []), t]);
  for (const [key, group] of byService) {
    const g = makeGroup(key, group);
    const pipeline = new Pipeline(g);
    for (const t of g.tasks) {
      let best: NodeInfo | undefined;
      for (const n of infos) {
        if (!pipeline.passes(n)) continue;
        if (!best) {
          best = n;
          continue;
        }
        const a = n.serviceTasks(g.serviceId);
        const b = best.serviceTasks(g.serviceId);
        if (a < b || (a === b && (n.activeTasks < best.activeTasks || (n.activeTasks === best.activeTasks && n.id < best.id)))) best = n;
      }
      if (!best) continue;
      best.addTask(t);
      placed++;
    }
  }
  return placed;
}

function spread(infos: NodeInfo[], serviceId?: string): { min: number; max: number } {
  let min = Infinity;
  let max = 0;
  for (const n of infos) {
    if (n.node.spec?.annotations?.labels?.tier !== 'web') continue;
    const c = serviceId ? n.serviceTasks(serviceId) : n.activeTasks;
    min = Math.min(min, c);
    max = Math.max(max, c);
  }
  return { min, max };
}

const bench: Benchmark = {
  description: 'scheduler: placements per second, 100,000 tasks on 5,000 nodes with a constraint and spread',
  async run(args, emit) {
    const { flags } = parseFlags(args, [
      { name: 'nodes', kind: 'int', default: 5000, description: 'nodes in the cluster' },
      { name: 'tasks', kind: 'int', default: 100_000, description: 'tasks to place' },
      { name: 'services', kind: 'int', default: 100, description: 'services the tasks belong to' },
      { name: 'runs', kind: 'int', default: 3, description: 'runs of each workload (the best is reported)' },
      { name: 'baseline-tasks', kind: 'int', default: 2000, description: 'tasks for the full-scan baseline' },
      { name: 'store-tasks', kind: 'int', default: 20_000, description: 'tasks for the Scheduler-with-store measurement (0: skip)' },
    ]);
    const nodeCount = flags.nodes as number;
    const taskCount = flags.tasks as number;
    const runs = flags.runs as number;
    const nodes = makeNodes(nodeCount);

    const workloads: (Workload & { name: string })[] = [
      { name: 'services', services: flags.services as number, tasks: taskCount },
      { name: 'one-service', services: 1, tasks: taskCount },
      { name: 'zone-preference', services: flags.services as number, tasks: taskCount, preferences: ['node.labels.zone'] },
    ];
    const results: Record<string, number> = {};
    for (const w of workloads) {
      let best = 0;
      for (let run = 1; run <= runs; run++) {
        const infos = buildNodeInfos(nodes, []);
        const tasks = makeTasks(w);
        collectGarbage();
        const start = performance.now();
        const result = schedule(infos, tasks);
        const seconds = (performance.now() - start) / 1000;
        const rate = result.assigned.length / seconds;
        best = Math.max(best, rate);
        const balance = spread(infos, w.services === 1 ? 'svc-0000' : undefined);
        emit({
          workload: w.name,
          run,
          nodes: nodeCount,
          tasks: tasks.length,
          services: w.services,
          placed: result.assigned.length,
          unplaced: result.unplaced.length,
          seconds: Number(seconds.toFixed(3)),
          placements_per_s: Math.round(rate),
          tasks_per_web_node_min: balance.min,
          tasks_per_web_node_max: balance.max,
        });
      }
      results[w.name] = Math.round(best);
    }

    // Baseline: the same cluster, one full scan of the nodes per task.
    const baselineTasks = Math.min(flags['baseline-tasks'] as number, taskCount);
    const infos = buildNodeInfos(nodes, []);
    const baselineWork = makeTasks({ services: flags.services as number, tasks: baselineTasks });
    collectGarbage();
    const start = performance.now();
    const placed = naiveSchedule(infos, baselineWork);
    const baselineSeconds = (performance.now() - start) / 1000;
    const baselineRate = Math.round(placed / baselineSeconds);
    emit({ workload: 'baseline-full-scan', nodes: nodeCount, tasks: baselineTasks, placed, seconds: Number(baselineSeconds.toFixed(3)), placements_per_s: baselineRate });

    // The Scheduler with a store: decisions written back as transactions through the local proposer.
    const storeTasks = flags['store-tasks'] as number;
    let storeRate: number | undefined;
    if (storeTasks > 0) {
      const store = new MemoryStore();
      store.setProposer(new LocalProposer(store));
      await store.update((tx) => {
        for (const n of nodes) tx.create('nodes', n);
      });
      const tasks = makeTasks({ services: flags.services as number, tasks: storeTasks });
      for (let i = 0; i < tasks.length; i += 5000) {
        await store.update((tx) => {
          for (const t of tasks.slice(i, i + 5000)) tx.create('tasks', t);
        });
      }
      const scheduler = new Scheduler(store, { debounceMs: 0 });
      collectGarbage();
      const t0 = performance.now();
      scheduler.start();
      // Decisions are counted when made; idle() then waits for their commits.
      while (scheduler.stats.assigned + scheduler.stats.unplaced < storeTasks) await new Promise((r) => setTimeout(r, 5));
      await scheduler.idle();
      const seconds = (performance.now() - t0) / 1000;
      const assigned = store.all('tasks').filter((t) => t.status?.state === 'ASSIGNED').length;
      await scheduler.stop();
      storeRate = Math.round(assigned / seconds);
      emit({ workload: 'scheduler-with-store', nodes: nodeCount, tasks: storeTasks, assigned, transactions: scheduler.stats.transactions, seconds: Number(seconds.toFixed(3)), placements_per_s: storeRate });
    }

    const headline = results.services!;
    emit({
      summary: true,
      nodes: nodeCount,
      tasks: taskCount,
      placements_per_s: headline,
      one_service_placements_per_s: results['one-service'],
      zone_preference_placements_per_s: results['zone-preference'],
      baseline_full_scan_placements_per_s: baselineRate,
      speedup_over_baseline: Number((headline / baselineRate).toFixed(1)),
      scheduler_with_store_placements_per_s: storeRate,
      target_placements_per_s: TARGET_PLACEMENTS_PER_S,
      meets_target: headline >= TARGET_PLACEMENTS_PER_S,
    });
  },
};

export default bench;
