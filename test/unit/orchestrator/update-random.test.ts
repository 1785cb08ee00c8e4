// Random histories of updates, rollbacks, failing images, scaling, node trouble and leader changes,
// from fixed seeds. After every step no slot holds two live tasks of the service's current spec (a
// slot is never given a second replacement; the old task a start-first update or drain keeps
// running does not count). Once the cluster calms down and one last update is asked for, every
// service completes it: one live task per slot, all of the last spec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTaskDirty } from '../../../manager/orchestrator/update/dirty.js';
import { nodeInvalid } from '../../../manager/orchestrator/service.js';
import type { UpdateConfig_FailureAction, UpdateConfig_Order } from '../../../proto/gen/objects.js';
import { mulberry32 as rng } from '../../support/prng.js';
import { state } from './harness.js';
import { image, liveBySlot, Rollout, type Behaviour } from './rollout.js';

const NODES = ['n1', 'n2', 'n3', 'n4'];
const SERVICES = ['web', 'api', 'agent'];
const IMAGES = ['app:1', 'app:2', 'app:3', 'app:4'];

/** Slots holding more than one live task of the current spec (on a node that keeps its tasks). */
function doubled(h: Rollout): string[] {
  const out: string[] = [];
  for (const id of SERVICES) {
    const s = h.service(id);
    for (const [slot, live] of liveBySlot(h.tasks(id))) {
      const current = live.filter((t) => !nodeInvalid(h.store.get('nodes', t.nodeId)) && !isTaskDirty(s, t, h.store.get('nodes', t.nodeId)));
      if (current.length > 1) out.push(`${id}/${slot}: ${current.map((t) => `${t.id} ${t.desiredState}/${state(t)}`).join(', ')}`);
    }
  }
  return out;
}

async function scenario(seed: number, steps: number, asyncProposer: boolean): Promise<void> {
  const rand = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const h = new Rollout({}, asyncProposer);
  await h.start();
  for (const n of NODES) await h.addNode(n);
  for (const img of IMAGES) h.healthyAtOnce.add(img);
  await h.createService('web', { replicas: 4, restart: { delayMs: 1000 } });
  await h.createService('api', { replicas: 3, healthcheck: true, update: { order: 'START_FIRST' }, restart: { delayMs: 0 } });
  await h.createService('agent', { global: true });
  await h.agents();

  const log: string[] = [];
  for (let step = 0; step < steps; step++) {
    const r = rand();
    if (r < 0.2) {
      const id = pick(SERVICES);
      const img = pick(IMAGES);
      const parallelism = Math.floor(rand() * 4);
      const order = pick<UpdateConfig_Order>(['STOP_FIRST', 'START_FIRST']);
      const failureAction = pick<UpdateConfig_FailureAction>(['PAUSE', 'CONTINUE', 'ROLLBACK']);
      const delayMs = pick([0, 0, 2000]);
      log.push(`deploy ${id} ${img} p${parallelism} ${order} ${failureAction} d${delayMs}`);
      await h.deploy(id, (spec) => {
        spec.task!.container!.image = img;
        spec.update = { parallelism, delayMs, order, failureAction, monitorMs: 3000, maxFailureRatio: pick([0, 0.5]) };
      });
    } else if (r < 0.25) {
      const id = pick(SERVICES);
      if (h.service(id).previousSpec) {
        log.push(`rollback ${id}`);
        await h.rollback(id);
      }
    } else if (r < 0.3) {
      const img = pick(IMAGES);
      const how = pick<Behaviour>(['run', 'run', 'fail', 'reject']);
      log.push(`image ${img} ${how}`);
      h.behaviour.set(img, how);
    } else if (r < 0.35) {
      const id = pick(['web', 'api']);
      const n = 1 + Math.floor(rand() * 5);
      log.push(`scale ${id} ${n}`);
      await h.scale(id, n);
    } else if (r < 0.45) {
      const n = pick(NODES);
      const what = pick(['DOWN', 'READY', 'READY', 'DRAIN', 'ACTIVE', 'ACTIVE', 'PAUSE'] as const);
      log.push(`node ${n} ${what}`);
      if (what === 'DOWN' || what === 'READY') await h.setNodeState(n, what);
      else await h.setAvailability(n, what);
    } else if (r < 0.55) {
      const running = h.store.all('tasks').filter((t) => state(t) === 'RUNNING');
      if (running.length > 0) {
        const t = pick(running);
        log.push(`task ${t.serviceId}/${t.slot || t.nodeId} failed`);
        await h.report(t.id, 'FAILED');
      }
    } else if (r < 0.85) {
      log.push('agents');
      await h.agents();
    } else if (r < 0.95) {
      const ms = Math.floor(rand() * 6000);
      log.push(`advance ${ms}`);
      await h.advance(ms);
    } else {
      log.push('failover');
      await h.orch.stop();
      h.orch = h.newOrchestrator();
      await h.start();
    }
    assert.deepEqual(doubled(h), [], `seed ${seed} step ${step}: ${log.slice(-8).join('; ')}`);
  }

  // Calm: nodes back, every image works, one last update of every service.
  for (const n of NODES) {
    await h.setNodeState(n, 'READY');
    await h.setAvailability(n, 'ACTIVE');
  }
  for (const img of [...IMAGES, 'app:final']) h.behaviour.set(img, 'run');
  h.healthyAtOnce.add('app:final');
  for (const id of SERVICES) await h.setImage(id, 'app:final');
  const why = `seed ${seed}: ${log.join('; ')}`;
  for (const id of SERVICES) {
    for (let i = 0; i < 60 && h.status(id) !== 'COMPLETED'; i++) {
      await h.agents();
      await h.advance(5000);
    }
    assert.equal(h.status(id), 'COMPLETED', `${why}: ${id} ${h.service(id).updateStatus?.message}`);
  }
  await h.agents();
  assert.deepEqual(doubled(h), [], why);
  for (const id of SERVICES) {
    const bySlot = liveBySlot(h.tasks(id));
    const want = id === 'agent' ? NODES.length : h.service(id).spec!.replicated!.replicas;
    assert.equal(bySlot.size, want, `${why}: ${id} slots`);
    for (const [slot, live] of bySlot) {
      assert.deepEqual(
        live.map((t) => `${image(t)} ${state(t)}`),
        ['app:final RUNNING'],
        `${why}: ${id}/${slot}`,
      );
    }
  }
  await h.orch.stop();
}

const more = Number(process.env.ORCH_SEEDS ?? 0);
const steps = Number(process.env.ORCH_STEPS ?? 100);
const seeds = (base: number[], from: number) => [...base, ...Array.from({ length: more }, (_, i) => from + i)];

test('random update histories never give a slot two current tasks, and converge (local proposer)', { timeout: 60_000 + more * 5000 }, async () => {
  for (const seed of seeds([101, 102, 103, 104], 20_000)) await scenario(seed, steps, false);
});

test('random update histories never give a slot two current tasks, and converge (entries applied later)', { timeout: 60_000 + more * 5000 }, async () => {
  for (const seed of seeds([111, 112], 30_000)) await scenario(seed, steps, true);
});
