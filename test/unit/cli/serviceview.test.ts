// `service ls`, `service ps` and `inspect --pretty` output, compared with what Docker prints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRows } from '../../../cli/format.js';
import { displayImage, naturalCompare, portsText, prettyService, replicasText, serviceHeaders, serviceRows, serviceTable, taskHeaders, taskRows, taskTable } from '../../../cli/serviceview.js';
import type { PortConfig, Service, ServiceSpec, Task, TaskState } from '../../../proto/gen/objects.js';

const NOW = 1_700_000_000_000;
const ingress = (published: number, target: number, protocol: PortConfig['protocol'] = 'TCP'): PortConfig => ({ name: '', protocol, targetPort: target, publishedPort: published, publishMode: 'INGRESS' });

function service(id: string, name: string, spec: Partial<ServiceSpec>, ports: PortConfig[] = []): Service {
  return {
    id,
    meta: { version: 5, createdAt: NOW, updatedAt: NOW },
    spec: { annotations: { name, labels: {} }, task: { container: { image: 'nginx:1.25@sha256:abc', labels: {}, command: [], args: [], hostname: '', env: [], dir: '', user: '', mounts: [], stopGracePeriodMs: 0, stopSignal: '', readOnly: false, capAdd: [], capDrop: [], hosts: [], tty: false, configs: [] }, networks: [], forceUpdate: 0 }, endpoint: { mode: 'VIP', ports }, ...spec },
    previousSpec: null,
    specVersion: 5,
    endpoint: { spec: null, ports, virtualIps: [] },
    updateStatus: null,
    jobIteration: 0,
  };
}

test('natural order puts web.2 before web.10', () => {
  assert.deepEqual(['web.10', 'web.2', 'api', 'web.1'].sort(naturalCompare), ['api', 'web.1', 'web.2', 'web.10']);
});

test('images: a digest is dropped when there is a tag, and Docker Hub\'s prefix', () => {
  assert.equal(displayImage('nginx:1.25@sha256:abc'), 'nginx:1.25');
  assert.equal(displayImage('nginx@sha256:abc'), 'nginx@sha256:abc');
  assert.equal(displayImage('docker.io/library/redis:7'), 'redis:7');
  assert.equal(displayImage('registry:5000/team/app:v1@sha256:1'), 'registry:5000/team/app:v1');
});

test('PORTS groups consecutive ingress ports into ranges, as Docker does', () => {
  assert.equal(portsText([ingress(8080, 80), ingress(8081, 81), ingress(8082, 82)]), '*:8080-8082->80-82/tcp');
  assert.equal(portsText([ingress(80, 80), ingress(81, 80)]), '*:80-81->80/tcp');
  assert.equal(portsText([ingress(80, 80), ingress(81, 81), ingress(82, 80)]), '*:80-81->80-81/tcp, *:82->80/tcp');
  assert.equal(portsText([ingress(53, 53, 'UDP'), ingress(53, 53), ingress(9000, 90)]), '*:53->53/tcp, *:9000->90/tcp, *:53->53/udp');
  assert.equal(portsText([{ ...ingress(8080, 80), publishMode: 'HOST' }]), '');
});

test('REPLICAS: running/desired, max per node, job completions', () => {
  const st = (running: number, desired: number, completed = 0) => ({ serviceId: 'x', runningTasks: running, desiredTasks: desired, completedTasks: completed });
  assert.equal(replicasText(service('x', 'web', { replicated: { replicas: 3 } }), st(2, 3)), '2/3');
  assert.equal(replicasText(service('x', 'web', { replicated: { replicas: 3 } }), undefined), '0/3');
  const capped = service('x', 'web', { replicated: { replicas: 4 } });
  capped.spec!.task!.placement = { constraints: [], preferences: [], maxReplicas: 2, platforms: [] };
  assert.equal(replicasText(capped, st(4, 4)), '4/4 (max 2 per node)');
  assert.equal(replicasText(service('x', 'job', { replicatedJob: { maxConcurrent: 2, totalCompletions: 10 } }), st(2, 2, 3)), '2/2 (3/10 completed)');
  assert.equal(replicasText(service('x', 'gjob', { globalJob: {} }), st(1, 2, 3)), '1/2 (3/5 completed)');
});

test('service ls: Docker\'s table, sorted by name, ids cut to 12', () => {
  const services = [
    service('zz9ocbqkuqs1n6sy4gz7ib0la', 'web', { replicated: { replicas: 3 } }, [ingress(8080, 80)]),
    service('a1b2c3d4e5f6g7h8i9j0k1l2m', 'agent', { global: {} }),
  ];
  const statuses = [
    { serviceId: 'zz9ocbqkuqs1n6sy4gz7ib0la', runningTasks: 3, desiredTasks: 3, completedTasks: 0 },
    { serviceId: 'a1b2c3d4e5f6g7h8i9j0k1l2m', runningTasks: 2, desiredTasks: 2, completedTasks: 0 },
  ];
  assert.equal(
    formatRows(serviceRows(services, statuses), '', serviceTable, serviceHeaders),
    [
      'ID             NAME      MODE         REPLICAS   IMAGE        PORTS',
      'a1b2c3d4e5f6   agent     global       2/2        nginx:1.25',
      'zz9ocbqkuqs1   web       replicated   3/3        nginx:1.25   *:8080->80/tcp',
      '',
    ].join('\n'),
  );
});

function task(id: string, slot: number, desired: TaskState, state: TaskState, ageMs: number, extra: Partial<Task> = {}): Task {
  return {
    id,
    meta: { version: 1, createdAt: NOW - ageMs, updatedAt: NOW },
    spec: { container: { image: 'nginx:1.25@sha256:abc', labels: {}, command: [], args: [], hostname: '', env: [], dir: '', user: '', mounts: [], stopGracePeriodMs: 0, stopSignal: '', readOnly: false, capAdd: [], capDrop: [], hosts: [], tty: false, configs: [] }, networks: [], forceUpdate: 0 },
    specVersion: 1,
    serviceId: 'svc1',
    slot,
    nodeId: slot ? 'node-a' : 'nodeidxyz',
    annotations: null,
    serviceName: 'web',
    status: { timestamp: NOW - ageMs, state, message: '', err: '', container: null, health: '', hostPorts: [] },
    desiredState: desired,
    networks: [],
    endpoint: null,
    jobIteration: 0,
    assignedGenericResources: [],
    ...extra,
  };
}

test('service ps: slots in natural order, newest first, history indented, Docker\'s state words', () => {
  const failed = task('t0failedtask0000000000000', 1, 'SHUTDOWN', 'FAILED', 300_000);
  failed.status!.err = 'task: non-zero exit (1): the container exited badly';
  const pending = task('t3pendingtask000000000000', 10, 'RUNNING', 'PENDING', 5000);
  pending.status!.err = 'no suitable node (1 node not available for new tasks)';
  pending.nodeId = '';
  const tasks = [failed, task('t1runningtask000000000000', 1, 'RUNNING', 'RUNNING', 120_000), task('t2runningtask000000000000', 2, 'RUNNING', 'RUNNING', 90_000), pending];
  tasks[1]!.status!.hostPorts = [{ name: '', protocol: 'TCP', targetPort: 80, publishedPort: 8080, publishMode: 'HOST' }];
  const rows = taskRows(tasks, { now: NOW, nodeNames: { 'node-a': 'host-a' } });
  assert.deepEqual(
    rows.map((r) => [r.ID, r.Name, r.Node, r.DesiredState, r.CurrentState, r.Error, r.Ports]),
    [
      ['t1runningtas', 'web.1', 'host-a', 'Running', 'Running 2 minutes ago', '', '*:8080->80/tcp'],
      ['t0failedtask', ' \\_ web.1', 'host-a', 'Shutdown', 'Failed 5 minutes ago', '"task: non-zero exit (1): the …"', ''],
      ['t2runningtas', 'web.2', 'host-a', 'Running', 'Running about a minute ago', '', ''],
      ['t3pendingtas', 'web.10', '', 'Running', 'Pending 5 seconds ago', '"no suitable node (1 node not …"', ''],
    ],
  );
  const table = formatRows(rows, '', taskTable, taskHeaders).split('\n');
  assert.match(table[0]!, /^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS$/);
  assert.match(table[1]!, /^t1runningtas\s+web\.1\s+nginx:1\.25\s+host-a\s+Running/);
});

test('service ps --no-trunc, --no-resolve, and global tasks named by node', () => {
  const t = task('t9globaltask0000000000000', 0, 'RUNNING', 'PENDING', 1000);
  t.status!.message = 'waiting for the allocator';
  const [row] = taskRows([t], { now: NOW, noTrunc: true, noResolve: true, nodeNames: { nodeidxyz: 'h' } });
  assert.deepEqual([row!.ID, row!.Name, row!.Image, row!.Node, row!.Error], ['t9globaltask0000000000000', 'svc1.nodeidxyz', 'nginx:1.25@sha256:abc', 'nodeidxyz', '"waiting for the allocator"']);
  // The scheduler's routine words for a waiting task are not an error.
  t.status!.message = 'pending task scheduling';
  assert.equal(taskRows([t], { now: NOW })[0]!.Error, '');
  // Templates get names without the history indent.
  assert.equal(taskRows([t, t], { now: NOW, indent: false })[1]!.Name, 'web.nodeidxyz');
});

test('inspect --pretty follows Docker\'s template', () => {
  const s = service('svcid', 'web', { replicated: { replicas: 2 } }, [ingress(8080, 80)]);
  s.spec!.annotations!.labels = { tier: 'web', flag: '' };
  s.spec!.update = { parallelism: 1, delayMs: 10_000, failureAction: 'PAUSE', monitorMs: 5000, maxFailureRatio: 0, order: 'STOP_FIRST' };
  const c = s.spec!.task!.container!;
  c.args = ['nginx', '-g', 'daemon off;'];
  c.env = ['A=1'];
  c.mounts = [{ type: 'BIND', source: '/srv', target: '/data', readOnly: true, tmpfsSizeBytes: 0 }];
  c.configs = [{ configId: 'cfgid', configName: 'site', file: { name: '/etc/site.conf', uid: '0', gid: '0', mode: 0o444 }, data: new Uint8Array(0) }];
  s.spec!.task!.resources = { limits: { nanoCpus: 5e8, memoryBytes: 512 * 1024 ** 2, generic: [], pids: 0 }, reservations: null };
  s.spec!.task!.networks = [{ target: 'netid', aliases: [], addresses: [], driverOpts: {} }];
  s.updateStatus = { state: 'COMPLETED', startedAt: NOW - 120_000, completedAt: NOW - 60_000, message: 'update completed' };
  assert.equal(
    prettyService(s, { netid: 'front' }, NOW),
    [
      '',
      'ID:\t\tsvcid',
      'Name:\t\tweb',
      'Labels:',
      ' flag',
      ' tier=web',
      'Service Mode:\tReplicated',
      ' Replicas:\t2',
      'UpdateStatus:',
      ' State:\t\tcompleted',
      ' Started:\t2 minutes ago',
      ' Completed:\tAbout a minute ago',
      ' Message:\tupdate completed',
      'Placement:',
      'UpdateConfig:',
      ' Parallelism:\t1',
      ' Delay:\t\t10s',
      ' On failure:\tpause',
      ' Monitoring Period: 5s',
      ' Max failure ratio: 0',
      ' Update order:      stop-first',
      'ContainerSpec:',
      ' Image:\t\tnginx:1.25@sha256:abc',
      ' Args:\t\tnginx -g daemon off;',
      ' Env:\t\tA=1',
      'Mounts:',
      ' Target:\t/data',
      '  Source:\t/srv',
      '  ReadOnly:\ttrue',
      '  Type:\t\tbind',
      'Configs:',
      ' Target:\t/etc/site.conf',
      '  Source:\tsite',
      'Resources:',
      ' Limits:',
      '  CPU:\t\t0.5',
      '  Memory:\t512MiB',
      'Networks: front',
      'Endpoint Mode:\tvip',
      'Ports:',
      ' PublishedPort = 8080',
      '  Protocol = tcp',
      '  TargetPort = 80',
      '  PublishMode = ingress',
      '',
    ].join('\n'),
  );
});
