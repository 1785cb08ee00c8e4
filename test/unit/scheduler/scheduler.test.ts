// The Scheduler against a real MemoryStore (with the local proposer instead of Raft): it follows
// changes, writes its decisions in batches, keeps waiting tasks explained, and reconsiders them
// when nodes or resources change.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { LocalProposer, MemoryStore, type Proposer } from '../../../manager/store/memory.js';
import { copy } from '../../../manager/store/blank.js';
import { Node, StoreTransaction, Task, type NodeSpec_Availability, type NodeStatus_State, type TaskState } from '../../../proto/gen/objects.js';
import { ASSIGNED_MESSAGE, CONFIRMED_MESSAGE, PENDING_MESSAGE, Scheduler, type SchedulerOptions } from '../../../manager/scheduler/scheduler.js';
import { waitFor } from '../../support/wait.js';
import { parseWorld } from './scenario.js';

function newStore(): MemoryStore {
  const s = new MemoryStore();
  s.setProposer(new LocalProposer(s));
  return s;
}

function startScheduler(t: TestContext, store: MemoryStore, options: SchedulerOptions = {}): Scheduler {
  const scheduler = new Scheduler(store, { debounceMs: 1, maxDelayMs: 20, ...options });
  scheduler.start();
  t.after(() => scheduler.stop());
  return scheduler;
}

/** Adds the nodes and tasks a scenario text describes (format: scenario.ts). */
async function add(store: MemoryStore, text: string): Promise<void> {
  const world = parseWorld(text);
  await store.update((tx) => {
    for (const n of world.nodes) tx.create('nodes', n);
    for (const t of [...world.existing, ...world.waiting]) tx.create('tasks', t);
  });
}

async function setNode(store: MemoryStore, id: string, change: { state?: NodeStatus_State; availability?: NodeSpec_Availability }): Promise<void> {
  await store.update((tx) => {
    const n = copy(Node, tx.get('nodes', id)!);
    if (change.state) n.status!.state = change.state;
    if (change.availability) n.spec!.availability = change.availability;
    tx.update('nodes', n);
  });
}

async function setTaskState(store: MemoryStore, id: string, state: TaskState): Promise<void> {
  await store.update((tx) => {
    const t = copy(Task, tx.get('tasks', id)!);
    t.status!.state = state;
    tx.update('tasks', t);
  });
}

function placement(store: MemoryStore): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of store.all('tasks')) if (t.status?.state === 'ASSIGNED') out[t.nodeId] = (out[t.nodeId] ?? 0) + 1;
  return out;
}

const assignedCount = (store: MemoryStore) => store.all('tasks').filter((t) => t.status?.state === 'ASSIGNED').length;

test('assigns waiting tasks: node set, state ASSIGNED, several tasks to a transaction', async (t) => {
  const store = newStore();
  await add(store, 'node n1\nnode n2\nnode n3\nservice web x6');
  const transactions = new Set<number>();
  store.on('change', (ev: { table: string; index: number }) => {
    if (ev.table === 'tasks') transactions.add(ev.index);
  });
  const scheduler = startScheduler(t, store, { batchSize: 4 });
  await waitFor('all tasks assigned', () => assignedCount(store) === 6);
  assert.deepEqual(placement(store), { n1: 2, n2: 2, n3: 2 });
  for (const task of store.all('tasks')) {
    assert.equal(task.status?.message, ASSIGNED_MESSAGE);
    assert.equal(task.status?.err, '');
    assert.ok(task.nodeId);
  }
  // Six decisions, four to a transaction: two transactions.
  assert.equal(transactions.size, 2);
  await scheduler.idle();
  assert.equal(scheduler.pendingTasks().length, 0);
  assert.equal(scheduler.nodeInfo('n1')?.serviceTasks('web'), 2);
});

test('a task that fits nowhere stays PENDING with the reason, written once', async (t) => {
  const store = newStore();
  await add(store, 'node n1 availability=drain\nnode n2 mem=1G\nservice web x2 mem=2G');
  const scheduler = startScheduler(t, store);
  await waitFor('reasons written', () => store.all('tasks').every((task) => task.status?.err !== ''));
  for (const task of store.all('tasks')) {
    assert.equal(task.status?.state, 'PENDING');
    assert.equal(task.nodeId, '');
    assert.equal(task.status?.err, 'no suitable node (1 node not available for new tasks; insufficient memory on 1 node)');
    assert.equal(task.status?.message, PENDING_MESSAGE);
  }
  // Its own reason updates do not set off more passes or writes.
  await scheduler.idle();
  const index = store.appliedIndex;
  const passes = scheduler.stats.passes;
  await setNode(store, 'n2', { state: 'READY' }); // a node change: one more pass, nothing new to write
  await scheduler.idle();
  assert.equal(store.appliedIndex, index + 1);
  assert.equal(scheduler.stats.passes, passes + 1);
});

test('waiting tasks are placed when a node joins', async (t) => {
  const store = newStore();
  await add(store, 'service web x3');
  startScheduler(t, store);
  await waitFor('reason written', () => store.all('tasks').every((task) => task.status?.err === 'no suitable node'));
  await add(store, 'node n1\nnode n2');
  await waitFor('tasks assigned', () => assignedCount(store) === 3);
  assert.deepEqual(placement(store), { n1: 2, n2: 1 });
});

test('waiting tasks are placed when a node becomes READY, or ACTIVE again', async (t) => {
  const store = newStore();
  await add(store, 'node n1 state=down\nnode n2 availability=pause\nservice web x2');
  startScheduler(t, store);
  await waitFor('reason written', () => store.get('tasks', 'web.1')?.status?.err === 'no suitable node (1 node not ready; 1 node not available for new tasks)');
  await setNode(store, 'n1', { state: 'READY' });
  await waitFor('tasks on n1', () => placement(store).n1 === 2);
  await add(store, 'service api x2');
  await waitFor('api assigned', () => assignedCount(store) === 4);
  // The paused node took nothing.
  assert.deepEqual(placement(store), { n1: 4 });
  await setNode(store, 'n2', { availability: 'ACTIVE' });
  await add(store, 'service db x2');
  await waitFor('db assigned', () => assignedCount(store) === 6);
  // Spread by db's tasks first: one on each node.
  assert.deepEqual(placement(store), { n1: 5, n2: 1 });
});

test('resources are released when tasks end, and waiting tasks take them', async (t) => {
  const store = newStore();
  await add(store, 'node n1 mem=1G\nrunning db on n1 mem=1G\nservice web x1 mem=512M');
  const scheduler = startScheduler(t, store);
  await waitFor('reason written', () => store.get('tasks', 'web.1')?.status?.err === 'no suitable node (insufficient memory on 1 node)');
  assert.equal(scheduler.nodeInfo('n1')?.availableMemoryBytes, 0);
  await setTaskState(store, 'db.1', 'FAILED');
  await waitFor('web assigned', () => store.get('tasks', 'web.1')?.status?.state === 'ASSIGNED');
  assert.equal(store.get('tasks', 'web.1')?.nodeId, 'n1');
  assert.equal(scheduler.nodeInfo('n1')?.availableMemoryBytes, 512 * 1024 ** 2);
});

test('drained and down nodes get no new tasks while active ones do', async (t) => {
  const store = newStore();
  await add(store, 'node n1\nnode n2 availability=drain\nnode n3 state=down\nservice web x4');
  startScheduler(t, store);
  await waitFor('tasks assigned', () => assignedCount(store) === 4);
  assert.deepEqual(placement(store), { n1: 4 });
});

test("a global service's task on its node is confirmed", async (t) => {
  const store = newStore();
  await add(store, 'node n1\nglobal mon on n1');
  startScheduler(t, store);
  await waitFor('confirmed', () => store.get('tasks', 'mon.1')?.status?.state === 'ASSIGNED');
  assert.equal(store.get('tasks', 'mon.1')?.status?.message, CONFIRMED_MESSAGE);
  assert.equal(store.get('tasks', 'mon.1')?.nodeId, 'n1');
});

/** A proposer that lets a test act just before a transaction is applied. */
class HookedProposer implements Proposer {
  before: ((txn: StoreTransaction) => Promise<void> | void) | undefined;
  constructor(private readonly store: MemoryStore) {}
  async propose(data: Uint8Array): Promise<void> {
    const hook = this.before;
    if (hook) {
      this.before = undefined;
      await hook(StoreTransaction.decode(data));
    }
    this.store.apply(data, this.store.appliedIndex + 1);
  }
}

test('a decision on a task that changed before the commit is dropped and its node recounted', async (t) => {
  const store = newStore();
  await add(store, 'node n1\nservice web x1');
  const proposer = new HookedProposer(store);
  store.setProposer(proposer);
  let raced = false;
  proposer.before = async () => {
    // The orchestrator scales the service down while the scheduler's transaction is in flight.
    raced = true;
    await store.update((tx) => {
      const task = copy(Task, tx.get('tasks', 'web.1')!);
      task.desiredState = 'SHUTDOWN';
      tx.update('tasks', task);
    });
  };
  const scheduler = startScheduler(t, store);
  await waitFor('race happened', () => raced);
  await scheduler.idle();
  const task = store.get('tasks', 'web.1')!;
  assert.equal(task.nodeId, '');
  assert.equal(task.status?.state, 'PENDING');
  assert.equal(scheduler.stats.skipped, 1);
  assert.equal(scheduler.nodeInfo('n1')?.tasks.size, 0);
  assert.equal(scheduler.nodeInfo('n1')?.activeTasks, 0);
});

test('a failed commit is undone and retried', async (t) => {
  const store = newStore();
  await add(store, 'node n1\nservice web x2');
  const proposer = new HookedProposer(store);
  store.setProposer(proposer);
  proposer.before = () => {
    throw new Error('this manager cannot write: it is not the leader');
  };
  const scheduler = startScheduler(t, store);
  await waitFor('tasks assigned after a retry', () => assignedCount(store) === 2);
  assert.equal(scheduler.stats.failedCommits, 1);
  assert.equal(scheduler.nodeInfo('n1')?.activeTasks, 2);
});

test('after stop the scheduler leaves the store alone', async (t) => {
  const store = newStore();
  await add(store, 'node n1');
  const scheduler = startScheduler(t, store);
  await scheduler.stop();
  assert.equal(store.listenerCount('change'), 0);
  const index = store.appliedIndex;
  await add(store, 'service web x1');
  await scheduler.idle(); // nothing queued: it does not follow the store any more
  assert.equal(store.appliedIndex, index + 1);
  assert.equal(store.get('tasks', 'web.1')?.status?.state, 'PENDING');
});

test('a burst of changes makes one pass', async (t) => {
  const store = newStore();
  await add(store, 'node n1\nnode n2');
  const scheduler = startScheduler(t, store, { debounceMs: 20, maxDelayMs: 5000 });
  await scheduler.idle();
  const passes = scheduler.stats.passes;
  for (let i = 0; i < 20; i++) await add(store, `service s${i} x5`);
  await waitFor('all assigned', () => assignedCount(store) === 100);
  await scheduler.idle();
  assert.equal(scheduler.stats.passes - passes, 1);
  assert.deepEqual(placement(store), { n1: 50, n2: 50 });
});

test("a waiting task's reason follows the cluster", async (t) => {
  const store = newStore();
  await add(store, 'service web x1 mem=1G');
  startScheduler(t, store);
  await waitFor('first reason', () => store.get('tasks', 'web.1')?.status?.err === 'no suitable node');
  await add(store, 'node n1 availability=drain\nnode n2 mem=512M');
  await waitFor('reason updated', () => store.get('tasks', 'web.1')?.status?.err === 'no suitable node (1 node not available for new tasks; insufficient memory on 1 node)');
  await add(store, 'node n3 mem=2G');
  await waitFor('assigned', () => store.get('tasks', 'web.1')?.status?.state === 'ASSIGNED');
  assert.equal(store.get('tasks', 'web.1')?.nodeId, 'n3');
  assert.equal(store.get('tasks', 'web.1')?.status?.err, '');
});

test('after a snapshot is restored the scheduler starts over from the new state', async (t) => {
  const source = newStore();
  await add(source, 'node n1\nnode n2\nrunning web on n1 x2\nservice web x2');
  const store = newStore();
  const scheduler = startScheduler(t, store);
  await scheduler.idle();
  store.restore(source.snapshot(), source.appliedIndex);
  await waitFor('tasks assigned', () => assignedCount(store) === 2);
  // n1 already ran two of web's tasks: both new ones go to n2.
  assert.deepEqual(placement(store), { n2: 2 });
});

test('a pass takes a bounded number of tasks; those that fit nowhere do not hold back the ones behind them', async (t) => {
  const store = newStore();
  // The big tasks come first in the scheduler's queue, and each pass takes only three tasks.
  await add(store, 'node n1 mem=4G\nnode n2 mem=4G\nservice big x5 mem=100G\nservice web x4 mem=1G');
  const scheduler = startScheduler(t, store, { maxTasksPerPass: 3 });
  await waitFor('web tasks assigned', () => assignedCount(store) === 4);
  assert.deepEqual(placement(store), { n1: 2, n2: 2 });
  await waitFor('reasons written', () => store.all('tasks').filter((task) => task.serviceId === 'big').every((task) => task.status?.err !== ''));
  // Once a round over every waiting task placed nothing, the scheduler rests until something changes.
  await scheduler.idle();
  const passes = scheduler.stats.passes;
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(scheduler.stats.passes, passes);
  assert.equal(scheduler.pendingTasks().length, 5);
});
