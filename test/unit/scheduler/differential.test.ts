// The batch placement (a heap of nodes per group) must decide exactly what the plain definition
// of spread decides: each task, one after the other, to the node that passes the filters with the
// fewest tasks of the service, then the fewest tasks, then the smallest id. Random clusters from a
// fixed seed, compared decision by decision.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildNodeInfos, type NodeInfo } from '../../../manager/scheduler/nodeinfo.js';
import { Pipeline } from '../../../manager/scheduler/pipeline.js';
import { noSuitableNode, schedule } from '../../../manager/scheduler/schedule.js';
import { makeGroup } from '../../../manager/scheduler/taskgroup.js';
import type { Task } from '../../../proto/gen/objects.js';
import { parseWorld, type World } from './scenario.js';
import { mulberry32 } from '../../support/prng.js';


function randomWorld(rand: () => number): World {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const lines: string[] = [];
  const nodeCount = 1 + Math.floor(rand() * 30);
  const nodeIds: string[] = [];
  for (let i = 0; i < nodeCount; i++) {
    const id = `n${String(i).padStart(2, '0')}`;
    nodeIds.push(id);
    const opts = [`mem=${pick([1, 2, 4, 8])}G`, `cpu=${pick([1, 2, 4])}`];
    if (rand() < 0.1) opts.push(`state=${pick(['down', 'disconnected'])}`);
    if (rand() < 0.1) opts.push(`availability=${pick(['pause', 'drain'])}`);
    if (rand() < 0.7) opts.push(`label:tier=${pick(['web', 'db'])}`);
    lines.push(`node ${id} ${opts.join(' ')}`);
  }
  const services = ['alpha', 'beta', 'gamma', 'delta', 'eps'];
  for (let i = Math.floor(rand() * 40); i > 0; i--) {
    const opts = [`mem=${pick([0, 256, 512])}M`];
    if (rand() < 0.2) opts.push('port=8080/tcp');
    lines.push(`running ${pick(services)} on ${pick(nodeIds)} ${opts.join(' ')}`);
  }
  for (const s of services.slice(0, 1 + Math.floor(rand() * services.length))) {
    const opts = [`x${1 + Math.floor(rand() * 60)}`];
    if (rand() < 0.5) opts.push(`mem=${pick([128, 512, 1024])}M`);
    if (rand() < 0.3) opts.push(`cpu=${pick([0.5, 1])}`);
    if (rand() < 0.4) opts.push(`constraint=node.labels.tier${pick(['==', '!='])}web`);
    if (rand() < 0.3) opts.push(`max-per-node=${1 + Math.floor(rand() * 3)}`);
    if (rand() < 0.15) opts.push('port=8080/tcp');
    lines.push(`service ${s} ${opts.join(' ')}`);
  }
  return parseWorld(lines.join('\n'));
}

/** The definition of spread, one task at a time with a full scan of the nodes. */
function reference(infos: NodeInfo[], waiting: Task[]): { assigned: string[]; unplaced: string[] } {
  const assigned: string[] = [];
  const unplaced: string[] = [];
  const byService = new Map<string, Task[]>();
  for (const t of waiting) byService.set(t.serviceId, [...(byService.get(t.serviceId) ?? []), t]);
  for (const service of [...byService.keys()].sort()) {
    const group = makeGroup(service, byService.get(service)!);
    const pipeline = new Pipeline(group);
    for (const t of group.tasks) {
      let best: NodeInfo | undefined;
      for (const n of infos) {
        if (!pipeline.passes(n)) continue;
        const better =
          !best ||
          n.serviceTasks(service) < best.serviceTasks(service) ||
          (n.serviceTasks(service) === best.serviceTasks(service) && (n.activeTasks < best.activeTasks || (n.activeTasks === best.activeTasks && n.id < best.id)));
        if (better) best = n;
      }
      if (best) {
        best.addTask(t);
        assigned.push(`${t.id}->${best.id}`);
      } else {
        unplaced.push(`${t.id}: ${noSuitableNode(pipeline.explain(infos))}`);
      }
    }
  }
  return { assigned, unplaced };
}

test('batch placement decides as placing tasks one by one would (100 random clusters)', () => {
  const rand = mulberry32(20261123);
  let placements = 0;
  let refusals = 0;
  for (let round = 0; round < 100; round++) {
    const world = randomWorld(rand);
    const got = schedule(buildNodeInfos(world.nodes, world.existing), world.waiting);
    const want = reference(buildNodeInfos(world.nodes, world.existing), world.waiting);
    assert.deepEqual(
      got.assigned.map((a) => `${a.task.id}->${a.nodeId}`),
      want.assigned,
      `round ${round}`,
    );
    assert.deepEqual(
      got.unplaced.map((u) => `${u.task.id}: ${u.reason}`),
      want.unplaced,
      `round ${round}`,
    );
    placements += want.assigned.length;
    refusals += want.unplaced.length;
  }
  // The random worlds exercise both outcomes.
  assert.ok(placements > 2000 && refusals > 500, `placements ${placements}, refusals ${refusals}`);
});

test('with a zone preference and room everywhere, zones and the nodes within each end up even (100 random clusters)', () => {
  const rand = mulberry32(7);
  for (let round = 0; round < 100; round++) {
    const lines: string[] = [];
    const nodeCount = 1 + Math.floor(rand() * 20);
    for (let i = 0; i < nodeCount; i++) {
      // Some nodes lack the label: they are a zone of their own ("").
      lines.push(`node n${String(i).padStart(2, '0')}${rand() < 0.8 ? ` label:zone=z${Math.floor(rand() * 4)}` : ''}`);
    }
    lines.push(`service web x${1 + Math.floor(rand() * 50)} pref=node.labels.zone`);
    const world = parseWorld(lines.join('\n'));
    const result = schedule(buildNodeInfos(world.nodes, []), world.waiting);
    assert.equal(result.unplaced.length, 0);
    const zoneOf = new Map(world.nodes.map((n) => [n.id, n.spec?.annotations?.labels?.zone ?? '']));
    const perZone = new Map<string, Map<string, number>>();
    for (const n of world.nodes) {
      const zone = zoneOf.get(n.id)!;
      if (!perZone.has(zone)) perZone.set(zone, new Map());
      perZone.get(zone)!.set(n.id, 0);
    }
    for (const a of result.assigned) {
      const nodes = perZone.get(zoneOf.get(a.nodeId)!)!;
      nodes.set(a.nodeId, nodes.get(a.nodeId)! + 1);
    }
    const zoneTotals = [...perZone.values()].map((nodes) => [...nodes.values()].reduce((s, c) => s + c, 0));
    assert.ok(Math.max(...zoneTotals) - Math.min(...zoneTotals) <= 1, `round ${round}: zones ${zoneTotals}`);
    for (const [zone, nodes] of perZone) {
      const counts = [...nodes.values()];
      assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `round ${round}: zone ${zone} nodes ${counts}`);
    }
  }
});
