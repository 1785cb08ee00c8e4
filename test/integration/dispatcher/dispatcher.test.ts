// The dispatcher and the agent session over a real gRPC server with mutual TLS and the authz
// interceptor: the node registers, gets its tasks (COMPLETE, then INCREMENTAL), reports status,
// goes DOWN when it stops heartbeating, and cannot touch another node's tasks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { RootCA } from '../../../manager/ca/ca.js';
import { authzInterceptor } from '../../../manager/ca/authz.js';
import { Dispatcher } from '../../../manager/dispatcher/dispatcher.js';
import { LocalProposer, MemoryStore } from '../../../manager/store/memory.js';
import { blank } from '../../../manager/store/blank.js';
import { AgentSession } from '../../../agent/session/session.js';
import { DispatcherClient, DispatcherService, type AssignmentsMessage, type TaskStatusUpdate } from '../../../proto/gen/dispatcher.js';
import { Node, NodeStatus, Task, TaskStatus, type NodeDescription } from '../../../proto/gen/objects.js';
import { bindMutualTls, nodeCreds } from '../../support/tls.js';

const PERIOD_MS = 200;
const CLIENT_OPTIONS = { 'grpc.ssl_target_name_override': 'shoal-manager' };


function clientCreds(ca: RootCA, c: { keyPem: string; certPem: string }): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(c.keyPem), Buffer.from(c.certPem));
}

/** Polls `check` until it holds; fails with `what` after the deadline. */
async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

class FakeWorker {
  readonly messages: AssignmentsMessage[] = [];
  applyAssignments(message: AssignmentsMessage): Promise<void> {
    this.messages.push(message);
    return Promise.resolve();
  }
}

class FakeReporter {
  sink: ((updates: TaskStatusUpdate[]) => Promise<void>) | undefined;
  setSink(sink: ((updates: TaskStatusUpdate[]) => Promise<void>) | undefined): void {
    this.sink = sink;
  }
}

function task(id: string, nodeId: string): Task {
  return blank(Task, {
    id,
    nodeId,
    serviceId: 'svc1',
    slot: 1,
    desiredState: 'RUNNING',
    status: blank(TaskStatus, { state: 'ASSIGNED', message: 'scheduled' }),
    spec: { container: null, resources: null, restart: null, placement: null, networks: [], forceUpdate: 0 },
  });
}

async function setup(t: test.TestContext, isLeader: () => boolean = () => true) {
  const ca = RootCA.create();
  const store = new MemoryStore();
  store.setProposer(new LocalProposer(store));
  await store.update((tx) => {
    for (const id of ['worker1', 'worker2']) tx.create('nodes', blank(Node, { id, role: 'WORKER', status: blank(NodeStatus, { state: 'UNKNOWN' }) }));
  });
  const dispatcher = new Dispatcher({ store, isLeader, heartbeatPeriodMs: PERIOD_MS, managers: () => [{ nodeId: 'manager1', addr: 'manager1:4242', weight: 1 }] });
  const heartbeats = { count: 0 };
  const countHeartbeats: grpc.ServerInterceptor = (method, call) => {
    if (method.path.endsWith('/Heartbeat')) heartbeats.count++;
    return new grpc.ServerInterceptingCall(call);
  };
  const server = new grpc.Server({
    interceptors: [authzInterceptor({ caCertPem: () => ca.certPem, nodeAllowed: (identity) => store.get('nodes', identity.nodeId) !== undefined }), countHeartbeats],
  });
  server.addService(DispatcherService, dispatcher.handlers());
  const port = await bindMutualTls(server, ca);
  t.after(() => {
    dispatcher.stop();
    server.forceShutdown();
  });
  return { ca, store, dispatcher, heartbeats, address: `127.0.0.1:${port}` };
}

function startAgent(t: test.TestContext, ca: RootCA, managers: string[], nodeId: string) {
  const worker = new FakeWorker();
  const reporter = new FakeReporter();
  const description: NodeDescription = { hostname: `${nodeId}-host`, platform: null, resources: null, engineVersion: 'test', engineLabels: {} };
  const agent = new AgentSession({
    managers,
    credentials: clientCreds(ca, nodeCreds(ca, nodeId, 'worker')),
    channelOptions: CLIENT_OPTIONS,
    description,
    worker,
    reporter,
  });
  agent.start();
  t.after(() => agent.stop());
  return { agent, worker, reporter };
}

test('agent session: registration, assignments, status, heartbeat expiry', async (t) => {
  const { ca, store, heartbeats, address } = await setup(t);
  await store.update((tx) => {
    tx.create('tasks', task('t-before', 'worker1'));
    tx.create('tasks', task('t-other', 'worker2'));
  });
  // The first manager is not listening: the agent fails over to the second.
  const { agent, worker, reporter } = startAgent(t, ca, ['127.0.0.1:1', address], 'worker1');

  await until('worker1 READY', () => store.get('nodes', 'worker1')?.status?.state === 'READY');
  const node = store.get('nodes', 'worker1')!;
  assert.equal(node.description?.hostname, 'worker1-host');
  assert.equal(node.status?.addr, '127.0.0.1');

  // COMPLETE first, with only this node's task.
  await until('a COMPLETE assignment', () => worker.messages.length >= 1);
  const complete = worker.messages[0]!;
  assert.equal(complete.type, 'COMPLETE');
  assert.deepEqual(
    complete.changes.map((c) => [c.action, c.task?.id]),
    [['UPDATE', 't-before']],
  );

  // A new task for this node arrives as an increment that follows the complete set.
  await store.update((tx) => tx.create('tasks', task('t-new', 'worker1')));
  await until('an INCREMENTAL assignment', () => worker.messages.length >= 2);
  const inc = worker.messages[1]!;
  assert.equal(inc.type, 'INCREMENTAL');
  assert.equal(inc.appliesTo, complete.resultsIn);
  assert.notEqual(inc.resultsIn, complete.resultsIn);
  assert.deepEqual(
    inc.changes.map((c) => [c.action, c.task?.id]),
    [['UPDATE', 't-new']],
  );

  // Status from the agent lands in the store; an older state after it is ignored.
  await until('the status sink', () => reporter.sink !== undefined);
  await reporter.sink!([{ taskId: 't-new', status: blank(TaskStatus, { state: 'RUNNING', message: 'started' }) }]);
  assert.equal(store.get('tasks', 't-new')?.status?.state, 'RUNNING');
  await reporter.sink!([{ taskId: 't-new', status: blank(TaskStatus, { state: 'PREPARING', message: 'late' }) }]);
  assert.equal(store.get('tasks', 't-new')?.status?.message, 'started');

  // Another node's task, and an unknown one, are ignored.
  await reporter.sink!([
    { taskId: 't-other', status: blank(TaskStatus, { state: 'FAILED', message: 'forged' }) },
    { taskId: 'no-such-task', status: blank(TaskStatus, { state: 'RUNNING' }) },
  ]);
  assert.equal(store.get('tasks', 't-other')?.status?.state, 'ASSIGNED');

  // Moving a task away removes it from this node.
  await store.update((tx) => {
    const moved = structuredClone(tx.get('tasks', 't-before')!);
    moved.nodeId = 'worker2';
    tx.update('tasks', moved);
  });
  await until('a REMOVE assignment', () => worker.messages.some((m) => m.changes.some((c) => c.action === 'REMOVE' && c.task?.id === 't-before')));
  for (let i = 1; i < worker.messages.length; i++) assert.equal(worker.messages[i]!.appliesTo, worker.messages[i - 1]!.resultsIn);

  // Heartbeats keep the node READY well past the expiry window (2.5 periods).
  const seen = heartbeats.count;
  await until('more heartbeats', () => heartbeats.count >= seen + 4);
  assert.equal(store.get('nodes', 'worker1')?.status?.state, 'READY');

  // No more heartbeats: the node goes DOWN (after PERIOD_MS × 2.5; the deadline is generous).
  await agent.stop();
  await until('worker1 DOWN', () => store.get('nodes', 'worker1')?.status?.state === 'DOWN', 10_000);
  assert.equal(store.get('nodes', 'worker1')?.status?.message, 'heartbeat failure');
});

test('a heartbeat with another node\'s session is refused', async (t) => {
  const { ca, store, address } = await setup(t);
  let sessionId = '';
  const worker = new FakeWorker();
  const agent = new AgentSession({
    managers: [address],
    credentials: clientCreds(ca, nodeCreds(ca, 'worker1', 'worker')),
    channelOptions: CLIENT_OPTIONS,
    description: { hostname: 'w1', platform: null, resources: null, engineVersion: '', engineLabels: {} },
    worker,
    reporter: new FakeReporter(),
    onSession: (m) => (sessionId = m.sessionId),
  });
  agent.start();
  t.after(() => agent.stop());
  await until('a session', () => sessionId !== '' && store.get('nodes', 'worker1')?.status?.state === 'READY');

  // worker2's certificate with worker1's session id: the node is taken from the certificate.
  const client = new DispatcherClient(address, clientCreds(ca, nodeCreds(ca, 'worker2', 'worker')), CLIENT_OPTIONS);
  t.after(() => client.close());
  const err = await new Promise<grpc.ServiceError | null>((resolve) =>
    client.heartbeat({ sessionId }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(e)),
  );
  assert.equal(err?.code, grpc.status.NOT_FOUND);
});

test('a certificate from another CA is refused', async (t) => {
  const { ca, store, address } = await setup(t);
  // The client trusts the cluster's CA, but its own certificate comes from another one.
  const foreign = nodeCreds(RootCA.create(), 'worker1', 'worker');
  const client = new DispatcherClient(
    address,
    grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(foreign.keyPem), Buffer.from(foreign.certPem)),
    CLIENT_OPTIONS,
  );
  t.after(() => client.close());
  const err = await new Promise<grpc.ServiceError | null>((resolve) =>
    client.heartbeat({ sessionId: '' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(e)),
  );
  assert.ok(err, 'the call must fail');
  assert.notEqual(err.code, grpc.status.OK);
  assert.equal(store.get('nodes', 'worker1')?.status?.state, 'UNKNOWN');
});

test('a manager that does not lead refuses sessions', async (t) => {
  const { ca, address } = await setup(t, () => false);
  const client = new DispatcherClient(address, clientCreds(ca, nodeCreds(ca, 'worker1', 'worker')), CLIENT_OPTIONS);
  t.after(() => client.close());
  const err = await new Promise<grpc.ServiceError | null>((resolve) =>
    client.heartbeat({ sessionId: '' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (e) => resolve(e)),
  );
  assert.equal(err?.code, grpc.status.UNAVAILABLE);
  assert.match(err.details, /not the leader/);

  const session = client.session({ description: null, sessionId: '' });
  const streamErr = await new Promise<grpc.ServiceError>((resolve) => session.on('error', resolve));
  assert.equal(streamErr.code, grpc.status.UNAVAILABLE);
});

test('increments: delete and orphaning remove a task, status-only changes are not echoed', async (t) => {
  const { ca, store, address } = await setup(t);
  await store.update((tx) => {
    tx.create('tasks', task('a', 'worker1'));
    tx.create('tasks', task('b', 'worker1'));
    tx.create('tasks', task('c', 'worker1'));
  });
  const { worker } = startAgent(t, ca, [address], 'worker1');
  await until('a COMPLETE assignment', () => worker.messages.length >= 1);
  assert.deepEqual(worker.messages[0]!.changes.map((c) => c.task?.id).sort(), ['a', 'b', 'c']);

  const changes = () => worker.messages.slice(1).flatMap((m) => m.changes.map((c) => `${c.action} ${c.task?.id}`));
  // A status change alone (what the agent itself reported) is not sent back.
  await store.update((tx) => {
    const a = structuredClone(tx.get('tasks', 'a')!);
    a.status = blank(TaskStatus, { state: 'RUNNING' });
    tx.update('tasks', a);
  });
  await store.update((tx) => tx.remove('tasks', 'b'));
  await store.update((tx) => {
    const c = structuredClone(tx.get('tasks', 'c')!);
    c.desiredState = 'ORPHANED';
    tx.update('tasks', c);
  });
  await until('two removals', () => changes().length >= 2);
  assert.deepEqual(changes().sort(), ['REMOVE b', 'REMOVE c']);
  // A desired-state change is sent.
  await store.update((tx) => {
    const a = structuredClone(tx.get('tasks', 'a')!);
    a.desiredState = 'SHUTDOWN';
    tx.update('tasks', a);
  });
  await until('the shutdown', () => changes().includes('UPDATE a'));
  assert.equal(changes().length, 3);
  for (let i = 1; i < worker.messages.length; i++) assert.equal(worker.messages[i]!.appliesTo, worker.messages[i - 1]!.resultsIn);
});

test('a worker that rejects an increment gets a new session and a COMPLETE set', async (t) => {
  const { ca, store, address } = await setup(t);
  await store.update((tx) => tx.create('tasks', task('a', 'worker1')));
  const messages: AssignmentsMessage[] = [];
  let rejected = false;
  const agent = new AgentSession({
    managers: [address],
    credentials: clientCreds(ca, nodeCreds(ca, 'worker1', 'worker')),
    channelOptions: CLIENT_OPTIONS,
    description: { hostname: 'w1', platform: null, resources: null, engineVersion: '', engineLabels: {} },
    worker: {
      applyAssignments: (m) => {
        messages.push(m);
        if (m.type === 'INCREMENTAL' && !rejected) {
          rejected = true;
          return Promise.reject(new Error('gap'));
        }
        return Promise.resolve();
      },
    },
    reporter: new FakeReporter(),
  });
  agent.start();
  t.after(() => agent.stop());
  await until('a COMPLETE assignment', () => messages.length >= 1);
  await store.update((tx) => tx.create('tasks', task('b', 'worker1')));
  await until('a second COMPLETE set', () => messages.filter((m) => m.type === 'COMPLETE').length >= 2);
  const last = messages.filter((m) => m.type === 'COMPLETE').at(-1)!;
  assert.deepEqual(last.changes.map((c) => c.task?.id).sort(), ['a', 'b']);
  assert.equal(store.get('nodes', 'worker1')?.status?.state, 'READY');
});
