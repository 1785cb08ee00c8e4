// Scheduler scenarios as plain text, after etcd's datadriven tests: the cluster and the waiting
// tasks above a `----` line, the placements the scheduler must make below it.
//
//   node ID [label:K=V] [engine:K=V] [cpu=N] [mem=SIZE] [gpu=N] [state=ready|down|disconnected|unknown]
//           [availability=active|pause|drain] [role=worker|manager] [hostname=H] [os=OS] [arch=ARCH]
//   running SERVICE on NODE [xN] [state=running|complete|failed|...] [desired=running|shutdown]
//           [cpu=N] [mem=SIZE] [gpu=N] [port=P/PROTO]            tasks already on a node
//   service NAME [xN] [cpu=N] [mem=SIZE] [gpu=N] [constraint=EXPR]... [pref=DESCRIPTOR]...
//           [max-per-node=N] [port=P/PROTO]... [platform=OS/ARCH]...   N tasks waiting for a node
//   global NAME on NODE [same options as service]            a task the orchestrator put on NODE
//
// Expected output: one line per node in the order declared, with the tasks placed on it by
// service ("n1: web=2 api=1", or "n1: -"), then one line per service and reason for tasks left
// waiting ("web x2: no suitable node (...)").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blank } from '../../../manager/store/blank.js';
import {
  Annotations,
  Endpoint,
  GenericResource,
  Node,
  NodeDescription,
  NodeSpec,
  NodeStatus,
  Placement,
  Platform,
  PortConfig,
  ResourceRequirements,
  Resources,
  Task,
  TaskSpec,
  TaskStatus,
  type NodeSpec_Availability,
  type NodeStatus_State,
  type PortConfig_Protocol,
  type TaskState,
} from '../../../proto/gen/objects.js';
import { buildNodeInfos } from '../../../manager/scheduler/nodeinfo.js';
import { schedule } from '../../../manager/scheduler/schedule.js';

const SIZES: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 };

function size(v: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMG]?)$/i.exec(v);
  if (!m) throw new Error(`bad size ${v}`);
  return Math.round(Number(m[1]) * SIZES[m[2]!.toUpperCase()]!);
}

interface Options {
  words: string[];
  opts: [string, string][];
}

function parseLine(line: string): Options {
  const words: string[] = [];
  const opts: [string, string][] = [];
  for (const part of line.trim().split(/\s+/)) {
    const eq = part.indexOf('=');
    // label:K=V and engine:K=V keep their "=" inside the value.
    if (eq > 0 && !part.startsWith('label:') && !part.startsWith('engine:')) opts.push([part.slice(0, eq), part.slice(eq + 1)]);
    else if (part.startsWith('label:') || part.startsWith('engine:')) opts.push([part.slice(0, part.indexOf(':')), part.slice(part.indexOf(':') + 1)]);
    else words.push(part);
  }
  return { words, opts };
}

function count(words: string[]): number {
  const x = words.find((w) => /^x\d+$/.test(w));
  return x ? Number(x.slice(1)) : 1;
}

function makeNode(id: string, opts: [string, string][]): Node {
  const labels: Record<string, string> = {};
  const engineLabels: Record<string, string> = {};
  const resources = blank(Resources);
  const platform = blank(Platform, { os: 'linux', architecture: 'amd64' });
  let state: NodeStatus_State = 'READY';
  let availability: NodeSpec_Availability = 'ACTIVE';
  let role: Node['role'] = 'WORKER';
  let hostname = id;
  for (const [k, v] of opts) {
    const [lk, lv] = v.split('=') as [string, string];
    if (k === 'label') labels[lk] = lv;
    else if (k === 'engine') engineLabels[lk] = lv;
    else if (k === 'cpu') resources.nanoCpus = Math.round(Number(v) * 1e9);
    else if (k === 'mem') resources.memoryBytes = size(v);
    else if (k === 'gpu') resources.generic.push(blank(GenericResource, { kind: 'gpu', value: Number(v) }));
    else if (k === 'state') state = v.toUpperCase() as NodeStatus_State;
    else if (k === 'availability') availability = v.toUpperCase() as NodeSpec_Availability;
    else if (k === 'role') role = v.toUpperCase() as Node['role'];
    else if (k === 'hostname') hostname = v;
    else if (k === 'os') platform.os = v;
    else if (k === 'arch') platform.architecture = v;
    else throw new Error(`unknown node option ${k}`);
  }
  return blank(Node, {
    id,
    role,
    spec: blank(NodeSpec, { annotations: blank(Annotations, { name: id, labels }), availability, desiredRole: role }),
    description: blank(NodeDescription, { hostname, platform, resources, engineLabels }),
    status: blank(NodeStatus, { state }),
  });
}

function makeTask(id: string, service: string, slot: number, opts: [string, string][]): Task {
  const reservations = blank(Resources);
  const placement = blank(Placement);
  const ports: PortConfig[] = [];
  let state: TaskState = 'PENDING';
  let desiredState: TaskState = 'RUNNING';
  for (const [k, v] of opts) {
    if (k === 'cpu') reservations.nanoCpus = Math.round(Number(v) * 1e9);
    else if (k === 'mem') reservations.memoryBytes = size(v);
    else if (k === 'gpu') reservations.generic.push(blank(GenericResource, { kind: 'gpu', value: Number(v) }));
    else if (k === 'constraint') placement.constraints.push(v);
    else if (k === 'pref') placement.preferences.push({ spreadDescriptor: v });
    else if (k === 'max-per-node') placement.maxReplicas = Number(v);
    else if (k === 'platform') {
      const [os, architecture] = v.split('/') as [string, string];
      placement.platforms.push({ os, architecture: architecture ?? '' });
    } else if (k === 'port') {
      const [p, proto] = v.split('/') as [string, string | undefined];
      ports.push(blank(PortConfig, { targetPort: Number(p), publishedPort: Number(p), protocol: (proto ?? 'tcp').toUpperCase() as PortConfig_Protocol, publishMode: 'HOST' }));
    } else if (k === 'state') state = v.toUpperCase() as TaskState;
    else if (k === 'desired') desiredState = v.toUpperCase() as TaskState;
    else throw new Error(`unknown task option ${k}`);
  }
  return blank(Task, {
    id,
    serviceId: service,
    serviceName: service,
    slot,
    specVersion: 1,
    desiredState,
    spec: blank(TaskSpec, { placement, resources: blank(ResourceRequirements, { reservations }) }),
    endpoint: blank(Endpoint, { ports }),
    status: blank(TaskStatus, { state }),
  });
}

export interface World {
  nodes: Node[];
  existing: Task[];
  waiting: Task[];
}

export function parseWorld(text: string): World {
  const world: World = { nodes: [], existing: [], waiting: [] };
  const slots = new Map<string, number>();
  const nextSlot = (service: string): number => {
    const s = (slots.get(service) ?? 0) + 1;
    slots.set(service, s);
    return s;
  };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const { words, opts } = parseLine(line);
    const [verb, name] = words;
    if (!name) throw new Error(`missing name in: ${line}`);
    if (verb === 'node') {
      world.nodes.push(makeNode(name, opts));
    } else if (verb === 'running' || verb === 'global') {
      const on = words[words.indexOf('on') + 1];
      if (!on) throw new Error(`missing "on NODE" in: ${line}`);
      const withState: [string, string][] = verb === 'running' ? [['state', 'running'], ...opts] : opts;
      for (let i = 0; i < count(words); i++) {
        const slot = nextSlot(name);
        const t = makeTask(`${name}.${slot}`, name, verb === 'global' ? 0 : slot, withState);
        t.nodeId = on;
        (verb === 'running' ? world.existing : world.waiting).push(t);
      }
    } else if (verb === 'service') {
      for (let i = 0; i < count(words); i++) {
        const slot = nextSlot(name);
        world.waiting.push(makeTask(`${name}.${slot}`, name, slot, opts));
      }
    } else {
      throw new Error(`unknown line: ${line}`);
    }
  }
  return world;
}

/** Runs the scheduler's core on the world and renders its decisions in the expected-output form. */
export function runWorld(world: World): string {
  const infos = buildNodeInfos(world.nodes, world.existing);
  const result = schedule(infos, world.waiting);
  const placed = new Map<string, Map<string, number>>();
  for (const a of result.assigned) {
    let byService = placed.get(a.nodeId);
    if (!byService) placed.set(a.nodeId, (byService = new Map()));
    byService.set(a.task.serviceName, (byService.get(a.task.serviceName) ?? 0) + 1);
  }
  const lines = world.nodes.map((n) => {
    const byService = placed.get(n.id);
    return `${n.id}: ${byService ? [...byService].map(([s, c]) => `${s}=${c}`).join(' ') : '-'}`;
  });
  const unplaced = new Map<string, number>();
  for (const u of result.unplaced) {
    const k = `${u.task.serviceName}\u0000${u.reason}`;
    unplaced.set(k, (unplaced.get(k) ?? 0) + 1);
  }
  for (const [k, c] of unplaced) {
    const [service, reason] = k.split('\u0000') as [string, string];
    lines.push(`${service} x${c}: ${reason}`);
  }
  return lines.join('\n');
}

/** Registers a test from a scenario: input, a `----` line, the expected output. */
export function scenario(name: string, text: string): void {
  test(name, () => {
    const [input, expected] = text.split(/^\s*----\s*$/m) as [string, string | undefined];
    if (expected === undefined) throw new Error(`scenario "${name}" has no ---- line`);
    assert.equal(runWorld(parseWorld(input)), expected.trim().split('\n').map((l) => l.trim()).join('\n'));
  });
}
