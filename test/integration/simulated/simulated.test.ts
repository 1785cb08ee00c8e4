// Simulated nodes against a real 3-manager cluster in this process: every node joins through the
// CA service, holds its own certificate and speaks the dispatcher protocol over mutual TLS; its
// tasks "run" at once. Services are written straight into the leader's store (the control API's
// job, once it exists). The scenarios: a replicated service comes up RUNNING; a drained node's
// tasks move; a dead node goes DOWN and its tasks are re-created elsewhere; the leader dies in the
// middle of a scale-up and the new leader finishes it with one task per slot — and at no moment
// did two nodes run the same slot.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copy } from '../../../manager/store/blank.js';
import type { Manager } from '../../../manager/manager.js';
import { Node, Service, TaskStateNumber, type Task } from '../../../proto/gen/objects.js';
import { SimulatedFleet, slotOf } from '../../../agent/simulated/fleet.js';
import { waitFor } from '../../support/wait.js';
import { SimCluster, replicatedService } from './cluster.js';

const NODES = 24;
// A node is DOWN after 2.5 heartbeat periods (2.5 s). Shorter periods make nodes of a loaded CI
// machine flap DOWN, and a node wrongly marked DOWN keeps its task running while the slot is
// refilled elsewhere, which is exactly what these tests must not see for any other reason.
const HEARTBEAT_MS = 1000;
// Raft elections after 1–2 s rather than 0.5–1 s: the same loaded machine must not stall into
// leader changes the tests did not ask for.
const TICK_MS = 100;

let cluster: SimCluster;
let fleet: SimulatedFleet;

before(async () => {
  cluster = await SimCluster.start(3, { heartbeatPeriodMs: HEARTBEAT_MS, tickMs: TICK_MS });
  const nodes = await cluster.joinNodes(NODES);
  fleet = new SimulatedFleet({ managers: cluster.addrs(), concurrency: 8, agent: { session: { backoffMs: 50, maxBackoffMs: 500 } } });
  await fleet.add(nodes);
  const leader = await cluster.leader();
  await waitFor('every simulated node READY', () => nodes.every((n) => leader.store.get('nodes', n.nodeId)?.status?.state === 'READY'));
});

after(async () => {
  await fleet?.stop();
  await cluster?.stop();
});

const isLive = (t: Task) => TaskStateNumber[t.desiredState] <= TaskStateNumber.RUNNING;
const observed = (t: Task) => t.status?.state ?? 'NEW';
/** Not known to be over: still wanted, or told to stop but not yet reported stopped. */
const nonTerminal = (t: Task) => isLive(t) || TaskStateNumber[observed(t)] < TaskStateNumber.COMPLETE;

function tasksOf(m: Manager, serviceId: string): Task[] {
  return m.store.find('tasks', 'service', serviceId);
}

/** Every slot 1..replicas has exactly one live task, RUNNING on a READY node that runs it; returns them. */
function allRunning(m: Manager, serviceId: string, replicas: number): Task[] | undefined {
  const live = tasksOf(m, serviceId).filter(isLive);
  if (live.length !== replicas) return undefined;
  const slots = new Set(live.map((t) => t.slot));
  if (slots.size !== replicas || ![...slots].every((s) => s >= 1 && s <= replicas)) return undefined;
  for (const t of live) {
    if (observed(t) !== 'RUNNING') return undefined;
    if (m.store.get('nodes', t.nodeId)?.status?.state !== 'READY') return undefined;
    // The node the store names runs it (the agent's own view, not only what it reported).
    if (fleet.get(t.nodeId).worker.list().find((x) => x.task.id === t.id)?.status.state !== 'RUNNING') return undefined;
  }
  return live;
}

async function createService(id: string, replicas: number): Promise<void> {
  await cluster.update((tx) => tx.create('services', replicatedService(id, { replicas })));
}

/** "RUNNING×40 PENDING×3": the live tasks of a service by observed state, for timeout messages. */
function liveStates(serviceId: string): string {
  const leader = cluster.live().find((m) => m.isLeader);
  if (!leader) return 'no leader';
  const count = new Map<string, number>();
  for (const t of tasksOf(leader, serviceId).filter(isLive)) count.set(observed(t), (count.get(observed(t)) ?? 0) + 1);
  return [...count].map(([s, n]) => `${s}×${n}`).join(' ') || 'none';
}

async function waitAllRunning(serviceId: string, replicas: number, timeoutMs = 30_000): Promise<Task[]> {
  return waitFor(() => `${replicas} tasks of ${serviceId} RUNNING (live now: ${liveStates(serviceId)})`, async () => allRunning(await cluster.leader(), serviceId, replicas), { timeoutMs });
}

test('a replicated service comes up RUNNING, spread over the simulated nodes', async () => {
  await createService('web', 48);
  const running = await waitAllRunning('web', 48);
  const perNode = new Map<string, number>();
  for (const t of running) perNode.set(t.nodeId, (perNode.get(t.nodeId) ?? 0) + 1);
  assert.equal(perNode.size, NODES, 'every node got tasks');
  assert.deepEqual([...new Set(perNode.values())], [2], 'spread evenly: two per node');
  assert.equal(fleet.slots.copies('web/1'), 1);
  assert.deepEqual(fleet.slots.overlaps, []);
});

test('a drained node: its tasks stop there and run elsewhere', async () => {
  await createService('drain', 24);
  const before = await waitAllRunning('drain', 24);
  const victim = before[0]!.nodeId;
  const moved = tasksOf(await cluster.leader(), 'drain').filter((t) => t.nodeId === victim && isLive(t));
  assert.ok(moved.length > 0);
  await cluster.update((tx) => {
    const n = copy(Node, tx.get('nodes', victim)!);
    n.spec!.availability = 'DRAIN';
    tx.update('nodes', n);
  });
  const after = await waitFor('the drained node to hold no live task and the service to run again', async () => {
    const leader = await cluster.leader();
    const running = allRunning(leader, 'drain', 24);
    return running && running.every((t) => t.nodeId !== victim) ? running : undefined;
  });
  const leader = await cluster.leader();
  for (const old of moved) {
    // The node itself reported its task stopped, and the slot was refilled on another node.
    assert.equal(observed(leader.store.get('tasks', old.id)!), 'SHUTDOWN');
    assert.notEqual(after.find((t) => t.slot === old.slot)!.nodeId, victim);
  }
  assert.equal(fleet.get(victim).worker.list().filter((t) => t.status.state === 'RUNNING' && t.task.serviceId === 'drain').length, 0);
  assert.deepEqual(fleet.slots.overlaps, []);
});

test('a dead node goes DOWN and its tasks are re-created on live nodes', async () => {
  await createService('deadnode', 24);
  const before = await waitAllRunning('deadnode', 24);
  const leader = await cluster.leader();
  const victim = before.find((t) => leader.store.get('nodes', t.nodeId)?.spec?.availability === 'ACTIVE')!.nodeId;
  const lost = before.filter((t) => t.nodeId === victim);
  const killedAt = Date.now();
  await fleet.kill(victim);
  await waitFor('the dead node DOWN', async () => (await cluster.leader()).store.get('nodes', victim)?.status?.state === 'DOWN');
  // Not asserted (wall clock): how long the managers took, against the 2.5-period grace.
  process.stderr.write(`# dead node DOWN after ${Date.now() - killedAt} ms (grace ${HEARTBEAT_MS * 2.5} ms)\n`);
  const after = await waitFor('the lost tasks to run elsewhere', async () => {
    const running = allRunning(await cluster.leader(), 'deadnode', 24);
    return running && running.every((t) => t.nodeId !== victim) ? running : undefined;
  });
  for (const old of lost) {
    const replacement = after.find((t) => t.slot === old.slot)!;
    assert.notEqual(replacement.id, old.id, `slot ${old.slot} got a new task`);
    assert.equal((await cluster.leader()).store.get('tasks', old.id)?.desiredState, 'SHUTDOWN', 'the lost task is told to stop');
  }
  assert.deepEqual(fleet.slots.overlaps, []);
});

test('the leader dies in the middle of a scale-up: one task per slot, never two running', async () => {
  const FROM = 24;
  const TO = 1100; // three orchestrator passes (500 writes each) of new tasks
  await createService('failover', FROM);
  await waitAllRunning('failover', FROM);
  const old = await cluster.leader();
  // Kill the leader as soon as the first batch of new tasks is applied, while the orchestrator
  // still has passes to make, the scheduler has not placed them and no node has them yet.
  const killed = new Promise<void>((resolve, reject) => {
    const onChange = (ev: { table: string; kind: string; object: unknown }) => {
      if (ev.table !== 'tasks' || ev.kind !== 'create' || (ev.object as Task).serviceId !== 'failover') return;
      old.store.off('change', onChange);
      setImmediate(() => cluster.kill(old).then(resolve, reject));
    };
    old.store.on('change', onChange);
  });
  await cluster.update((tx) => {
    const s = copy(Service, tx.get('services', 'failover')!);
    s.spec!.replicated!.replicas = TO;
    tx.update('services', s);
  });
  await killed;
  // The dead leader's store is what it had applied when it stopped: the rollout under way.
  const createdByOld = tasksOf(old, 'failover').length - FROM;
  const runningAtDeath = tasksOf(old, 'failover').filter((t) => isLive(t) && observed(t) === 'RUNNING').length;
  process.stderr.write(`# the old leader had created ${createdByOld} of ${TO - FROM} new tasks, ${runningAtDeath} of ${TO} running, when it stopped\n`);
  assert.ok(createdByOld > 0 && runningAtDeath < TO, 'the old leader stopped mid-rollout');
  const leader = await cluster.leader();
  assert.notEqual(leader, old);
  await waitAllRunning('failover', TO, 90_000);
  const bySlot = new Map<number, Task[]>();
  for (const t of tasksOf(leader, 'failover').filter(nonTerminal)) bySlot.set(t.slot, [...(bySlot.get(t.slot) ?? []), t]);
  const duplicates = [...bySlot].filter(([, ts]) => ts.length !== 1).map(([slot, ts]) => `slot ${slot}: ${ts.map((t) => `${t.id} ${t.desiredState}/${observed(t)}`).join(', ')}`);
  assert.deepEqual(duplicates, []);
  assert.equal(bySlot.size, TO);
  assert.equal(fleet.slots.overlaps.length, 0, `slots run twice at once: ${JSON.stringify(fleet.slots.overlaps.slice(0, 5))}`);
  assert.equal(fleet.slots.copies(slotOf({ serviceId: 'failover', slot: 1, nodeId: '' })), 1);
});
