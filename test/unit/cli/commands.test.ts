// The service, network and node commands end to end against a fake Control service: what each
// sends, what it prints, its exit code — and that bad input sends nothing at all.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { FakeControl, FakeError } from './fakecontrol.js';
import type { Network, Node, Service, ServiceSpec, Task } from '../../../proto/gen/objects.js';
import type { CreateNetworkRequest, CreateServiceRequest, GetServiceRequest, RemoveNodeRequest, UpdateNodeRequest, UpdateServiceRequest } from '../../../proto/gen/control.js';
import { normalizeSpec } from '../../../cli/servicespec.js';

const fake = new FakeControl();
before(() => fake.start());
after(() => fake.stop());
beforeEach(() => {
  fake.calls.length = 0;
  for (const k of Object.keys(fake.answers)) delete fake.answers[k];
});

const SERVICE_ID = 'svc0000000000000000000001';

function service(spec: Partial<ServiceSpec> = {}, extra: Partial<Service> = {}): Service {
  return {
    id: SERVICE_ID,
    meta: { version: 42, createdAt: Date.now(), updatedAt: Date.now() },
    spec: normalizeSpec({
      annotations: { name: 'web', labels: {} },
      task: { container: { image: 'nginx:1', labels: {}, command: [], args: [], hostname: '', env: [], dir: '', user: '', mounts: [], stopGracePeriodMs: 0, stopSignal: '', readOnly: false, capAdd: [], capDrop: [], hosts: [], tty: false, configs: [] }, networks: [], forceUpdate: 0 },
      replicated: { replicas: 2 },
      // A short monitor keeps the convergence waits of these tests short.
      update: { parallelism: 1, delayMs: 0, failureAction: 'PAUSE', monitorMs: 1, maxFailureRatio: 0, order: 'STOP_FIRST' },
      ...spec,
    }),
    previousSpec: null,
    specVersion: 42,
    endpoint: null,
    updateStatus: null,
    jobIteration: 0,
    ...extra,
  };
}

function runningTask(slot: number): Task {
  return {
    id: `task${slot}00000000000000000000`,
    meta: { version: 1, createdAt: Date.now() - 60_000, updatedAt: Date.now() },
    spec: service().spec!.task!,
    specVersion: 42,
    serviceId: SERVICE_ID,
    slot,
    nodeId: 'node1',
    annotations: null,
    serviceName: 'web',
    status: { timestamp: Date.now() - 30_000, state: 'RUNNING', message: 'started', err: '', container: null, health: '', hostPorts: [] },
    desiredState: 'RUNNING',
    networks: [],
    endpoint: null,
    jobIteration: 0,
    assignedGenericResources: [],
  };
}

function node(id: string, hostname: string, role: Node['role'] = 'WORKER'): Node {
  return {
    id,
    meta: { version: 7, createdAt: 0, updatedAt: 0 },
    spec: { annotations: { name: '', labels: { zone: 'a' } }, desiredRole: role, availability: 'ACTIVE' },
    description: { hostname, platform: null, resources: null, engineVersion: '', engineLabels: {} },
    status: { state: 'READY', message: '', addr: '' },
    managerStatus: null,
    role,
    certificateFingerprint: '',
  };
}

/** Answers that make a service converge at once: its tasks run on a ready node. */
function converging(svc: Service): void {
  fake.answers.getService = () => ({ service: svc });
  fake.answers.listTasks = () => ({ tasks: [runningTask(1), runningTask(2)], nodeNames: { node1: 'h1' } });
  fake.answers.listNodes = () => ({ nodes: [node('node1', 'h1')] });
}

const request = <T>(method: string): T => {
  const c = fake.calls.find((x) => x.method === method);
  assert.ok(c, `${method} was called (calls: ${fake.methods().join(', ')})`);
  return c.request as T;
};

test('service create -d sends the spec and prints the new id; warnings go to stderr', async () => {
  fake.answers.createService = (req: CreateServiceRequest) => ({ service: service({}, { spec: req.spec }), warnings: ['image nginx:1 could not be accessed'] });
  const r = await fake.run('service', 'create', '-d', '--name', 'web', '--replicas', '2', '-p', '8080:80', 'nginx:1', 'nginx', '-g', 'daemon off;');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `${SERVICE_ID}\n`);
  assert.equal(r.err, 'image nginx:1 could not be accessed\n');
  const spec = request<CreateServiceRequest>('createService').spec!;
  assert.equal(spec.annotations?.name, 'web');
  assert.equal(spec.replicated?.replicas, 2);
  assert.deepEqual(spec.task?.container?.args, ['nginx', '-g', 'daemon off;']);
  assert.equal(spec.endpoint?.ports[0]?.publishedPort, 8080);
  assert.deepEqual(fake.methods(), ['createService']);
});

test('service create waits for convergence and prints Docker\'s progress as plain lines when not on a terminal', async () => {
  const svc = service();
  fake.answers.createService = () => ({ service: svc, warnings: [] });
  converging(svc);
  const r = await fake.run('service', 'create', '--name', 'web', '--replicas', '2', 'nginx:1');
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split('\n');
  assert.equal(lines[0], SERVICE_ID);
  assert.ok(lines.includes('overall progress: 2 out of 2 tasks'), r.out);
  assert.ok(lines.includes(`1/2: running   [${'='.repeat(50)}>]`), r.out);
  assert.equal(lines.at(-2), 'verify: Service converged');
});

test('service create -q waits without drawing', async () => {
  const svc = service();
  fake.answers.createService = () => ({ service: svc, warnings: [] });
  converging(svc);
  const r = await fake.run('service', 'create', '-q', 'nginx:1');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, `${SERVICE_ID}\n`);
  assert.ok(fake.methods().includes('listTasks'));
});

test('bad input is refused with exit code 1 and nothing is sent', async () => {
  for (const argv of [
    ['service', 'create', '--limit-memory', 'lots', 'nginx'],
    ['service', 'create', '--mount', 'type=bind,target=/x', 'nginx'],
    ['service', 'update', '--update-delay', 'soon', 'web'],
    ['service', 'update', '--rollback', '--image', 'x', 'web'],
    ['service', 'scale', 'web=3', 'api=many'],
    ['service', 'ls', '-f', 'colour=red'],
    ['service', 'ps', '-f', 'state', 'web'],
    ['network', 'create', '-d', 'vxlan', 'n'],
    ['network', 'create', '--subnet', '10.0.0.0/24', '--ip-range', '10.1.0.0/25', 'n'],
    ['node', 'update', '--availability', 'away', 'n1'],
  ]) {
    const r = await fake.run(...argv);
    assert.equal(r.code, 1, argv.join(' '));
    assert.match(r.err, /^Error: .+\n$/, argv.join(' '));
  }
  assert.deepEqual(fake.calls, []);
});

test('service ls prints Docker\'s table from the services and their task counts', async () => {
  fake.answers.listServices = () => ({
    services: [service({}, { endpoint: { spec: null, ports: [{ name: '', protocol: 'TCP', targetPort: 80, publishedPort: 8080, publishMode: 'INGRESS' }], virtualIps: [] } })],
    statuses: [{ serviceId: SERVICE_ID, runningTasks: 1, desiredTasks: 2, completedTasks: 0 }],
  });
  const r = await fake.run('service', 'ls');
  assert.equal(r.out, 'ID             NAME      MODE         REPLICAS   IMAGE     PORTS\nsvc000000000   web       replicated   1/2        nginx:1   *:8080->80/tcp\n');
  assert.equal((await fake.run('service', 'ls', '-q')).out, 'svc000000000\n');
  assert.equal((await fake.run('service', 'ls', '--format', '{{.Name}} {{.Replicas}}')).out, 'web 1/2\n');
  // Filters go to the manager, and are applied here too.
  assert.equal((await fake.run('service', 'ls', '-f', 'name=api')).out.split('\n').length, 2);
  assert.deepEqual(fake.calls.at(-1)?.request, { filters: { name: 'api' } });
});

test('service ps resolves the service, lists its tasks with node names, and says so when it does not exist', async () => {
  fake.answers.getService = (req: GetServiceRequest) => {
    if (req.service !== 'web') throw new FakeError(grpc.status.NOT_FOUND, `service ${req.service} not found`);
    return { service: service() };
  };
  fake.answers.listTasks = () => ({ tasks: [runningTask(2), runningTask(1)], nodeNames: { node1: 'h1' } });
  const r = await fake.run('service', 'ps', '-f', 'desired-state=running', 'web');
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split('\n');
  assert.match(lines[0]!, /^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS$/);
  assert.match(lines[1]!, /^task10000000\s+web\.1\s+nginx:1\s+h1\s+Running\s+Running 30 seconds ago$/);
  assert.match(lines[2]!, /^task20000000\s+web\.2\s/);
  assert.deepEqual(request('listTasks'), { filters: { 'desired-state': 'running', service: SERVICE_ID } });
  const missing = await fake.run('service', 'ps', 'nope');
  assert.equal(missing.code, 1);
  assert.equal(missing.err, 'Error: no such service: nope\n');
});

test('service inspect: JSON by default, a template with -f, Docker\'s text with --pretty', async () => {
  fake.answers.getService = (req: GetServiceRequest) => {
    if (req.service !== 'web') throw new FakeError(grpc.status.NOT_FOUND, `service ${req.service} not found`);
    return { service: service() };
  };
  const json = await fake.run('service', 'inspect', 'web');
  assert.equal((JSON.parse(json.out) as { ID: string }[])[0]?.ID, SERVICE_ID, "Docker's names");
  assert.equal((await fake.run('service', 'inspect', '-f', '{{.ID}} {{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}}', 'web')).out, `${SERVICE_ID} web 2\n`);
  assert.match((await fake.run('service', 'inspect', '--pretty', 'web')).out, /^\nID:\t\tsvc0+1\nName:\t\tweb\nService Mode:\tReplicated\n Replicas:\t2\n/);
  const partly = await fake.run('service', 'inspect', 'web', 'ghost');
  assert.equal(partly.code, 1);
  assert.equal((JSON.parse(partly.out) as unknown[]).length, 1);
  assert.equal(partly.err, 'Error: no such service: ghost\n');
  assert.equal((await fake.run('service', 'inspect', '--pretty', '-f', '{{.id}}', 'web')).err, 'Error: --format is incompatible with human friendly format\n');
});

test('service scale sets replicas against the version read, prints Docker\'s line, refuses global services', async () => {
  fake.answers.getService = (req: GetServiceRequest) => ({ service: req.service === 'agent' ? service({ replicated: undefined, global: {} }) : service() });
  fake.answers.updateService = (req: UpdateServiceRequest) => ({ service: service({}, { spec: req.spec }), warnings: [] });
  const r = await fake.run('service', 'scale', '-d', 'web=5', 'agent=2');
  assert.equal(r.code, 1);
  assert.equal(r.out, 'web scaled to 5\n');
  assert.equal(r.err, 'Error: agent: scale can only be used with replicated or replicated-job mode\n');
  const upd = request<UpdateServiceRequest>('updateService');
  assert.deepEqual([upd.service, upd.version, upd.spec?.replicated?.replicas, upd.rollback], [SERVICE_ID, 42, 5, '']);
});

test('service update applies the flags to the current spec, resolving networks to ids', async () => {
  fake.answers.getService = () => ({ service: service() });
  fake.answers.getNetwork = (req: { network: string }) => {
    if (req.network !== 'front') throw new FakeError(grpc.status.NOT_FOUND, `network ${req.network} not found`);
    return { network: { id: 'net123', spec: { annotations: { name: 'front', labels: {} } } } };
  };
  fake.answers.updateService = (req: UpdateServiceRequest) => ({ service: service({}, { spec: req.spec }), warnings: [] });
  const r = await fake.run('service', 'update', '-d', '--image', 'nginx:2', '--network-add', 'front', '--env-add', 'A=1', 'web');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'web\n');
  const upd = request<UpdateServiceRequest>('updateService');
  assert.equal(upd.version, 42);
  assert.equal(upd.spec?.task?.container?.image, 'nginx:2');
  assert.deepEqual(upd.spec?.task?.container?.env, ['A=1']);
  assert.deepEqual(upd.spec?.task?.networks.map((n) => n.target), ['net123']);
  const bad = await fake.run('service', 'update', '--network-add', 'back', 'web');
  assert.equal(bad.err, 'Error: network back not found\n');
});

test('service rollback and update --rollback ask the manager for the previous spec', async () => {
  const svc = service({}, { previousSpec: service().spec });
  fake.answers.getService = () => ({ service: svc });
  fake.answers.updateService = () => ({ service: svc, warnings: [] });
  assert.equal((await fake.run('service', 'rollback', '-d', 'web')).out, 'web\n');
  assert.equal(request<UpdateServiceRequest>('updateService').rollback, 'previous');
  fake.calls.length = 0;
  assert.equal((await fake.run('service', 'update', '--rollback', '-d', 'web')).code, 0);
  assert.equal(request<UpdateServiceRequest>('updateService').rollback, 'previous');
  fake.answers.getService = () => ({ service: service() });
  assert.equal((await fake.run('service', 'rollback', 'web')).err, 'Error: service web does not have a previous spec to roll back to\n');
});

test('service rm echoes each removed service and reports the others at the end', async () => {
  fake.answers.removeService = (req: { service: string }) => {
    if (req.service === 'ghost') throw new FakeError(grpc.status.NOT_FOUND, 'service ghost not found');
    return {};
  };
  const r = await fake.run('service', 'rm', 'web', 'ghost', 'api');
  assert.equal(r.out, 'web\napi\n');
  assert.equal(r.err, 'Error: no such service: ghost\n');
  assert.equal(r.code, 1);
});

test('network create, ls, inspect and rm', async () => {
  const net: Network = { id: 'n0123456789abcdef', meta: null, spec: { annotations: { name: 'front', labels: {} }, driverConfig: { name: 'overlay', options: {} }, ipv6: false, internal: false, attachable: true, ingress: false, ipam: null, scope: 'swarm' }, driverState: null, ipam: null };
  fake.answers.createNetwork = () => ({ network: net });
  const c = await fake.run('network', 'create', '-d', 'overlay', '--subnet', '10.0.9.0/24', '--gateway', '10.0.9.1', '--attachable', '-o', 'mtu=1400', '--label', 'team=a', 'front');
  assert.equal(c.code, 0, c.err);
  assert.equal(c.out, 'n0123456789abcdef\n');
  assert.deepEqual(request<CreateNetworkRequest>('createNetwork').spec, {
    annotations: { name: 'front', labels: { team: 'a' } },
    driverConfig: { name: 'overlay', options: { mtu: '1400' } },
    ipv6: false,
    internal: false,
    attachable: true,
    ingress: false,
    ipam: { driver: { name: 'default', options: {} }, configs: [{ subnet: '10.0.9.0/24', range: '', gateway: '10.0.9.1' }] },
    scope: 'swarm',
  });
  fake.answers.listNetworks = () => ({ networks: [net] });
  assert.equal((await fake.run('network', 'ls')).out, 'NETWORK ID     NAME      DRIVER    SCOPE\nn0123456789a   front     overlay   swarm\n');
  fake.answers.getNetwork = () => ({ network: net });
  assert.equal((await fake.run('network', 'inspect', '-f', '{{.Driver}} {{.Name}}', 'front')).out, 'overlay front\n');
  fake.answers.removeNetwork = (req: { network: string }) => {
    if (req.network !== 'front') throw new FakeError(grpc.status.NOT_FOUND, `network ${req.network} not found`);
    return {};
  };
  const rm = await fake.run('network', 'rm', 'front', 'ghost');
  assert.equal(rm.out, 'front\n');
  assert.equal(rm.err, 'Error: network ghost not found\n');
  assert.equal((await fake.run('network', 'rm', '-f', 'ghost')).code, 0);
});

test('node update, promote, demote and rm, with Docker\'s messages', async () => {
  const nodes: Record<string, Node> = { w1: node('id-w1', 'w1'), m1: node('id-m1', 'm1', 'MANAGER') };
  fake.answers.getNode = (req: { node: string }) => ({ node: nodes[req.node] });
  fake.answers.updateNode = () => ({ node: null });
  const u = await fake.run('node', 'update', '--availability', 'drain', '--label-add', 'disk=ssd', '--label-rm', 'zone', 'w1');
  assert.equal(u.out, 'w1\n');
  assert.deepEqual(request<UpdateNodeRequest>('updateNode'), { node: 'id-w1', version: 7, spec: { annotations: { name: '', labels: { disk: 'ssd' } }, desiredRole: 'WORKER', availability: 'DRAIN' } });
  assert.equal((await fake.run('node', 'update', '--label-rm', 'nope', 'w1')).err, "Error: key nope doesn't exist in node's labels\n");
  fake.calls.length = 0;
  const p = await fake.run('node', 'promote', 'w1', 'm1');
  assert.equal(p.out, 'Node w1 promoted to a manager in the swarm.\nNode id-m1 is already a manager.\n');
  assert.equal(request<UpdateNodeRequest>('updateNode').spec?.desiredRole, 'MANAGER');
  assert.equal((await fake.run('node', 'demote', 'm1')).out, 'Manager m1 demoted in the swarm.\n');
  fake.answers.removeNode = (req: RemoveNodeRequest) => {
    if (!req.force) throw new FakeError(grpc.status.FAILED_PRECONDITION, `node ${req.node} is not down and can't be removed`);
    return {};
  };
  const rm = await fake.run('node', 'rm', 'w1');
  assert.equal(rm.err, "Error: node w1 is not down and can't be removed\n");
  assert.equal((await fake.run('node', 'rm', '-f', 'w1')).out, 'w1\n');
});
