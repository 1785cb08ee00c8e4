// The log broker's core without gRPC: which nodes a subscription goes to, how their lines reach
// the subscriber (checked and named), when a subscription without follow is complete, and how
// unavailable nodes are reported instead of silently missing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { LogBroker } from '../../../manager/logbroker/broker.js';
import { LogBrokerError, resolveTarget } from '../../../manager/logbroker/resolve.js';
import { LocalProposer, MemoryStore } from '../../../manager/store/memory.js';
import { blank } from '../../../manager/store/blank.js';
import { Annotations, Node, NodeDescription, NodeStatus, ReplicatedService, Service, ServiceSpec, Task, TaskStatus, type TaskState } from '../../../proto/gen/objects.js';
import type { LogMessage, SubscribeLogsMessage, SubscribeLogsRequest, SubscriptionMessage } from '../../../proto/gen/logs.js';

class SubscriberRecorder {
  readonly messages: SubscribeLogsMessage[] = [];
  ended = false;
  failure: LogBrokerError | undefined;
  write(m: SubscribeLogsMessage): void {
    assert.equal(this.ended || this.failure !== undefined, false, 'no write after the end');
    this.messages.push(m);
  }
  end(): void {
    this.ended = true;
  }
  fail(e: LogBrokerError): void {
    this.failure = e;
  }
  get lines(): string[] {
    return this.messages.flatMap((m) => m.messages.map((l) => `${l.context?.serviceName}.${l.context?.taskSlot}@${l.context?.nodeName} ${l.line}`));
  }
  get unavailable(): string[] {
    return this.messages.flatMap((m) => m.unavailable.map((u) => `${u.nodeName} ${u.reason}`));
  }
}

class ListenerRecorder {
  readonly messages: SubscriptionMessage[] = [];
  failure: LogBrokerError | undefined;
  write(m: SubscriptionMessage): void {
    this.messages.push(m);
  }
  fail(e: LogBrokerError): void {
    this.failure = e;
  }
  get opened(): SubscriptionMessage[] {
    return this.messages.filter((m) => !m.close);
  }
  get closed(): string[] {
    return this.messages.filter((m) => m.close).map((m) => m.id);
  }
}

function task(id: string, serviceId: string, slot: number, nodeId: string, state: TaskState = 'RUNNING'): Task {
  return blank(Task, { id, serviceId, serviceName: serviceId, slot, nodeId, desiredState: 'RUNNING', status: blank(TaskStatus, { state }) });
}

async function setup() {
  const store = new MemoryStore();
  store.setProposer(new LocalProposer(store));
  await store.update((tx) => {
    for (const n of ['n1', 'n2', 'n3']) {
      tx.create('nodes', blank(Node, { id: n, description: blank(NodeDescription, { hostname: `host-${n}` }), status: blank(NodeStatus, { state: 'READY' }) }));
    }
    tx.create('services', blank(Service, { id: 'svc-web', spec: blank(ServiceSpec, { annotations: blank(Annotations, { name: 'web' }), replicated: blank(ReplicatedService, { replicas: 12 }) }) }));
    tx.create('services', blank(Service, { id: 'svc-db', spec: blank(ServiceSpec, { annotations: blank(Annotations, { name: 'db' }), replicated: blank(ReplicatedService, { replicas: 1 }) }) }));
    tx.create('services', blank(Service, { id: 'svc-empty', spec: blank(ServiceSpec, { annotations: blank(Annotations, { name: 'empty' }) }) }));
    tx.create('tasks', task('t-web1', 'svc-web', 1, 'n1'));
    tx.create('tasks', task('t-web2', 'svc-web', 2, 'n2'));
    // Not placed yet: no node holds logs of it.
    tx.create('tasks', task('t-web3', 'svc-web', 3, '', 'PENDING'));
    tx.create('tasks', task('t-db1', 'svc-db', 1, 'n3'));
  });
  const broker = new LogBroker({ store });
  broker.start();
  return { store, broker };
}

const request = (target: string, options: Partial<NonNullable<SubscribeLogsRequest['options']>> = {}): SubscribeLogsRequest => ({
  target,
  options: { follow: false, tail: -1, since: null, streams: [], ...options },
});

function line(taskId: string, text: string): LogMessage {
  return { context: { serviceId: '', nodeId: '', taskId, serviceName: '', taskSlot: 0, nodeName: '' }, timestamp: { seconds: 1, nanos: 2 }, stream: 'STDOUT', line: text };
}

test('without follow: sent to the nodes holding tasks, lines named for the subscriber, complete when every node closed', async () => {
  const { broker } = await setup();
  const l1 = new ListenerRecorder();
  const l2 = new ListenerRecorder();
  const l3 = new ListenerRecorder();
  broker.listen('n1', l1);
  broker.listen('n2', l2);
  broker.listen('n3', l3);
  const sub = new SubscriberRecorder();
  broker.subscribe(request('web', { tail: 5 }), sub);

  // The target comes first: Docker pads slots to the replica count's width (12 → 2 digits).
  assert.deepEqual(sub.messages[0]?.target, { serviceId: 'svc-web', serviceName: 'web', taskId: '', slotDigits: 2 });
  assert.equal(l1.opened.length, 1);
  assert.equal(l2.opened.length, 1);
  assert.equal(l3.opened.length, 0, 'n3 holds no task of web');
  const id = l1.opened[0]!.id;
  assert.deepEqual(l1.opened[0]!.selector, { serviceIds: ['svc-web'], taskIds: [] });
  assert.equal(l1.opened[0]!.options?.tail, 5);

  broker.publish('n1', id, [line('t-web1', 'one from n1')]);
  broker.finished('n1', id);
  assert.equal(sub.ended, false, 'n2 has not closed yet');
  broker.publish('n2', id, [line('t-web2', 'one from n2'), line('t-web2', 'two from n2')]);
  broker.finished('n2', id);
  assert.equal(sub.ended, true);
  assert.deepEqual(sub.lines, ['web.1@host-n1 one from n1', 'web.2@host-n2 one from n2', 'web.2@host-n2 two from n2']);
  assert.deepEqual(sub.unavailable, []);
  assert.equal(broker.openSubscriptions, 0);
  // A late line for the finished subscription is refused: the node stops reading.
  assert.throws(() => broker.publish('n1', id, [line('t-web1', 'late')]), (e: LogBrokerError) => e.code === grpc.status.NOT_FOUND);
});

test('a node may only publish its own selected tasks, and only for subscriptions it was sent', async () => {
  const { broker } = await setup();
  const l1 = new ListenerRecorder();
  broker.listen('n1', l1);
  broker.listen('n2', new ListenerRecorder());
  broker.listen('n3', new ListenerRecorder());
  const sub = new SubscriberRecorder();
  broker.subscribe(request('web'), sub);
  const id = l1.opened[0]!.id;
  // n1 speaking for n2's task, and for a task the subscription does not select: dropped.
  broker.publish('n1', id, [line('t-web2', 'forged'), line('t-db1', 'not selected'), line('t-web1', 'genuine')]);
  assert.deepEqual(sub.lines, ['web.1@host-n1 genuine']);
  // n3 was never asked.
  assert.throws(() => broker.publish('n3', id, [line('t-db1', 'x')]), (e: LogBrokerError) => e.code === grpc.status.FAILED_PRECONDITION);
  assert.throws(() => broker.publish('n1', 'no-such-subscription', []), (e: LogBrokerError) => e.code === grpc.status.NOT_FOUND);
});

test('nodes that are not connected, disconnect, break their stream or go DOWN are reported, and the stream still ends', async () => {
  const { broker, store } = await setup();
  const l1 = new ListenerRecorder();
  broker.listen('n1', l1);
  // n2 is not connected at all.
  const absent = new SubscriberRecorder();
  broker.subscribe(request('web'), absent);
  assert.deepEqual(absent.unavailable, ['host-n2 is not available']);
  assert.equal(absent.ended, false, 'n1 still to answer');

  const l2 = new ListenerRecorder();
  const stopListening2 = broker.listen('n2', l2);
  const dropped = new SubscriberRecorder();
  broker.subscribe(request('web'), dropped);
  stopListening2();
  assert.deepEqual(dropped.unavailable, ['host-n2 disconnected']);

  const l2again = new ListenerRecorder();
  broker.listen('n2', l2again);
  const broken = new SubscriberRecorder();
  broker.subscribe(request('web'), broken);
  broker.finished('n2', l2again.opened.at(-1)!.id, 'connection reset');
  assert.deepEqual(broken.unavailable, ['host-n2 stopped publishing: connection reset']);

  const down = new SubscriberRecorder();
  broker.subscribe(request('web'), down);
  await store.update((tx) => {
    const n = structuredClone(tx.get('nodes', 'n2')!);
    n.status = blank(NodeStatus, { state: 'DOWN', message: 'heartbeat failure' });
    tx.update('nodes', n);
  });
  assert.deepEqual(down.unavailable, ['host-n2 is down']);

  // n1 closes every one of them: each ends, incomplete.
  for (const s of [absent, dropped, broken, down]) assert.equal(s.ended, false);
  assert.equal(l1.opened.length, 4);
  for (const m of l1.opened) broker.finished('n1', m.id);
  for (const s of [absent, dropped, broken, down]) assert.equal(s.ended, true);
});

test('a service whose tasks no node holds yet ends at once, empty', async () => {
  const { broker } = await setup();
  const sub = new SubscriberRecorder();
  broker.subscribe(request('empty'), sub);
  assert.equal(sub.ended, true);
  assert.equal(sub.messages.length, 1, 'only the target');
});

test('follow: every connected node is asked, late joiners too, a reconnect only for new lines; cancel tells them all', async () => {
  const { broker } = await setup();
  const l1 = new ListenerRecorder();
  const l3 = new ListenerRecorder();
  broker.listen('n1', l1);
  broker.listen('n3', l3);
  const sub = new SubscriberRecorder();
  const cancel = broker.subscribe(request('web', { follow: true, tail: 10 }), sub);
  // n3 has no web task now but may get one: it is asked too. n2 holds a task and is not there.
  assert.equal(l1.opened.length, 1);
  assert.equal(l3.opened.length, 1);
  assert.deepEqual(sub.unavailable, ['host-n2 is not available']);
  const id = l1.opened[0]!.id;

  const l2 = new ListenerRecorder();
  const stop2 = broker.listen('n2', l2);
  assert.equal(l2.opened[0]?.id, id);
  assert.equal(l2.opened[0]?.options?.tail, 10, 'first time: the whole request');
  broker.publish('n2', id, [line('t-web2', 'hello')]);
  broker.finished('n1', id); // a follow never completes on closes
  assert.equal(sub.ended, false);

  stop2();
  const l2b = new ListenerRecorder();
  broker.listen('n2', l2b);
  assert.equal(l2b.opened[0]?.options?.tail, 0, 'after a reconnect: new lines only');
  // n3 holds no web task: its disconnection is no news for this subscriber.
  assert.deepEqual(sub.unavailable, ['host-n2 is not available', 'host-n2 disconnected']);

  cancel();
  assert.equal(broker.openSubscriptions, 0);
  for (const l of [l1, l3, l2b]) assert.deepEqual(l.closed, [id]);
  assert.deepEqual(sub.lines, ['web.2@host-n2 hello']);
});

test('stop (leadership lost) fails every subscriber and listener with UNAVAILABLE; a stopped broker refuses', async () => {
  const { broker } = await setup();
  const l1 = new ListenerRecorder();
  broker.listen('n1', l1);
  const sub = new SubscriberRecorder();
  broker.subscribe(request('web', { follow: true }), sub);
  broker.stop();
  assert.equal(sub.failure?.code, grpc.status.UNAVAILABLE);
  assert.equal(l1.failure?.code, grpc.status.UNAVAILABLE);
  assert.throws(() => broker.subscribe(request('web'), new SubscriberRecorder()), (e: LogBrokerError) => e.code === grpc.status.UNAVAILABLE);
  assert.throws(() => broker.listen('n1', new ListenerRecorder()), (e: LogBrokerError) => e.code === grpc.status.UNAVAILABLE);
});

test('targets: service name, id or unique prefix first, then a task id or prefix; errors name the value', async () => {
  const { store } = await setup();
  assert.equal(resolveTarget(store, 'web').selector.serviceIds[0], 'svc-web');
  assert.equal(resolveTarget(store, 'svc-db').selector.serviceIds[0], 'svc-db');
  assert.equal(resolveTarget(store, 'svc-w').selector.serviceIds[0], 'svc-web');
  const t = resolveTarget(store, 't-db');
  assert.deepEqual(t.selector, { serviceIds: [], taskIds: ['t-db1'] });
  assert.deepEqual(t.target, { serviceId: 'svc-db', serviceName: 'db', taskId: 't-db1', slotDigits: 1 });
  assert.throws(() => resolveTarget(store, 'svc-'), /service svc- is ambiguous \(3 matches\)/);
  assert.throws(() => resolveTarget(store, 'nope'), (e: LogBrokerError) => e.code === grpc.status.NOT_FOUND && /no such task or service: nope/.test(e.message));
});

test('a full subscriber holds publishers back until it drains', async () => {
  const { broker } = await setup();
  const l1 = new ListenerRecorder();
  broker.listen('n1', l1);
  broker.listen('n2', new ListenerRecorder());
  let full = false;
  const drains: Array<() => void> = [];
  const received: string[] = [];
  broker.subscribe(request('web'), {
    write: (m) => {
      received.push(...m.messages.map((x) => x.line));
      return !full;
    },
    onDrain: (cb) => drains.push(cb),
    end: () => undefined,
    fail: () => undefined,
  });
  const id = l1.opened[0]!.id;
  assert.equal(broker.publish('n1', id, [line('t-web1', 'a')]), true);
  full = true;
  assert.equal(broker.publish('n1', id, [line('t-web1', 'b')]), false, 'delivered, but the publisher must wait');
  let resumed = false;
  broker.whenWritable(id, () => (resumed = true));
  assert.equal(resumed, false);
  full = false;
  drains.shift()!();
  assert.equal(resumed, true);
  assert.deepEqual(received, ['a', 'b']);
});
