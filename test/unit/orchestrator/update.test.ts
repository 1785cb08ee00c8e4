// Rolling updates and rollbacks, as `docker service update` / `service rollback` users know them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blank } from '../../../manager/store/blank.js';
import { Endpoint, EndpointSpec, PortConfig, TaskStatus } from '../../../proto/gen/objects.js';
import { state } from './harness.js';
import { image, liveBySlot, Rollout } from './rollout.js';

async function cluster(nodes = ['n1', 'n2', 'n3']): Promise<Rollout> {
  const h = new Rollout();
  await h.start();
  for (const n of nodes) await h.addNode(n);
  return h;
}

/** Every slot holds exactly one live task, of `img`. */
function allOn(h: Rollout, id: string, img: string, slots: number): void {
  const bySlot = liveBySlot(h.tasks(id));
  assert.equal(bySlot.size, slots);
  for (const [slot, live] of bySlot) {
    assert.equal(live.length, 1, `slot ${slot} holds ${live.length} live tasks`);
    assert.equal(image(live[0]!), img, `slot ${slot}`);
  }
}

/** Tracks the most slots ever being updated at once. */
function peakUpdating(h: Rollout, id: string, img: string): () => number {
  let peak = 0;
  h.invariant(() => {
    peak = Math.max(peak, h.updatingSlots(id, img));
    return undefined;
  });
  return () => peak;
}

test('by default slots are replaced one at a time, stop-first, and the update completes a monitor period after the last one', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 4 });
  await h.agents();
  const peak = peakUpdating(h, 'web', 'app:2');
  const startedAt = h.clock.now();
  await h.setImage('web', 'app:2');

  assert.equal(h.status('web'), 'UPDATING');
  assert.equal(h.service('web').updateStatus!.message, 'update in progress');
  assert.equal(h.service('web').updateStatus!.startedAt, startedAt);
  const [fresh, ...others] = h.live('web').filter((t) => image(t) === 'app:2');
  assert.equal(others.length, 0, 'one slot at a time');
  assert.equal(fresh!.desiredState, 'READY', 'stop-first: the new task waits for the old one to stop');
  const old = h.tasks('web').find((t) => t.slot === fresh!.slot && image(t) === 'app:1')!;
  assert.equal(old.desiredState, 'SHUTDOWN');

  await h.agents();
  allOn(h, 'web', 'app:2', 4);
  assert.equal(peak(), 1);
  assert.equal(h.status('web'), 'UPDATING', 'failures are still watched for one monitor period');
  await h.advance(4999);
  assert.equal(h.status('web'), 'UPDATING');
  await h.advance(1);
  assert.equal(h.status('web'), 'COMPLETED');
  assert.equal(h.service('web').updateStatus!.message, 'update completed');
  assert.equal(h.service('web').updateStatus!.completedAt, h.clock.now());
  assert.ok(h.tasks('web').filter((t) => image(t) === 'app:1').every((t) => t.desiredState === 'SHUTDOWN' && state(t) === 'SHUTDOWN'));
});

test('parallelism 2 never has more than 2 slots updating at once; a slot is updated once its new task runs healthy', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 6, healthcheck: true, update: { parallelism: 2 } });
  h.healthyAtOnce.add('app:1');
  await h.agents();
  const peak = peakUpdating(h, 'web', 'app:2');
  await h.setImage('web', 'app:2');
  for (let batch = 1; batch <= 3; batch++) {
    await h.agents();
    // Running but still starting its health check: not updated yet, nothing more starts.
    assert.equal(h.updatingSlots('web', 'app:2'), 2, `batch ${batch}`);
    assert.equal(h.live('web').filter((t) => image(t) === 'app:2').length, 2 * batch);
    await h.healthy('web', 'app:2');
  }
  await h.agents();
  allOn(h, 'web', 'app:2', 6);
  assert.equal(peak(), 2);
  await h.advance(5000);
  assert.equal(h.status('web'), 'COMPLETED');
});

test('parallelism 0 updates every slot at once', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 5, update: { parallelism: 0 } });
  await h.agents();
  await h.setImage('web', 'app:2');
  assert.equal(h.updatingSlots('web', 'app:2'), 5);
  await h.agents();
  allOn(h, 'web', 'app:2', 5);
});

test('the delay between slots is honoured', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 3, update: { delayMs: 10_000 } });
  await h.agents();
  await h.setImage('web', 'app:2');
  await h.agents();
  const updated = () => h.live('web').filter((t) => image(t) === 'app:2').length;
  assert.equal(updated(), 1);
  await h.advance(9999);
  await h.agents();
  assert.equal(updated(), 1, 'the next slot waits out the delay');
  await h.advance(1);
  assert.equal(updated(), 2);
  await h.agents();
  await h.advance(10_000);
  await h.agents();
  allOn(h, 'web', 'app:2', 3);
  // The last slot's delay and the monitor period both pass before the update completes.
  await h.advance(10_000 + 4999);
  assert.equal(h.status('web'), 'UPDATING');
  await h.advance(1);
  assert.equal(h.status('web'), 'COMPLETED');
});

test('start-first never lets the running, healthy tasks drop below the replica count', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 3, healthcheck: true, update: { order: 'START_FIRST' } });
  h.healthyAtOnce.add('app:1');
  await h.agents();
  assert.equal(h.serving('web').length, 3);
  h.invariant(() => (h.serving('web').length < 3 ? `only ${h.serving('web').length} serving` : undefined));
  await h.setImage('web', 'app:2');
  const first = h.live('web').find((t) => image(t) === 'app:2')!;
  assert.equal(first.desiredState, 'RUNNING', 'start-first: the new task starts at once');
  await h.agents();
  assert.equal(liveBySlot(h.tasks('web')).get(String(first.slot))!.length, 2, 'old and new run side by side');
  assert.equal(h.task(first.id).status?.health, 'starting');
  for (let i = 0; i < 3; i++) {
    await h.healthy('web', 'app:2');
    await h.agents();
  }
  allOn(h, 'web', 'app:2', 3);
  assert.deepEqual(h.violations, []);
  await h.advance(5000);
  assert.equal(h.status('web'), 'COMPLETED');
});

test('a new task that fails pauses the update (failure action pause, max failure ratio 0), naming the task and why', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 4 });
  await h.agents();
  h.behaviour.set('app:2', 'fail');
  await h.setImage('web', 'app:2');
  await h.agents();
  const failed = h.tasks('web').find((t) => image(t) === 'app:2' && state(t) === 'FAILED')!;
  assert.equal(h.status('web'), 'PAUSED');
  assert.equal(h.service('web').updateStatus!.message, `update paused due to failure or early termination of task ${failed.id} (failed: task: non-zero exit (1))`);
  // Paused: no other slot is touched, whatever time passes.
  for (let i = 0; i < 3; i++) {
    await h.advance(10_000);
    await h.agents();
  }
  assert.equal(h.status('web'), 'PAUSED');
  const touched = new Set(h.tasks('web').filter((t) => image(t) === 'app:2').map((t) => t.slot));
  assert.deepEqual([...touched], [failed.slot]);
  assert.equal(h.serving('web').filter((t) => image(t) === 'app:1').length, 3);
});

test('failures up to the max failure ratio are tolerated, counted once per slot', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 4, update: { maxFailureRatio: 0.25 }, restart: { delayMs: 0 } });
  await h.agents();
  h.behaviour.set('app:2', 'fail');
  await h.setImage('web', 'app:2');
  await h.agents();
  // Slot 1 fails (1/4 is not above 0.25) and keeps failing as it restarts; slot 2 failing pauses.
  assert.equal(h.status('web'), 'PAUSED');
  const touched = new Set(h.tasks('web').filter((t) => image(t) === 'app:2').map((t) => t.slot));
  assert.equal(touched.size, 2);
  assert.ok(h.tasks('web').filter((t) => image(t) === 'app:2' && state(t) === 'FAILED').length > 2, 'restarted tasks failed again, counted once per slot');
});

test('failure action continue carries on through failures and completes', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 3, update: { failureAction: 'CONTINUE' }, restart: { condition: 'NONE' } });
  await h.agents();
  h.behaviour.set('app:2', 'reject');
  await h.setImage('web', 'app:2');
  await h.until('web', (s) => s === 'COMPLETED');
  assert.equal(new Set(h.tasks('web').filter((t) => image(t) === 'app:2').map((t) => t.slot)).size, 3);
});

test('only failures within the monitor period of a task starting count', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 3, update: { delayMs: 10_000, monitorMs: 5000 } });
  await h.agents();
  await h.setImage('web', 'app:2');
  await h.agents();
  const first = h.live('web').find((t) => image(t) === 'app:2')!;
  await h.advance(6000);
  await h.report(first.id, 'FAILED');
  assert.equal(h.status('web'), 'UPDATING', 'ran longer than the monitor period: a plain restart');
  await h.advance(4000);
  await h.agents();
  const second = h.live('web').find((t) => image(t) === 'app:2' && t.slot !== first.slot && state(t) === 'RUNNING')!;
  await h.advance(4000);
  await h.report(second.id, 'FAILED');
  assert.equal(h.status('web'), 'PAUSED');
  assert.match(h.service('web').updateStatus!.message, new RegExp(`task ${second.id} `));
});

test('a health check that turns unhealthy counts as a failure', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 2, healthcheck: true });
  h.healthyAtOnce.add('app:1');
  await h.agents();
  await h.setImage('web', 'app:2');
  await h.agents();
  const fresh = h.live('web').find((t) => image(t) === 'app:2')!;
  assert.equal(h.status('web'), 'UPDATING');
  await h.setHealth(fresh.id, 'unhealthy');
  assert.equal(h.status('web'), 'PAUSED');
  assert.match(h.service('web').updateStatus!.message, new RegExp(`task ${fresh.id} \\(unhealthy\\)$`));
});

test('failure action rollback goes back to the previous spec with the rollback config, then completes the rollback', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 4, update: { failureAction: 'ROLLBACK', parallelism: 2 }, rollback: { parallelism: 0 } });
  await h.agents();
  h.behaviour.set('app:2', 'fail');
  await h.setImage('web', 'app:2');
  await h.agents();
  const s = h.service('web');
  assert.equal(s.updateStatus!.state, 'ROLLBACK_STARTED');
  assert.match(s.updateStatus!.message, /^update rolled back due to failure or early termination of task \w+ \(failed: task: non-zero exit \(1\)\)$/);
  assert.equal(s.spec!.task!.container!.image, 'app:1');
  assert.equal(s.previousSpec, null, 'as swarmkit: an automatic rollback leaves nothing to roll back to');
  await h.until('web', (st) => st === 'ROLLBACK_COMPLETED');
  assert.equal(h.service('web').updateStatus!.message, 'rollback completed');
  allOn(h, 'web', 'app:1', 4);
});

test('a rollback that fails pauses, and is never rolled back itself', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 3, update: { failureAction: 'ROLLBACK' }, rollback: { failureAction: 'PAUSE' } });
  await h.agents();
  h.behaviour.set('app:2', 'fail');
  await h.setImage('web', 'app:2');
  h.behaviour.set('app:1', 'fail'); // the old image is gone too
  await h.agents();
  assert.equal(h.status('web'), 'ROLLBACK_PAUSED');
  assert.match(h.service('web').updateStatus!.message, /^rollback paused due to failure or early termination of task \w+ /);
  for (let i = 0; i < 3; i++) {
    await h.advance(10_000);
    await h.agents();
  }
  assert.equal(h.status('web'), 'ROLLBACK_PAUSED');
  assert.equal(h.service('web').spec!.task!.container!.image, 'app:1');
});

test('service rollback runs with the rollback config', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 4, rollback: { parallelism: 0 } });
  await h.agents();
  await h.setImage('web', 'app:2');
  await h.until('web', (s) => s === 'COMPLETED');
  await h.rollback('web');
  assert.equal(h.status('web'), 'ROLLBACK_STARTED');
  assert.equal(h.updatingSlots('web', 'app:1'), 4, 'rollback parallelism 0: all at once');
  await h.until('web', (s) => s === 'ROLLBACK_COMPLETED');
  allOn(h, 'web', 'app:1', 4);
  assert.equal(h.service('web').previousSpec!.task!.container!.image, 'app:2');
});

test('a spec change during an update supersedes it', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 4, healthcheck: true });
  h.healthyAtOnce.add('app:1');
  await h.agents();
  await h.setImage('web', 'app:2');
  await h.agents();
  await h.healthy('web', 'app:2');
  await h.agents(); // slot 1 done, slot 2 running but not healthy yet
  await h.advance(1000);
  await h.setImage('web', 'app:3');
  assert.equal(h.status('web'), 'UPDATING');
  assert.equal(h.service('web').updateStatus!.startedAt, h.clock.now());
  h.healthyAtOnce.add('app:3');
  await h.until('web', (s) => s === 'COMPLETED');
  allOn(h, 'web', 'app:3', 4);
});

test('a paused update resumes when the service is updated again', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 3 });
  await h.agents();
  h.behaviour.set('app:2', 'fail');
  await h.setImage('web', 'app:2');
  await h.agents();
  assert.equal(h.status('web'), 'PAUSED');
  h.behaviour.set('app:2', 'run'); // the registry got fixed
  await h.deploy('web', () => undefined); // `docker service update web`
  await h.until('web', (s) => s === 'COMPLETED');
  allOn(h, 'web', 'app:2', 3);
});

test('force update replaces every task; a placement change the nodes still satisfy and a scale change start no update', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 2 });
  await h.agents();
  const before = h.live('web').map((t) => t.id);
  await h.deploy('web', (spec) => (spec.replicated!.replicas = 3));
  await h.agents();
  await h.deploy('web', (spec) => (spec.task!.placement!.constraints = ['node.role==worker']));
  await h.agents();
  assert.equal(h.status('web'), undefined);
  assert.deepEqual(
    h
      .live('web')
      .map((t) => t.id)
      .filter((id) => before.includes(id)),
    before,
  );
  const placed = h.live('web').map((t) => t.id);
  await h.deploy('web', (spec) => spec.task!.forceUpdate++);
  await h.until('web', (s) => s === 'COMPLETED');
  assert.ok(h.live('web').every((t) => !placed.includes(t.id)));
  assert.equal(h.live('web').length, 3);
});

test('a global service is updated node by node', async () => {
  const h = await cluster(['n1', 'n2', 'n3', 'n4']);
  await h.createService('agent', { global: true });
  await h.agents();
  const peak = peakUpdating(h, 'agent', 'app:2');
  await h.setImage('agent', 'app:2');
  await h.until('agent', (s) => s === 'COMPLETED');
  assert.equal(peak(), 1);
  const bySlot = liveBySlot(h.tasks('agent'));
  assert.deepEqual([...bySlot.keys()].sort(), ['n1', 'n2', 'n3', 'n4']);
  for (const live of bySlot.values()) assert.deepEqual(live.map(image), ['app:2']);
});

test('a global task on a paused node is updated once the node is active again', async () => {
  const h = await cluster();
  await h.createService('agent', { global: true });
  await h.agents();
  await h.setAvailability('n3', 'PAUSE');
  await h.setImage('agent', 'app:2');
  await h.until('agent', (s) => s === 'COMPLETED');
  assert.deepEqual(liveBySlot(h.tasks('agent')).get('n3')!.map(image), ['app:1']);
  await h.setAvailability('n3', 'ACTIVE');
  await h.until('agent', (s) => s === 'COMPLETED');
  assert.deepEqual(liveBySlot(h.tasks('agent')).get('n3')!.map(image), ['app:2']);
});

test('draining a node under a start-first service starts each replacement elsewhere before stopping the old task', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 2, healthcheck: true, update: { order: 'START_FIRST' } });
  h.healthyAtOnce.add('app:1');
  await h.agents();
  const onN1 = h.live('web').find((t) => t.nodeId === 'n1')!;
  h.healthyAtOnce.delete('app:1');
  h.invariant(() => (h.serving('web').length < 2 ? `only ${h.serving('web').length} serving` : undefined));
  await h.setAvailability('n1', 'DRAIN');
  await h.agents();
  const replacement = h.live('web').find((t) => t.slot === onN1.slot && t.id !== onN1.id)!;
  assert.notEqual(replacement.nodeId, 'n1');
  assert.equal(h.task(onN1.id).desiredState, 'RUNNING', 'kept until its replacement is healthy');
  assert.equal(state(h.task(onN1.id)), 'RUNNING');
  await h.setHealth(replacement.id, 'healthy');
  assert.equal(h.task(onN1.id).desiredState, 'SHUTDOWN');
  await h.agents();
  assert.deepEqual(h.violations, []);
  assert.ok(h.live('web').every((t) => t.nodeId !== 'n1'));
  assert.equal(h.live('web').length, 2);
});

test('a start-first drain whose replacement keeps failing restarts it with its delay, the old task still serving', async () => {
  const h = await cluster(['n1', 'n2']);
  await h.createService('web', { replicas: 1, update: { order: 'START_FIRST' }, restart: { delayMs: 3000 } });
  await h.agents();
  const old = h.live('web')[0]!;
  await h.setAvailability(old.nodeId, 'DRAIN');
  h.behaviour.set('app:1', 'fail');
  await h.agents();
  assert.equal(h.task(old.id).desiredState, 'RUNNING');
  const waiting = h.live('web').filter((t) => t.id !== old.id);
  assert.equal(waiting.length, 1);
  assert.equal(waiting[0]!.desiredState, 'READY', 'the failed replacement is restarted after the restart delay');
  h.behaviour.set('app:1', 'run');
  await h.advance(3000);
  await h.agents();
  assert.equal(h.task(old.id).desiredState, 'SHUTDOWN');
  assert.equal(h.serving('web').length, 1);
});

test('a port change replaces tasks once the allocator has given the service its new endpoint', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 2 });
  // The allocator's part, by hand: the service's endpoint as allocated, copied into its tasks.
  const allocate = (ports: number[]) =>
    h.updateService('web', (s) => {
      s.endpoint = blank(Endpoint, { spec: blank(EndpointSpec, { ports: ports.map((p) => blank(PortConfig, { targetPort: 80, publishedPort: p })) }) });
    });
  await allocate([]);
  await h.deploy('web', (spec) => spec.task!.forceUpdate++);
  await h.until('web', (s) => s === 'COMPLETED');
  const before = h.live('web').map((t) => t.id);
  assert.ok(h.live('web').every((t) => t.endpoint?.spec?.ports.length === 0));

  await h.deploy('web', (spec) => (spec.endpoint = blank(EndpointSpec, { ports: [blank(PortConfig, { targetPort: 80, publishedPort: 8080 })] })));
  await h.agents();
  assert.equal(h.status('web'), undefined, 'nothing to do until the allocator has caught up');
  assert.deepEqual(
    h.live('web').map((t) => t.id),
    before,
  );
  await allocate([8080]);
  await h.until('web', (s) => s === 'COMPLETED');
  assert.ok(h.live('web').every((t) => !before.includes(t.id) && t.endpoint?.spec?.ports[0]?.publishedPort === 8080));
});

/** Slot 1's update: its old task asked to stop, its new task made and still unscheduled. */
async function unschedulable(h: Rollout, failureAction: 'PAUSE' | 'CONTINUE' = 'PAUSE') {
  await h.createService('web', { replicas: 2, update: { failureAction } });
  await h.agents();
  await h.setImage('web', 'app:2');
  const fresh = h.live('web').find((t) => image(t) === 'app:2')!;
  const old = h.tasks('web').find((t) => t.slot === fresh.slot && image(t) === 'app:1')!;
  assert.equal(old.desiredState, 'SHUTDOWN');
  // What the scheduler writes on a task that fits nowhere.
  await h.updateTask(fresh.id, (t) => (t.status = blank(TaskStatus, { state: 'PENDING', timestamp: h.clock.now(), message: 'pending task scheduling', err: 'no suitable node (scheduling constraints not satisfied on 3 nodes)' })));
  return { fresh, old };
}

test('a new task no node can take fails its slot one monitor period after it could be placed; it stays pending', async () => {
  const h = await cluster();
  const { fresh, old } = await unschedulable(h);
  // Not while the old task still runs: a stop-first replacement may need what it holds.
  await h.advance(3000);
  assert.equal(h.status('web'), 'UPDATING');
  await h.report(old.id, 'SHUTDOWN');
  await h.advance(4999);
  assert.equal(h.status('web'), 'UPDATING');
  await h.advance(1);
  assert.equal(h.status('web'), 'PAUSED');
  assert.equal(
    h.service('web').updateStatus!.message,
    `update paused due to failure or early termination of task ${fresh.id} (not scheduled within the monitor period: no suitable node (scheduling constraints not satisfied on 3 nodes))`,
  );
  // As in Docker, the task itself is not given up on: it runs once a node fits.
  assert.equal(state(h.task(fresh.id)), 'PENDING');
  assert.equal(h.task(fresh.id).desiredState, 'RUNNING');
  await h.agents();
  assert.equal(state(h.task(fresh.id)), 'RUNNING');
});

test('a new task the scheduler has not decided on yet is waited for, however long', async () => {
  const h = await cluster();
  await h.createService('web', { replicas: 2 });
  await h.agents();
  await h.setImage('web', 'app:2');
  const fresh = h.live('web').find((t) => image(t) === 'app:2')!;
  const old = h.tasks('web').find((t) => t.slot === fresh.slot && image(t) === 'app:1')!;
  await h.report(old.id, 'SHUTDOWN');
  await h.advance(60_000);
  assert.equal(state(h.task(fresh.id)), 'PENDING');
  assert.equal(h.status('web'), 'UPDATING');
});

test('with failure action continue an unschedulable task lets the update go on to the next slot', async () => {
  const h = await cluster();
  const { fresh, old } = await unschedulable(h, 'CONTINUE');
  await h.report(old.id, 'SHUTDOWN');
  await h.advance(4999);
  assert.equal(h.live('web').filter((t) => image(t) === 'app:2').length, 1, 'slot 1 still in flight');
  await h.advance(1);
  const fresh2 = h.live('web').filter((t) => image(t) === 'app:2' && t.id !== fresh.id);
  assert.equal(fresh2.length, 1, 'the next slot is being updated');
  await h.until('web', (s) => s === 'COMPLETED');
  allOn(h, 'web', 'app:2', 2);
});
