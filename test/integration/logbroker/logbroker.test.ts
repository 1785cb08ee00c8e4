// `service logs` end to end, for real: a manager (Raft, store, CA) whose log broker is served over
// mutual TLS; two nodes' log publishers reading container logs in conmon's k8s-file format from
// their runtime layouts (a rotated file included); the CLI command talking to a daemon-style
// local socket. Covers --tail, --since, -t, the per-task form, a follower manager forwarding the
// stream to the leader, an agent finding the leader through a follower, a node that is gone
// (incomplete stream, exit 1), and -f receiving the lines of a real runc container as it writes
// them. (The broker has a server of its own here: manager.ts registers it once wired in.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { newId } from '../../../manager/ca/ca.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../../../manager/ca/tlsconfig.js';
import { blank } from '../../../manager/store/blank.js';
import { LogBroker } from '../../../manager/logbroker/broker.js';
import { LogsFrontend, registerLocalLogs } from '../../../manager/logbroker/frontend.js';
import { LogsService } from '../../../proto/gen/logs.js';
import { LogPublisher } from '../../../agent/logs/publisher.js';
import { runcTaskLogs } from '../../../agent/logs/source.js';
import { Layout } from '../../../agent/runtime/runc/layout.js';
import { containerIdFor } from '../../../agent/worker/naming.js';
import { runServiceLogs, serviceLogsFlags } from '../../../cli/commands/servicelogs.js';
import { parseFlags } from '../../../util/flags.js';
import { Annotations, Node, NodeDescription, NodeStatus, ReplicatedService, Service, ServiceSpec, Task, TaskStatus } from '../../../proto/gen/objects.js';
import { waitFor } from '../../support/wait.js';
import { setupRuntime } from '../runtime/harness.js';
import { fakeContainer, foundCluster, freePort, issue, k8s, scratch } from './fixtures.js';

class Collector {
  text = '';
  write(s: string): boolean {
    this.text += s;
    return true;
  }
  once(): this {
    return this;
  }
  get lines(): string[] {
    return this.text.split('\n').filter((l) => l !== '');
  }
}

async function cli(socket: string, argv: string[], signal?: AbortSignal) {
  const parsed = parseFlags(argv, serviceLogsFlags);
  const out = new Collector();
  const err = new Collector();
  const ctx = { args: parsed.args, flags: parsed.flags, global: { host: `unix://${socket}` }, out: out as unknown as NodeJS.WritableStream, err: err as unknown as NodeJS.WritableStream };
  const code = runServiceLogs(ctx, { signal });
  return { code, out, err };
}

async function run(socket: string, argv: string[]) {
  const r = await cli(socket, argv);
  return { code: await r.code, out: r.out.lines, err: r.err.lines };
}

function task(id: string, serviceId: string, slot: number, nodeId: string): Task {
  return blank(Task, { id, serviceId, slot, nodeId, desiredState: 'RUNNING', status: blank(TaskStatus, { state: 'RUNNING', message: 'started' }) });
}

async function listen(server: grpc.Server, addr: string, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync(addr, creds, (err, port) => (err ? reject(err) : resolve(port))));
}

test('service logs across two nodes: tail, since, timestamps, one task, a forwarding follower, a node gone, follow of a real container', async (t) => {
  const { dir, cleanup } = await scratch(t, 'logs');

  // ---- a real manager, leading a one-manager cluster -----------------------------------------
  const { ca, manager, certs: managerCert } = await foundCluster(dir, cleanup, 'manager-host');
  await waitFor('the manager to lead', () => manager.isLeader && manager.store.all('clusters').length > 0);
  const store = manager.store;

  // Two worker nodes with one task each of service web (as many replicas, so the orchestrator
  // running on this leader has nothing to add).
  const [n1, n2] = [newId(), newId()];
  const [t1, t2] = [newId(), newId()];
  const serviceId = newId();
  await store.update((tx) => {
    for (const [id, host] of [
      [n1, 'host-one'],
      [n2, 'host-two'],
    ] as const) {
      tx.create('nodes', blank(Node, { id, role: 'WORKER', description: blank(NodeDescription, { hostname: host }), status: blank(NodeStatus, { state: 'READY' }) }));
    }
    tx.create('services', blank(Service, { id: serviceId, spec: blank(ServiceSpec, { annotations: blank(Annotations, { name: 'web' }), replicated: blank(ReplicatedService, { replicas: 2 }) }) }));
    tx.create('tasks', task(t1, serviceId, 1, n1));
    tx.create('tasks', task(t2, serviceId, 2, n2));
  });

  // ---- the leader's broker on a mutual-TLS port, and a daemon-style local socket ------------
  const brokerServer = new grpc.Server();
  cleanup.push(() => brokerServer.forceShutdown());
  const broker = new LogBroker({ store, leaderAddr: () => undefined });
  broker.register(brokerServer);
  const leaderFrontend = new LogsFrontend({ broker, isLeader: () => true, leaderAddr: () => undefined });
  const leaderDialing = { credentials: () => clusterChannelCredentials(ca.certPem, managerCert.cert, managerCert.key) };
  brokerServer.addService(LogsService, leaderFrontend.clusterHandlers());
  const brokerPort = await listen(
    brokerServer,
    '127.0.0.1:0',
    grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ private_key: Buffer.from(managerCert.key), cert_chain: Buffer.from(managerCert.cert) }], true),
  );
  const brokerAddr = `127.0.0.1:${brokerPort}`;
  broker.start();
  cleanup.push(() => broker.stop('test over'));

  const localServer = new grpc.Server();
  cleanup.push(() => localServer.forceShutdown());
  registerLocalLogs(localServer, () => leaderFrontend, leaderDialing);
  const socket = join(dir, 'leader.sock');
  await listen(localServer, `unix://${socket}`, grpc.ServerCredentials.createInsecure());

  // ---- the nodes: container logs on disk, a publisher each ----------------------------------
  const layouts = { [n1]: new Layout(join(dir, 'n1')), [n2]: new Layout(join(dir, 'n2')) };
  await fakeContainer(layouts[n1]!, t1, k8s(1, 'stdout', 'one: first') + k8s(3, 'stdout', 'one: third') + k8s(4, 'stderr', 'one: oops'));
  // n2's log was rotated once: its oldest line is in ctr.log.1. A long line came in pieces (P).
  await fakeContainer(
    layouts[n2]!,
    t2,
    k8s(2, 'stdout', 'two: second') + '2024-05-01T10:00:05.000000123+00:00 stdout P two: a long \n' + k8s(5, 'stdout', 'line in pieces'),
    [k8s(0, 'stdout', 'two: zeroth')],
  );
  const tasksOf = { [n1]: [store.get('tasks', t1)!], [n2]: [store.get('tasks', t2)!] };
  const publishers = new Map<string, LogPublisher>();
  const startPublisher = (nodeId: string, managers = [brokerAddr]) => {
    const creds = issue(ca, nodeId, 'worker');
    const p = new LogPublisher({
      managers,
      credentials: clusterChannelCredentials(ca.certPem, creds.cert, creds.key),
      channelOptions: MANAGER_CHANNEL_OPTIONS,
      source: runcTaskLogs({ list: () => tasksOf[nodeId]!.map((task) => ({ task })) }, { layout: layouts[nodeId]! }),
      pollMs: 20,
      taskScanMs: 50,
    });
    p.start();
    publishers.set(nodeId, p);
    cleanup.push(() => p.stop());
  };
  startPublisher(n1);
  startPublisher(n2);
  // Both listening: a read with no unavailable node ends with exit 0 and no warning.
  await waitFor('both publishers to listen', async () => {
    const r = await run(socket, ['web', '--tail', '0']);
    return r.code === 0 && r.err.length === 0;
  });

  const id1 = t1.slice(0, 12);
  const id2 = t2.slice(0, 12);
  const byNode = (lines: string[], host: string) => lines.filter((l) => l.includes(`@${host}`));

  await t.test('all lines of every task, in order per task, stderr on stderr', async () => {
    const r = await run(socket, ['web']);
    assert.equal(r.code, 0);
    assert.deepEqual(byNode(r.out, 'host-one'), [`web.1.${id1}@host-one    | one: first`, `web.1.${id1}@host-one    | one: third`]);
    assert.deepEqual(r.out.filter((l) => l.includes('@host-two')), [
      `web.2.${id2}@host-two    | two: zeroth`,
      `web.2.${id2}@host-two    | two: second`,
      `web.2.${id2}@host-two    | two: a long line in pieces`,
    ]);
    assert.deepEqual(r.err, [`web.1.${id1}@host-one    | one: oops`]);
  });

  await t.test('--tail N: the last N lines of each task', async () => {
    const r = await run(socket, ['web', '--tail', '1', '--no-task-ids']);
    assert.equal(r.code, 0);
    assert.deepEqual(r.out, ['web.2@host-two    | two: a long line in pieces']);
    assert.deepEqual(r.err, ['web.1@host-one    | one: oops']);
  });

  await t.test('--since: lines at or after the time, to the nanosecond; -t prints their timestamps', async () => {
    const r = await run(socket, ['web', '--since', '2024-05-01T10:00:03.000000123Z', '-t', '--raw']);
    assert.equal(r.code, 0);
    assert.deepEqual(r.out.sort(), ['2024-05-01T10:00:03.000000123Z one: third', '2024-05-01T10:00:05.000000123Z two: a long line in pieces']);
    assert.deepEqual(r.err, ['2024-05-01T10:00:04.000000123Z one: oops']);
    // One nanosecond later, the line at :03 is out.
    const later = await run(socket, ['web', '--since', '2024-05-01T10:00:03.000000124Z', '--raw']);
    assert.deepEqual(later.out, ['two: a long line in pieces']);
  });

  await t.test('the per-task form: a task id prefix reads only that task', async () => {
    const r = await run(socket, [t2.slice(0, 10)]);
    assert.equal(r.code, 0);
    assert.equal(r.out.length, 3);
    assert.ok(r.out.every((l) => l.startsWith(`web.2.${id2}@host-two    | two: `)), r.out.join('\n'));
    assert.deepEqual(r.err, []);
    await assert.rejects(run(socket, ['no-such-thing']), /no such task or service: no-such-thing/);
  });

  await t.test("a follower manager's local socket forwards the stream to the leader", async () => {
    const followerCert = issue(ca, newId(), 'manager');
    const idle = new LogBroker({ store }); // never started: this manager does not lead
    const follower = new LogsFrontend({ broker: idle, isLeader: () => false, leaderAddr: () => brokerAddr });
    const server = new grpc.Server();
    cleanup.push(() => server.forceShutdown());
    registerLocalLogs(server, () => follower, { credentials: () => clusterChannelCredentials(ca.certPem, followerCert.cert, followerCert.key) });
    const followerSocket = join(dir, 'follower.sock');
    await listen(server, `unix://${followerSocket}`, grpc.ServerCredentials.createInsecure());
    const r = await run(followerSocket, ['web', '--tail', '1']);
    assert.equal(r.code, 0);
    assert.deepEqual(r.out, [`web.2.${id2}@host-two    | two: a long line in pieces`]);
    assert.deepEqual(r.err, [`web.1.${id1}@host-one    | one: oops`]);
    // A worker's daemon has no manager: the command says so.
    const workerServer = new grpc.Server();
    cleanup.push(() => workerServer.forceShutdown());
    registerLocalLogs(workerServer, () => null, leaderDialing);
    const workerSocket = join(dir, 'worker.sock');
    await listen(workerServer, `unix://${workerSocket}`, grpc.ServerCredentials.createInsecure());
    await assert.rejects(run(workerSocket, ['web']), /not a swarm manager/);
  });

  await t.test('-f on a real runc container: lines arrive as the container writes them', async (tt) => {
    const { runtime, rootfs, dir: rtDir } = await setupRuntime(tt, { pollMs: 20, logRotateIntervalMs: 0 });
    const shared = join(rtDir, 'shared');
    await mkdir(shared);
    const live = newId();
    const liveService = newId();
    await store.update((tx) => {
      tx.create('services', blank(Service, { id: liveService, spec: blank(ServiceSpec, { annotations: blank(Annotations, { name: 'live' }), replicated: blank(ReplicatedService, { replicas: 1 }) }) }));
      tx.create('tasks', task(live, liveService, 1, n1));
    });
    await runtime.create({
      id: containerIdFor(live),
      rootfs,
      mounts: [{ type: 'bind', source: shared, target: '/shared' }],
      command: ['sh', '-c', 'echo ready; while [ ! -e /shared/go ]; do sleep 0.02; done; echo "after go"; echo "to stderr" >&2; sleep 30'],
    });
    await runtime.start(containerIdFor(live));
    // Node one's agent now has this task, its container in the real runtime's layout.
    const realSource = runcTaskLogs({ list: () => [{ task: store.get('tasks', live)! }] }, runtime);
    const creds = issue(ca, n1, 'worker');
    await publishers.get(n1)!.stop();
    const p = new LogPublisher({ managers: [brokerAddr], credentials: clusterChannelCredentials(ca.certPem, creds.cert, creds.key), channelOptions: MANAGER_CHANNEL_OPTIONS, source: realSource, pollMs: 20, taskScanMs: 50 });
    p.start();
    cleanup.push(() => p.stop());

    const abort = new AbortController();
    const follow = await cli(socket, [live, '-f', '-t'], abort.signal);
    await waitFor(() => `"ready" in ${JSON.stringify(follow.out.text)}`, () => follow.out.text.includes('| ready'));
    assert.equal(follow.out.text.includes('after go'), false);
    await writeFile(join(shared, 'go'), '');
    await waitFor(() => `"after go" in ${JSON.stringify(follow.out.text)}`, () => follow.out.text.includes('| after go') && follow.err.text.includes('| to stderr'));
    assert.match(follow.out.lines[0]!, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{9}Z live\\.1\\.${live.slice(0, 12)}@host-one    \\| ready$`));
    abort.abort();
    assert.equal(await follow.code, 0);
    await waitFor('the broker to close the follow', () => broker.openSubscriptions === 0);
    await runtime.stop(containerIdFor(live), { graceMs: 0 });
  });

  await t.test('an agent that knows only a dead manager and a follower finds the leader through the follower', async () => {
    const followerServer = new grpc.Server();
    cleanup.push(() => followerServer.forceShutdown());
    new LogBroker({ store, leaderAddr: () => brokerAddr }).register(followerServer); // not started: not the leader
    const followerPort = await listen(
      followerServer,
      '127.0.0.1:0',
      grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ private_key: Buffer.from(managerCert.key), cert_chain: Buffer.from(managerCert.cert) }], true),
    );
    await publishers.get(n2)!.stop();
    startPublisher(n2, [`127.0.0.1:${await freePort()}`, `127.0.0.1:${followerPort}`]);
    const r = await waitFor('node two back, through the follower', async () => {
      const x = await run(socket, [t2.slice(0, 10), '--tail', '1']);
      return x.code === 0 ? x : undefined;
    });
    assert.deepEqual(r.out, [`web.2.${id2}@host-two    | two: a long line in pieces`]);
  });

  await t.test('a node that is gone: the other node\'s lines, then an incomplete-stream warning and exit 1', async () => {
    await publishers.get(n2)!.stop();
    const r = await waitFor('node two to be missed', async () => {
      const x = await run(socket, [t2.slice(0, 10), '--no-task-ids']);
      return x.code === 1 ? x : undefined;
    });
    assert.deepEqual(r.out, []);
    assert.deepEqual(r.err, [`warning: incomplete log stream. some logs could not be retrieved for the following reasons: node host-two (${n2}) is not available`]);
    // A follow says so at once, and goes on.
    const abort = new AbortController();
    const follow = await cli(socket, ['web', '-f'], abort.signal);
    await waitFor('the warning', () => follow.err.text.includes(`warning: node host-two (${n2}) is not available`));
    abort.abort();
    assert.equal(await follow.code, 0);
  });

  // Follows that were stopped leave nothing open on the broker, and the leader's orchestrator had
  // nothing to add to the services (every line above came from the tasks made here).
  await waitFor('no open subscriptions', () => broker.openSubscriptions === 0);
  assert.equal(store.all('tasks').length, 3);
});
