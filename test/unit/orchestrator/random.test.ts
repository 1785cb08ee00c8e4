// Random scales, node events, task failures and leader changes, from fixed seeds. After every step
// no slot may hold two live tasks; once the cluster calms down, every service converges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, liveSlotViolations, state } from './harness.js';
import { mulberry32 as rng } from '../../support/prng.js';


const NODES = ['n1', 'n2', 'n3', 'n4', 'n5'];

async function scenario(seed: number, steps: number, asyncProposer: boolean, maxWritesPerPass?: number): Promise<void> {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const h = new Harness(maxWritesPerPass ? { maxWritesPerPass } : {}, asyncProposer);
  await h.start();
  for (const n of NODES) await h.addNode(n, { labels: { disk: rand() < 0.5 ? 'ssd' : 'hdd' } });
  const replicas: Record<string, number> = { web: 3, api: 2 };
  await h.addService('web', { replicas: replicas.web, restart: { condition: 'ANY', delayMs: 2000 } });
  await h.addService('api', { replicas: replicas.api, restart: { condition: 'ON_FAILURE', delayMs: 0 } });
  await h.addService('agent', { mode: 'global', constraints: ['node.labels.disk==ssd'] });
  await h.addService('batch', { mode: 'replicatedJob', maxConcurrent: 2, totalCompletions: 4, restart: { condition: 'ON_FAILURE', delayMs: 1000 } });
  await h.cluster();

  const log: string[] = [];
  for (let step = 0; step < steps; step++) {
    const r = rand();
    if (r < 0.15) {
      const svc = pick(['web', 'api']);
      replicas[svc] = Math.floor(rand() * 8);
      log.push(`scale ${svc} ${replicas[svc]}`);
      await h.scale(svc, replicas[svc]!);
    } else if (r < 0.17) {
      log.push('rerun batch');
      await h.updateService('batch', (x) => x.jobIteration++);
    } else if (r < 0.35) {
      const n = pick(NODES);
      const what = pick(['DOWN', 'READY', 'READY', 'DRAIN', 'ACTIVE', 'ACTIVE', 'PAUSE', 'label'] as const);
      log.push(`node ${n} ${what}`);
      if (what === 'DOWN' || what === 'READY') await h.setNodeState(n, what);
      else if (what === 'label') await h.updateNode(n, (x) => (x.spec!.annotations!.labels = { disk: rand() < 0.5 ? 'ssd' : 'hdd' }));
      else await h.setAvailability(n, what);
    } else if (r < 0.6) {
      const running = h.store.all('tasks').filter((t) => state(t) === 'RUNNING');
      if (running.length > 0) {
        const t = pick(running);
        const how = pick(['FAILED', 'FAILED', 'COMPLETE', 'REJECTED'] as const);
        log.push(`task ${t.serviceId}/${t.slot || t.nodeId} ${how}`);
        await h.report(t.id, how);
      }
    } else if (r < 0.85) {
      log.push('cluster');
      await h.cluster();
    } else if (r < 0.95) {
      const ms = Math.floor(rand() * 8000);
      log.push(`advance ${ms}`);
      await h.advance(ms);
    } else {
      log.push('failover');
      await h.orch.stop();
      h.orch = h.newOrchestrator();
      await h.start();
    }
    assert.deepEqual(liveSlotViolations(h.store), [], `seed ${seed} step ${step}: ${log.slice(-5).join('; ')}`);
  }

  // Calm: every node back, time passes, agents catch up.
  for (const n of NODES) {
    await h.setNodeState(n, 'READY');
    await h.setAvailability(n, 'ACTIVE');
  }
  for (let i = 0; i < 4; i++) {
    await h.cluster();
    await h.advance(70_000);
  }
  await h.cluster();
  const why = `seed ${seed}: ${log.join('; ')}`;
  assert.deepEqual(liveSlotViolations(h.store), [], why);

  // web restarts on any exit: exactly `replicas` tasks, all running (slot numbers need not be
  // 1..replicas: a balanced scale-down may keep a higher slot).
  const web = h.live('web');
  assert.equal(web.length, replicas.web, why);
  assert.ok(
    web.every((t) => t.desiredState === 'RUNNING' && state(t) === 'RUNNING'),
    why,
  );
  // api does not restart clean exits: a slot may be held by its completed task, but the count holds.
  const apiSlots = new Set(h.tasks('api').filter((t) => t.desiredState !== 'REMOVE' && (t.desiredState === 'RUNNING' || state(t) === 'COMPLETE')).map((t) => t.slot));
  assert.ok(h.live('api').length <= replicas.api!, why);
  assert.ok(apiSlots.size >= replicas.api!, why);
  // agent: one running task on each ssd node.
  const ssd = h.store
    .all('nodes')
    .filter((n) => n.spec?.annotations?.labels?.disk === 'ssd')
    .map((n) => n.id)
    .sort();
  assert.deepEqual(
    h
      .live('agent')
      .map((t) => t.nodeId)
      .sort(),
    ssd,
    why,
  );
  // batch: at most 2 at once; the current run has completions plus running tasks to make up 4.
  const iteration = h.store.get('services', 'batch')!.jobIteration;
  const current = h.tasks('batch').filter((t) => t.jobIteration === iteration);
  const done = new Set(current.filter((t) => state(t) === 'COMPLETE').map((t) => t.slot));
  const running = current.filter((t) => t.desiredState === 'RUNNING');
  assert.ok(
    h.live('batch').every((t) => t.jobIteration === iteration),
    why,
  );
  assert.equal(running.length, Math.min(2, 4 - done.size), why);
  assert.ok(running.every((t) => !done.has(t.slot) && t.slot >= 1 && t.slot <= 4), why);
  // History stays bounded (default limit 5 per slot or node).
  for (const svc of ['web', 'api', 'agent', 'batch']) {
    const perSlot = new Map<string, number>();
    for (const t of h.tasks(svc)) perSlot.set(`${t.slot}/${t.nodeId}`, (perSlot.get(`${t.slot}/${t.nodeId}`) ?? 0) + 1);
    for (const [k, n] of perSlot) assert.ok(n <= 5, `${why}: ${svc} slot ${k} keeps ${n} tasks`);
  }
  await h.orch.stop();
}

// ORCH_SEEDS=N runs N more seeds of each, ORCH_STEPS=M makes each history M steps long (a longer
// hunt, by hand).
const more = Number(process.env.ORCH_SEEDS ?? 0);
const steps = Number(process.env.ORCH_STEPS ?? 120);
const seeds = (base: number[], from: number) => [...base, ...Array.from({ length: more }, (_, i) => from + i)];

test('random cluster histories keep one live task per slot and converge (local proposer)', { timeout: 60_000 + more * 5000 }, async () => {
  for (const seed of seeds([1, 2, 3, 4, 5, 6], 1000)) await scenario(seed, steps, false);
});

test('random cluster histories keep one live task per slot and converge (entries applied later)', { timeout: 60_000 + more * 5000 }, async () => {
  for (const seed of seeds([11, 12, 13], 5000)) await scenario(seed, steps, true);
});

test('random cluster histories converge when every pass may only write a little', { timeout: 60_000 + more * 5000 }, async () => {
  for (const seed of seeds([21, 22, 23], 9000)) await scenario(seed, steps, seed % 2 === 0, 2 + (seed % 3));
});
