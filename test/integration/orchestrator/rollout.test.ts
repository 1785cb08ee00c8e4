// A rolling update and a rollback on a real 3-manager cluster in this process, with simulated
// nodes speaking the dispatcher protocol over mutual TLS (their tasks "run" at once). The update
// and the rollback are asked for through the control API on the leader's store, exactly as the
// daemon would; the leader is killed in the middle of the update, and the new leader's
// orchestrator must finish it from what the store says: every slot on the new image (and the new
// published port, through the real allocator), one live task each, no slot given two replacements,
// the update status COMPLETED. Then `service rollback`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { blank } from '../../../manager/store/blank.js';
import type { Manager } from '../../../manager/manager.js';
import { createService, updateService } from '../../../manager/controlapi/index.js';
import {
  Annotations,
  ContainerSpec,
  EndpointSpec,
  PortConfig,
  ReplicatedService,
  ServiceSpec,
  TaskSpec,
  TaskStateNumber,
  UpdateConfig,
  type Task,
} from '../../../proto/gen/objects.js';
import { SimulatedFleet } from '../../../agent/simulated/fleet.js';
import { waitFor } from '../../support/wait.js';
import { SimCluster } from '../simulated/cluster.js';

const NODES = 6;
const REPLICAS = 12;
const HEARTBEAT_MS = 1000;

let cluster: SimCluster;
let fleet: SimulatedFleet;

before(async () => {
  cluster = await SimCluster.start(3, { heartbeatPeriodMs: HEARTBEAT_MS });
  const nodes = await cluster.joinNodes(NODES);
  fleet = new SimulatedFleet({ managers: cluster.addrs(), concurrency: 6, agent: { session: { backoffMs: 50, maxBackoffMs: 500 } } });
  await fleet.add(nodes);
  const leader = await cluster.leader();
  await waitFor('every simulated node READY', () => nodes.every((n) => leader.store.get('nodes', n.nodeId)?.status?.state === 'READY'));
});

after(async () => {
  await fleet?.stop();
  await cluster?.stop();
});

const isLive = (t: Task) => TaskStateNumber[t.desiredState] <= TaskStateNumber.RUNNING;
const image = (t: Task) => t.spec?.container?.image ?? '';
const tasksOf = (m: Manager, id: string) => m.store.find('tasks', 'service', id);

/** Every slot holds one live task of `img`, running on the node the store names. */
function converged(m: Manager, id: string, img: string): boolean {
  const live = tasksOf(m, id).filter(isLive);
  if (live.length !== REPLICAS || new Set(live.map((t) => t.slot)).size !== REPLICAS) return false;
  return live.every((t) => image(t) === img && t.status?.state === 'RUNNING' && fleet.get(t.nodeId).worker.list().find((x) => x.task.id === t.id)?.status.state === 'RUNNING');
}

/** The service; `publish` adds a published port (tasks then carry the allocator's new endpoint). */
function spec(img: string, publish?: number): ServiceSpec {
  const config = (parallelism: number) => blank(UpdateConfig, { parallelism, monitorMs: 300, failureAction: 'PAUSE', order: 'STOP_FIRST' });
  return blank(ServiceSpec, {
    annotations: blank(Annotations, { name: 'web' }),
    task: blank(TaskSpec, { container: blank(ContainerSpec, { image: img }) }),
    mode: 'replicated',
    replicated: blank(ReplicatedService, { replicas: REPLICAS }),
    update: config(2),
    rollback: config(0),
    endpoint: blank(EndpointSpec, { mode: 'VIP', ports: publish ? [blank(PortConfig, { targetPort: 80, publishedPort: publish, protocol: 'TCP', publishMode: 'INGRESS' })] : [] }),
  });
}

const published = (t: Task) => (t.endpoint?.spec?.ports ?? []).map((p) => p.publishedPort);

test('a rolling update survives the leader dying half-way, and service rollback brings the old image back', { timeout: 120_000 }, async () => {
  let leader = await cluster.leader();
  const created = await createService({ store: leader.store }, { spec: spec('app:1') });
  await waitFor('app:1 running in every slot', async () => converged(await cluster.leader(), created.id, 'app:1'), { timeoutMs: 30_000 });

  // Kill the leader once its orchestrator has started the update's third batch.
  const old = leader;
  const killed = new Promise<void>((resolve, reject) => {
    const onChange = () => {
      const fresh = tasksOf(old, created.id).filter((t) => image(t) === 'app:2');
      if (fresh.length < 5) return;
      old.store.off('change', onChange);
      setImmediate(() => cluster.kill(old).then(resolve, reject));
    };
    old.store.on('change', onChange);
  });
  const current = old.store.get('services', created.id)!;
  await updateService({ store: old.store }, { service: 'web', version: current.meta!.version, spec: spec('app:2', 30080), rollback: '' });
  await killed;
  assert.notEqual(old.store.get('services', created.id)?.updateStatus?.state, 'COMPLETED', 'the old leader was stopped mid-update');

  leader = await cluster.leader();
  assert.notEqual(leader, old);
  await waitFor(
    () => `the update to complete (status ${leader.store.get('services', created.id)?.updateStatus?.state})`,
    () => leader.store.get('services', created.id)?.updateStatus?.state === 'COMPLETED' && converged(leader, created.id, 'app:2'),
    { timeoutMs: 60_000 },
  );
  const all = tasksOf(leader, created.id);
  const replacements = all.filter((t) => image(t) === 'app:2');
  const perSlot = new Map<number, number>();
  for (const t of replacements) perSlot.set(t.slot, (perSlot.get(t.slot) ?? 0) + 1);
  // A slot whose node went down meanwhile is replaced again, legitimately; otherwise one each.
  const restarted = new Set(all.filter((t) => image(t) === 'app:2' && t.desiredState === 'SHUTDOWN').map((t) => t.slot));
  for (const [slot, n] of perSlot) if (!restarted.has(slot)) assert.equal(n, 1, `slot ${slot} got ${n} replacements`);
  // The new tasks carry the endpoint the allocator made for the new port. (Had they been dirty at
  // birth by their endpoint, the update would have kept replacing them and never completed.)
  assert.ok(tasksOf(leader, created.id).filter(isLive).every((t) => published(t).join() === '30080'));

  const before = leader.store.get('services', created.id)!;
  await updateService({ store: leader.store, now: Date.now }, { service: 'web', version: before.meta!.version, spec: null, rollback: 'previous' });
  await waitFor(
    () => `the rollback to complete (status ${leader.store.get('services', created.id)?.updateStatus?.state})`,
    () => leader.store.get('services', created.id)?.updateStatus?.state === 'ROLLBACK_COMPLETED' && converged(leader, created.id, 'app:1'),
    { timeoutMs: 60_000 },
  );
  assert.equal(leader.store.get('services', created.id)!.spec!.task!.container!.image, 'app:1');
  assert.ok(tasksOf(leader, created.id).filter(isLive).every((t) => published(t).length === 0), 'the port went with the rollback');
});
