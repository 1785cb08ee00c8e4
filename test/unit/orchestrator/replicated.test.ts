import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, state } from './harness.js';
import type { StoreEvent } from '../../../manager/store/memory.js';
import type { Task } from '../../../proto/gen/objects.js';
import { newTaskId } from '../../../manager/orchestrator/task.js';

test('task ids are 25 base-36 characters, like Docker', () => {
  const ids = new Set(Array.from({ length: 200 }, newTaskId));
  assert.equal(ids.size, 200);
  for (const id of ids) assert.match(id, /^[0-9a-z]{25}$/);
});

test('a replicated service gets one pending task per slot, made from its spec', async () => {
  const h = new Harness();
  await h.start();
  await h.addService('web', { replicas: 3 });
  const tasks = h.tasks('web');
  assert.deepEqual(tasks.map((t) => t.slot), [1, 2, 3]);
  for (const t of tasks) {
    assert.equal(t.serviceId, 'web');
    assert.equal(t.serviceName, 'web');
    assert.equal(t.annotations?.name, `web.${t.slot}`);
    assert.equal(t.desiredState, 'RUNNING');
    assert.equal(state(t), 'PENDING', 'no allocator yet: the orchestrator admits tasks itself');
    assert.equal(t.specVersion, 1);
    assert.equal(t.spec?.container?.image, 'busybox');
    assert.equal(t.nodeId, '');
  }
});

test('with the allocator running, new tasks stay NEW for it', async () => {
  const h = new Harness({ allocatorRuns: true });
  await h.start();
  await h.addService('web', { replicas: 2 });
  assert.deepEqual(h.tasks('web').map(state), ['NEW', 'NEW']);
});

test('reconciling again changes nothing', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 3 });
  await h.cluster();
  const before = h.store.appliedIndex;
  const writes = h.orch.writes;
  h.orch.touch();
  await h.settle();
  assert.equal(h.orch.writes, writes);
  assert.equal(h.store.appliedIndex, before);
});

test('scale up fills the lowest free slots; scale down removes the highest when tasks are spread evenly', async () => {
  const h = new Harness();
  await h.start();
  for (const n of ['n1', 'n2', 'n3', 'n4', 'n5']) await h.addNode(n);
  await h.addService('web', { replicas: 5 });
  await h.cluster();
  await h.scale('web', 3);
  assert.deepEqual(h.live('web').map((t) => t.slot), [1, 2, 3]);
  const removed = h.tasks('web').filter((t) => t.desiredState === 'REMOVE');
  assert.deepEqual(removed.map((t) => t.slot), [4, 5]);
  // Once their agents stopped them, the reaper deletes them.
  await h.cluster();
  assert.deepEqual(h.tasks('web').map((t) => t.slot), [1, 2, 3]);
  await h.scale('web', 4);
  assert.deepEqual(h.live('web').map((t) => t.slot), [1, 2, 3, 4]);
});

test('scale down removes tasks from the nodes that hold the most copies first', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 3 });
  await h.cluster(); // slots 1..3 all on n1
  await h.addNode('n2');
  await h.scale('web', 4);
  await h.cluster(); // slot 4 on n2
  assert.equal(h.inSlot('web', 4).nodeId, 'n2');
  await h.scale('web', 2);
  // n1 held three copies, n2 one: keep the first copy on each node (slots 1 and 4).
  assert.deepEqual(h.live('web').map((t) => t.slot), [1, 4]);
});

test('scale down removes tasks that are not running before running ones', async () => {
  const h = new Harness();
  await h.start();
  for (const n of ['n1', 'n2', 'n3']) await h.addNode(n);
  await h.addService('web', { replicas: 3 });
  await h.cluster();
  // Slot 2's task is replaced and its replacement is still pending (no node yet).
  await h.setAvailability('n2', 'DRAIN');
  assert.equal(state(h.inSlot('web', 2)), 'PENDING');
  await h.scale('web', 2);
  assert.deepEqual(h.live('web').map((t) => t.slot), [1, 3]);
});

test('removing a service removes its tasks: unassigned ones at once, running ones once stopped', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 2 });
  await h.cluster();
  await h.scale('web', 3); // slot 3 stays pending: the stand-in scheduler has not run
  await h.removeService('web');
  const left = h.tasks('web');
  assert.deepEqual(left.map((t) => [t.slot, t.desiredState]), [
    [1, 'REMOVE'],
    [2, 'REMOVE'],
  ]);
  await h.cluster();
  assert.deepEqual(h.tasks('web'), []);
});

test('a task on a node that goes down is replaced in the same slot', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('web', { replicas: 2 });
  await h.cluster();
  const old = h.live('web').find((t) => t.nodeId === 'n1')!;
  await h.setNodeState('n1', 'DOWN');
  assert.equal(h.task(old.id).desiredState, 'SHUTDOWN');
  const replacement = h.inSlot('web', old.slot);
  assert.notEqual(replacement.id, old.id);
  assert.equal(replacement.nodeId, '');
  // The restart delay applies (5 s by default): prepared now, started then.
  assert.equal(replacement.desiredState, 'READY');
  await h.advance(5000);
  assert.equal(h.task(replacement.id).desiredState, 'RUNNING');
  await h.cluster();
  assert.equal(h.task(replacement.id).nodeId, 'n2');
  assert.equal(h.live('web').length, 2);
});

test('a task on a drained node is replaced at once, and starts when the old one has stopped', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('web', { replicas: 2 });
  await h.cluster();
  const old = h.live('web').find((t) => t.nodeId === 'n1')!;
  await h.setAvailability('n1', 'DRAIN');
  const replacement = h.inSlot('web', old.slot);
  assert.equal(replacement.desiredState, 'READY', 'waits for the old task to stop');
  await h.report(old.id, 'SHUTDOWN');
  assert.equal(h.task(replacement.id).desiredState, 'RUNNING');
});

test('a drained node whose old task never reports still lets the replacement start after a timeout', async () => {
  const h = new Harness({ oldTaskTimeoutMs: 60_000 });
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 1 });
  await h.cluster();
  await h.setAvailability('n1', 'DRAIN');
  const replacement = h.inSlot('web', 1);
  await h.advance(59_999);
  assert.equal(h.task(replacement.id).desiredState, 'READY');
  await h.advance(1);
  assert.equal(h.task(replacement.id).desiredState, 'RUNNING');
});

test('a paused node keeps its tasks', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 2 });
  await h.cluster();
  const before = h.live('web').map((t) => t.id);
  await h.setAvailability('n1', 'PAUSE');
  assert.deepEqual(h.live('web').map((t) => t.id), before);
  assert.ok(h.live('web').every((t) => t.desiredState === 'RUNNING'));
});

test('a node that becomes unknown or disconnected keeps its tasks; one removed from the cluster loses them', async () => {
  const h = new Harness();
  await h.start();
  await h.addNode('n1');
  await h.addService('web', { replicas: 1 });
  await h.cluster();
  const t = h.inSlot('web', 1);
  await h.setNodeState('n1', 'DISCONNECTED');
  assert.equal(h.inSlot('web', 1).id, t.id);
  await h.removeNode('n1');
  assert.notEqual(h.inSlot('web', 1).id, t.id);
});

test('big changes are split into transactions of bounded size', async () => {
  const h = new Harness({ maxWritesPerPass: 10 });
  await h.start();
  await h.addNode('n1');
  const perEntry = new Map<number, number>();
  // Orchestrator writes: creates, removes and desired-state changes (the stand-in agents and
  // scheduler only change observed states and nodes, in big entries of their own).
  h.store.on('change', (e: StoreEvent) => {
    if (e.table !== 'tasks') return;
    const [now, old] = [e.object as Task, e.old as Task | undefined];
    if (e.kind !== 'update' || now.desiredState !== old?.desiredState) perEntry.set(e.index, (perEntry.get(e.index) ?? 0) + 1);
  });
  await h.addService('web', { replicas: 95 });
  assert.equal(h.live('web').length, 95);
  assert.equal(new Set(h.live('web').map((t) => t.slot)).size, 95);
  await h.cluster();
  await h.scale('web', 3);
  assert.deepEqual(h.live('web').map((t) => t.slot), [1, 2, 3]);
  await h.removeService('web');
  await h.cluster();
  assert.deepEqual(h.tasks('web'), []);
  assert.ok(Math.max(...perEntry.values()) <= 10, `largest entry: ${Math.max(...perEntry.values())} writes`);
});

test('a pass is cut into transactions between restarts, never inside one', async () => {
  const h = new Harness({ maxWritesPerPass: 5 });
  await h.start();
  await h.addNode('n1');
  await h.addNode('n2');
  await h.addService('web', { replicas: 12, restart: { delayMs: 0 } });
  await h.cluster();
  const onN1 = h.live('web').filter((t) => t.nodeId === 'n1').map((t) => t.slot);
  assert.ok(onN1.length >= 3);
  // Per entry: the slots whose task was shut down and the slots that got a new task.
  const entries = new Map<number, { shut: number[]; created: number[] }>();
  h.store.on('change', (e: StoreEvent) => {
    if (e.table !== 'tasks') return;
    const [now, old] = [e.object as Task, e.old as Task | undefined];
    const entry = entries.get(e.index) ?? { shut: [], created: [] };
    entries.set(e.index, entry);
    if (e.kind === 'create') entry.created.push(now.slot);
    else if (e.kind === 'update' && now.desiredState === 'SHUTDOWN' && old?.desiredState !== 'SHUTDOWN') entry.shut.push(now.slot);
  });
  await h.setNodeState('n1', 'DOWN');
  await h.settle();
  const all = [...entries.values()];
  assert.deepEqual(all.flatMap((e) => e.created).sort((a, b) => a - b), [...onN1].sort((a, b) => a - b));
  for (const e of all) {
    assert.ok(e.created.length + e.shut.length <= 5, `entry too big: ${JSON.stringify(e)}`);
    // A replacement is committed with its predecessor's shutdown, or not at all.
    assert.deepEqual([...e.created].sort((a, b) => a - b), [...e.shut].sort((a, b) => a - b));
  }
  assert.equal(h.live('web').length, 12);
  assert.ok(h.live('web').every((t) => t.nodeId !== 'n1' || t.desiredState !== 'RUNNING'));
});
