// The Control API end to end in one process: a real manager (Raft, store, allocator, orchestrator,
// scheduler, cluster port with authz) behind daemon/control.ts served on a unix socket, called
// with the generated gRPC client as the CLI calls it. What the reconcilers make of each write is
// awaited in the store: networks get subnets and VXLAN ids, services their VIPs, the orchestrator
// creates tasks, the task reaper removes them with their service.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Manager, newRaftId } from '../../../manager/manager.js';
import { RootCA, newId, newNodeKeyAndCsr } from '../../../manager/ca/ca.js';
import { formatJoinToken } from '../../../manager/ca/token.js';
import { clusterChannelCredentials, MANAGER_CHANNEL_OPTIONS } from '../../../manager/ca/tlsconfig.js';
import { requestNodeCertificate } from '../../../daemon/join.js';
import { Swarm } from '../../../daemon/swarm.js';
import { registerControl } from '../../../daemon/control.js';
import { ControlClient } from '../../../proto/gen/control.js';
import { DispatcherClient } from '../../../proto/gen/dispatcher.js';
import { MembershipClient, type JoinRaftResponse } from '../../../proto/gen/membership.js';
import { blank } from '../../../manager/store/blank.js';
import { Annotations, ContainerSpec, EndpointSpec, IPAMConfig, IPAMOptions, NetworkAttachmentConfig, NetworkSpec, PortConfig, ServiceSpec, TaskSpec } from '../../../proto/gen/objects.js';
import { silentLogger } from '../../../util/log.js';
import { waitFor } from '../../support/wait.js';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A unary method's request and response types, read off its last overload (request, callback). */
type Types<M> = M extends (request: infer Q, callback: grpc.requestCallback<infer R>) => grpc.ClientUnaryCall ? [Q, R] : never;
type Method = { [K in keyof ControlClient]: Types<ControlClient[K]> extends never ? never : K }[keyof ControlClient];

/** One call, as a promise. */
function call<K extends Method>(client: ControlClient, name: K, request: Types<ControlClient[K]>[0]): Promise<Types<ControlClient[K]>[1]> {
  const method = client[name] as unknown as (q: unknown, m: grpc.Metadata, o: grpc.CallOptions, cb: grpc.requestCallback<Types<ControlClient[K]>[1]>) => grpc.ClientUnaryCall;
  return new Promise((resolve, reject) =>
    method.call(client, request, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (err, res) => (err || !res ? reject(err ?? new Error('no response')) : resolve(res))),
  );
}

async function failsWith(p: Promise<unknown>, code: grpc.status, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: grpc.ServiceError) => {
    assert.equal(grpc.status[e.code], grpc.status[code], e.details);
    assert.match(e.details, message);
    return true;
  });
}

/** shoald's control socket over `manager`, as the daemon serves it (a Swarm whose manager runs). */
async function serveControl(root: string, hostname: string, manager: Manager, nodeId: string, addr: string, cleanups: (() => Promise<void> | void)[]): Promise<ControlClient> {
  const dataRoot = join(root, `data-${hostname}`);
  const swarm = new Swarm(dataRoot, silentLogger);
  swarm.state = { nodeId, role: 'manager', raftId: manager.config.raftId, listenAddr: addr, advertiseAddr: addr, hostname, managers: [addr] };
  swarm.manager = manager;
  // The node's certificate files, as swarm init/join leave them: a follower forwards writes with them.
  mkdirSync(join(dataRoot, 'swarm'), { recursive: true });
  writeFileSync(join(dataRoot, 'swarm', 'ca.pem'), manager.config.certs.ca);
  writeFileSync(join(dataRoot, 'swarm', 'node.pem'), manager.config.certs.cert);
  writeFileSync(join(dataRoot, 'swarm', 'node.key'), manager.config.certs.key);
  const server = new grpc.Server();
  registerControl(server, swarm, dataRoot);
  const socket = join(root, `${hostname}.sock`);
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  cleanups.push(() => server.forceShutdown());
  const client = new ControlClient(`unix://${socket}`, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  return client;
}

const webSpec = (replicas: number) =>
  blank(ServiceSpec, {
    annotations: blank(Annotations, { name: 'web', labels: { tier: 'front' } }),
    task: blank(TaskSpec, { container: blank(ContainerSpec, { image: 'busybox:1.36' }), networks: [blank(NetworkAttachmentConfig, { target: 'front' })] }),
    replicated: { replicas },
    endpoint: blank(EndpointSpec, { mode: 'VIP', ports: [blank(PortConfig, { targetPort: 80, publishedPort: 8080, protocol: 'TCP', publishMode: 'INGRESS' })] }),
  });

test('services, networks, nodes and configs through the control socket of a real manager', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'controlapi-'));
  const cleanups: (() => Promise<void> | void)[] = [];
  t.after(async () => {
    for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => {});
    rmSync(root, { recursive: true, force: true });
  });

  // A founding manager, as `swarm init` starts it.
  const ca = RootCA.create();
  const nodeId = newId();
  const { keyPem, csrPem } = newNodeKeyAndCsr(nodeId);
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const manager = await Manager.start({
    nodeId,
    raftId: newRaftId(),
    dataDir: join(root, 'manager'),
    listenAddr: addr,
    advertiseAddr: addr,
    hostname: 'founder',
    certs: { ca: ca.certPem, cert: ca.issue(csrPem, { nodeId, role: 'manager' }), key: keyPem },
    bootstrap: { rootCA: ca },
    tickMs: 20,
  });
  cleanups.push(() => manager.stop());
  const cluster = await waitFor('the cluster object', () => manager.store.all('clusters')[0]);
  await waitFor('the ingress network to be allocated', () => manager.store.all('networks')[0]?.ipam?.configs.length);

  // The daemon's control handlers on a unix socket, over this manager.
  const client = await serveControl(root, 'founder', manager, nodeId, addr, cleanups);

  // A network: stored, then allocated a subnet and a VXLAN id by the allocator.
  const { network } = await call(client, 'createNetwork', {
    spec: blank(NetworkSpec, { annotations: blank(Annotations, { name: 'front' }), ipam: blank(IPAMOptions, { configs: [blank(IPAMConfig, { subnet: '10.77.0.0/24' })] }) }),
  });
  assert.equal(network?.spec?.scope, 'swarm');
  const allocated = await waitFor('the network to be allocated', () => manager.store.get('networks', network!.id)?.driverState?.options);
  assert.match(allocated['com.docker.network.driver.overlay.vxlanid_list'] ?? '', /^\d+$/);
  await failsWith(call(client, 'createNetwork', { spec: blank(NetworkSpec, { annotations: blank(Annotations, { name: 'lan' }), driverConfig: { name: 'macvlan', options: {} } }) }), grpc.status.INVALID_ARGUMENT, /needs the host interface it sits on/);

  // A service on it, publishing a port: tasks are created and given addresses on both networks.
  const created = await call(client, 'createService', { spec: webSpec(2) });
  const service = created.service!;
  assert.deepEqual(
    service.spec?.task?.networks.map((n) => n.target),
    [network!.id],
  );
  await failsWith(call(client, 'createService', { spec: webSpec(1) }), grpc.status.ALREADY_EXISTS, /service web already exists/);
  const tasksOf = async () => (await call(client, 'listTasks', { filters: { service: 'web', 'desired-state': 'running' } })).tasks;
  await waitFor('two tasks with network attachments', async () => {
    const tasks = await tasksOf();
    return tasks.length === 2 && tasks.every((t) => t.networks.length === 2 && t.status?.state === 'PENDING');
  });
  await waitFor('VIPs on the ingress network and on front', () => manager.store.get('services', service.id)?.endpoint?.virtualIps.length === 2);
  const listed = await call(client, 'listServices', { filters: { label: 'tier=front' } });
  assert.deepEqual(
    listed.services.map((s) => s.spec?.annotations?.name),
    ['web'],
  );
  assert.deepEqual(listed.statuses[0], { serviceId: service.id, runningTasks: 0, desiredTasks: 2, completedTasks: 0 });
  await failsWith(call(client, 'removeNetwork', { network: 'front' }), grpc.status.FAILED_PRECONDITION, /network "front" \(\w+\) is in use by service "web"/);
  await failsWith(call(client, 'getService', { service: 'nope' }), grpc.status.NOT_FOUND, /service nope not found/);

  // Update against the version read, then a stale one; rollback returns to two replicas.
  const read = (await call(client, 'getService', { service: 'web' })).service!;
  const scaled = (await call(client, 'updateService', { service: 'web', version: read.meta!.version, spec: { ...read.spec!, replicated: { replicas: 3 } }, rollback: '' })).service!;
  assert.equal(scaled.previousSpec?.replicated?.replicas, 2);
  await waitFor('a third task', async () => (await tasksOf()).length === 3);
  await failsWith(
    call(client, 'updateService', { service: 'web', version: read.meta!.version, spec: read.spec, rollback: '' }),
    grpc.status.FAILED_PRECONDITION,
    /update out of sequence/,
  );
  const current = (await call(client, 'getService', { service: service.id })).service!;
  const rolled = (await call(client, 'updateService', { service: 'web', version: current.meta!.version, spec: null, rollback: 'previous' })).service!;
  assert.equal(rolled.spec?.replicated?.replicas, 2);
  await waitFor('back to two tasks', async () => (await tasksOf()).length === 2);

  // Nodes: the last manager cannot be demoted; a joined worker is drained, then removed, and its
  // certificate is refused from then on.
  const founder = (await call(client, 'getNode', { node: 'founder' })).node!;
  assert.equal(founder.managerStatus?.leader, true);
  await failsWith(
    call(client, 'updateNode', { node: 'founder', version: founder.meta!.version, spec: { ...founder.spec!, desiredRole: 'WORKER' } }),
    grpc.status.FAILED_PRECONDITION,
    /attempting to demote the last manager of the swarm/,
  );
  const worker = await requestNodeCertificate(addr, formatJoinToken(ca.digest(), cluster.joinTokens!.worker), { hostname: 'worker1', advertiseAddr: '' });
  const dispatcher = new DispatcherClient(addr, clusterChannelCredentials(worker.caCertPem, worker.certificatePem, worker.keyPem), MANAGER_CHANNEL_OPTIONS);
  cleanups.push(() => dispatcher.close());
  const heartbeat = () =>
    new Promise<grpc.ServiceError | null>((resolve) => dispatcher.heartbeat({ sessionId: 'none' }, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, (e) => resolve(e)));
  assert.equal(grpc.status[(await heartbeat())?.code ?? 0], 'NOT_FOUND', 'the worker passes authz (and has no session)');
  const w = (await call(client, 'getNode', { node: 'worker1' })).node!;
  const drained = (await call(client, 'updateNode', { node: w.id, version: w.meta!.version, spec: { ...w.spec!, availability: 'DRAIN', annotations: { name: '', labels: { zone: 'a' } } } })).node!;
  assert.equal(drained.spec?.availability, 'DRAIN');
  assert.deepEqual((await call(client, 'listNodes', { filters: { 'node.label': 'zone=a' } })).nodes.map((n) => n.id), [w.id]);
  await call(client, 'removeNode', { node: 'worker1', force: false });
  const denied = await heartbeat();
  assert.equal(grpc.status[denied?.code ?? 0], 'PERMISSION_DENIED');
  assert.match(denied?.details ?? '', /was removed from the cluster/);

  // Removing the service: the reaper deletes its tasks, and the network may then go.
  await call(client, 'removeService', { service: 'web' });
  await waitFor('the tasks to be reaped', () => manager.store.find('tasks', 'service', service.id).length === 0);
  await call(client, 'removeNetwork', { network: 'front' });
  assert.deepEqual(
    (await call(client, 'listNetworks', { filters: {} })).networks.map((n) => n.spec?.annotations?.name),
    ['ingress'],
  );

  // A second manager joins. On its control socket reads are answered from its own store; writes
  // are forwarded to the leader over mutual TLS.
  await call(client, 'createService', { spec: { ...webSpec(1), task: { ...webSpec(1).task!, networks: [] }, endpoint: null } });
  const joined = await requestNodeCertificate(addr, formatJoinToken(ca.digest(), cluster.joinTokens!.manager), { hostname: 'second', advertiseAddr: '' });
  const port2 = await freePort();
  const addr2 = `127.0.0.1:${port2}`;
  const membership = new MembershipClient(addr, clusterChannelCredentials(joined.caCertPem, joined.certificatePem, joined.keyPem), MANAGER_CHANNEL_OPTIONS);
  const raft = await new Promise<JoinRaftResponse>((resolve, reject) =>
    membership.joinRaft({ addr: addr2 }, (e, r) => (e || !r ? reject(e ?? new Error('no response')) : resolve(r))),
  );
  membership.close();
  const follower = await Manager.start({
    nodeId: joined.nodeId,
    raftId: raft.raftId,
    dataDir: join(root, 'manager2'),
    listenAddr: addr2,
    advertiseAddr: addr2,
    hostname: 'second',
    certs: { ca: joined.caCertPem, cert: joined.certificatePem, key: joined.keyPem },
    join: raft.members.map((m) => ({ id: m.raftId, addr: m.addr })),
    tickMs: 20,
  });
  cleanups.push(() => follower.stop());
  const client2 = await serveControl(root, 'second', follower, joined.nodeId, addr2, cleanups);
  await waitFor('the service to replicate to the follower', async () => (await call(client2, 'listServices', { filters: { name: 'web' } })).services.length === 1);
  assert.equal((await call(client2, 'getNode', { node: 'founder' })).node?.managerStatus?.leader, true);
  await call(client2, 'removeService', { service: 'web' });
  assert.equal(manager.store.byName('services', 'web'), undefined, 'the leader applied the forwarded write');
  // A bad request forwarded keeps the leader's error and code.
  await failsWith(call(client2, 'removeService', { service: 'nope' }), grpc.status.NOT_FOUND, /nope/);

  // Configs: created through the follower (forwarded), read on both managers; removal is refused
  // while a service uses the config, and allowed once none does.
  const { config } = await call(client2, 'createConfig', { spec: { annotations: { name: 'site', labels: {} }, data: Buffer.from('listen 80;\n') } });
  assert.equal(Buffer.from(manager.store.get('configs', config!.id)!.spec!.data).toString(), 'listen 80;\n');
  assert.equal(Buffer.from((await call(client, 'getConfig', { config: 'site' })).config!.spec!.data).toString(), 'listen 80;\n');
  await waitFor('the config on the follower', async () => (await call(client2, 'listConfigs', { filters: { name: 'site' } })).configs.length === 1);
  await failsWith(call(client, 'createConfig', { spec: { annotations: { name: 'site', labels: {} }, data: Buffer.from('x') } }), grpc.status.ALREADY_EXISTS, /config site already exists/);
  const usesConfig = webSpec(1);
  usesConfig.task = { ...usesConfig.task!, networks: [], container: { ...usesConfig.task!.container!, configs: [{ configId: '', configName: 'site', file: null, data: new Uint8Array(0) }] } };
  usesConfig.endpoint = null;
  const user = (await call(client, 'createService', { spec: usesConfig })).service!;
  assert.deepEqual(user.spec?.task?.container?.configs.map((r) => [r.configId, r.file?.name]), [[config!.id, '/site']]);
  await failsWith(call(client2, 'removeConfig', { config: 'site' }), grpc.status.INVALID_ARGUMENT, /^config 'site' is in use by the following service: web$/);
  await call(client, 'removeService', { service: 'web' });
  await call(client2, 'removeConfig', { config: 'site' });
  assert.deepEqual(manager.store.all('configs'), []);
  await failsWith(call(client, 'getConfig', { config: 'site' }), grpc.status.NOT_FOUND, /config site not found/);
});
