// `inspect` output in Docker's names and units: the fields scripts read from `docker service
// inspect`, `docker node inspect` and `docker network inspect`, and templates over them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dockerNetwork, dockerNode, dockerService } from '../../../cli/dockerjson.js';
import { renderTemplate } from '../../../cli/format.js';
import type { Network, Node, Service } from '../../../proto/gen/objects.js';

/** The value at a dotted path of parsed JSON (undefined where the path ends early). */
function at(value: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), value);
}

const T0 = Date.UTC(2026, 0, 2, 3, 4, 5);

function service(): Service {
  return {
    id: 'svc1',
    meta: { version: 7, createdAt: T0, updatedAt: T0 + 1000 },
    spec: {
      annotations: { name: 'web', labels: { tier: 'front' } },
      task: {
        container: {
          image: 'busybox:1', labels: {}, command: [], args: ['httpd', '-f'], hostname: '', env: ['A=1'], dir: '', user: '',
          mounts: [{ type: 'TMPFS', source: '', target: '/tmp', readOnly: false, tmpfsSizeBytes: 1024 }],
          stopGracePeriodMs: 10_000, stopSignal: '', healthcheck: { test: ['CMD', 'true'], intervalMs: 2000, timeoutMs: 0, retries: 3, startPeriodMs: 0 },
          readOnly: false, capAdd: [], capDrop: [], hosts: [], tty: false,
          configs: [{ configId: 'cfg1', configName: 'site', file: { name: '/etc/site.conf', uid: '0', gid: '0', mode: 0o444 }, data: new Uint8Array() }],
        },
        restart: { condition: 'ON_FAILURE', delayMs: 5000, maxAttempts: 2, windowMs: 0 },
        placement: { constraints: ['node.role==worker'], preferences: [{ spreadDescriptor: 'node.labels.zone' }], maxReplicas: 0, platforms: [] },
        networks: [{ target: 'net1', aliases: ['w'], addresses: [], driverOpts: {} }],
        forceUpdate: 0,
      },
      replicated: { replicas: 3 },
      update: { parallelism: 2, delayMs: 0, failureAction: 'ROLLBACK', monitorMs: 5000, maxFailureRatio: 0, order: 'START_FIRST' },
      endpoint: { mode: 'VIP', ports: [{ name: '', protocol: 'TCP', targetPort: 80, publishedPort: 8080, publishMode: 'HOST' }] },
    },
    previousSpec: null,
    specVersion: 7,
    endpoint: { spec: null, ports: [], virtualIps: [{ networkId: 'net1', addr: '10.0.1.2/24' }] },
    updateStatus: { state: 'ROLLBACK_COMPLETED', startedAt: T0, completedAt: T0 + 5000, message: 'rollback completed' },
    jobIteration: 0,
  };
}

test('a service in Docker\'s shape: names, lower-case enums, nanosecond durations, RFC 3339 times', () => {
  const d = dockerService(service());
  const json = JSON.parse(JSON.stringify(d)) as unknown;
  assert.equal(at(json, 'ID'), 'svc1');
  assert.deepEqual(at(json, 'Version'), { Index: 7 });
  assert.equal(at(json, 'CreatedAt'), '2026-01-02T03:04:05.000Z');
  assert.equal(at(json, 'Spec.Name'), 'web');
  assert.deepEqual(at(json, 'Spec.Labels'), { tier: 'front' });
  assert.deepEqual(at(json, 'Spec.Mode'), { Replicated: { Replicas: 3 } });
  assert.equal(at(json, 'Spec.TaskTemplate.ContainerSpec.Image'), 'busybox:1');
  assert.deepEqual(at(json, 'Spec.TaskTemplate.ContainerSpec.Args'), ['httpd', '-f']);
  assert.equal(at(json, 'Spec.TaskTemplate.ContainerSpec.Command'), undefined, 'empty lists are left out, as Docker omits them');
  assert.equal(at(json, 'Spec.TaskTemplate.ContainerSpec.StopGracePeriod'), 10_000_000_000);
  assert.deepEqual(at(json, 'Spec.TaskTemplate.ContainerSpec.Healthcheck'), { Test: ['CMD', 'true'], Interval: 2_000_000_000, Retries: 3 });
  assert.deepEqual(at(json, 'Spec.TaskTemplate.ContainerSpec.Mounts'), [{ Type: 'tmpfs', Target: '/tmp', TmpfsOptions: { SizeBytes: 1024 } }]);
  assert.deepEqual(at(json, 'Spec.TaskTemplate.ContainerSpec.Configs'), [{ File: { Name: '/etc/site.conf', UID: '0', GID: '0', Mode: 0o444 }, ConfigID: 'cfg1', ConfigName: 'site' }]);
  assert.deepEqual(at(json, 'Spec.TaskTemplate.RestartPolicy'), { Condition: 'on-failure', Delay: 5_000_000_000, MaxAttempts: 2 });
  assert.deepEqual(at(json, 'Spec.TaskTemplate.Placement.Preferences'), [{ Spread: { SpreadDescriptor: 'node.labels.zone' } }]);
  assert.deepEqual(at(json, 'Spec.TaskTemplate.Networks'), [{ Target: 'net1', Aliases: ['w'] }]);
  assert.deepEqual(at(json, 'Spec.UpdateConfig'), { Parallelism: 2, FailureAction: 'rollback', Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: 'start-first' });
  assert.deepEqual(at(json, 'Spec.EndpointSpec'), { Mode: 'vip', Ports: [{ Protocol: 'tcp', TargetPort: 80, PublishedPort: 8080, PublishMode: 'host' }] });
  assert.deepEqual(at(json, 'Endpoint.VirtualIPs'), [{ NetworkID: 'net1', Addr: '10.0.1.2/24' }]);
  assert.equal(at(json, 'UpdateStatus.State'), 'rollback_completed');
  assert.equal(at(json, 'PreviousSpec'), undefined);
});

test('templates written for docker work, and a field Docker leaves nil prints <no value>', () => {
  const d = dockerService(service());
  assert.equal(renderTemplate('{{.Spec.Name}} {{.Spec.Mode.Replicated.Replicas}} {{.Spec.TaskTemplate.ContainerSpec.Image}}', d), 'web 3 busybox:1');
  assert.equal(renderTemplate('{{.UpdateStatus.State}}', d), 'rollback_completed');
  assert.equal(renderTemplate('{{.PreviousSpec}}', d), '<no value>');
  assert.equal(renderTemplate('{{json .Spec.Labels}}', d), '{"tier":"front"}');
  const global = dockerService({ ...service(), spec: { ...service().spec!, replicated: null, global: {} } });
  assert.deepEqual(global.Spec && (global.Spec as { Mode: unknown }).Mode, { Global: {} });
});

test('a node and a network in Docker\'s shape', () => {
  const node: Node = {
    id: 'n1', meta: { version: 3, createdAt: T0, updatedAt: T0 }, role: 'MANAGER', certificateFingerprint: '',
    spec: { annotations: { name: '', labels: { zone: 'a' } }, desiredRole: 'MANAGER', availability: 'DRAIN' },
    description: { hostname: 'h1', platform: { os: 'linux', architecture: 'x86_64' }, resources: { nanoCpus: 2e9, memoryBytes: 1 << 30, generic: [], pids: 0 }, engineVersion: '0.1.0', engineLabels: {} },
    status: { state: 'READY', message: '', addr: '198.18.0.1' },
    managerStatus: { raftId: 5, addr: '198.18.0.1:2377', leader: true, reachability: 'REACHABLE' },
  };
  assert.equal(renderTemplate('{{.Description.Hostname}} {{.Spec.Role}} {{.Spec.Availability}} {{.Status.State}} {{.ManagerStatus.Reachability}} {{.Spec.Labels.zone}}', dockerNode(node)), 'h1 manager drain ready reachable a');
  assert.equal(dockerNode({ ...node, managerStatus: null }).ManagerStatus, undefined);

  const net: Network = {
    id: 'net1', meta: { version: 1, createdAt: T0, updatedAt: T0 },
    spec: { annotations: { name: 'app', labels: {} }, driverConfig: { name: 'overlay', options: {} }, ipv6: false, internal: false, attachable: true, ingress: false, ipam: null, scope: '' },
    driverState: { name: 'overlay', options: { 'com.docker.network.driver.overlay.vxlanid_list': '4097' } },
    ipam: { driver: null, configs: [{ subnet: '10.0.1.0/24', gateway: '10.0.1.1', range: '' }] },
  };
  const d = dockerNetwork(net);
  assert.equal(renderTemplate('{{.Name}} {{.Id}} {{.Driver}} {{.Scope}} {{.Attachable}}', d), 'app net1 overlay swarm true');
  assert.deepEqual(JSON.parse(JSON.stringify(d.IPAM)), { Driver: 'default', Options: null, Config: [{ Subnet: '10.0.1.0/24', Gateway: '10.0.1.1' }] });
  assert.equal((d.Options as Record<string, string>)['com.docker.network.driver.overlay.vxlanid_list'], '4097');
});
