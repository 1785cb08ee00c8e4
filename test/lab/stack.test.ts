// `stack deploy` over real hosts (issue #9): one compose file using every key shoal converts
// deploys on a 3-host lab (networks with ipam and driver options, an external network, a named
// volume, configs from a file and an external one, healthchecks, deploy placement/resources/
// policies, depends_on service_healthy); the specs in the cluster are the ones asked for and a
// container reads its config file; redeploying with one service's image changed (the test image
// under a second tag) replaces only that service's tasks; `stack rm` removes the services, networks
// and configs the stack made and nothing else (a network and a config made outside survive).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from '../../deploy/labkit/lab.js';
import { cli, formCluster } from '../../deploy/labkit/cluster.js';
import { registryHost, testImageReference, TEST_IMAGE_REPOSITORY } from '../../deploy/labkit/registry.js';
import { run } from '../../deploy/labkit/run.js';
import { testLabName } from './labkit/helpers.js';
import { waitFor } from '../support/wait.js';
import { execInTask, running, shoal, tasks } from './probes.js';

/** The part of Docker's swarm.Service that `service inspect` prints and this test reads. */
interface DockerService {
  Version: { Index: number };
  Spec: {
    Labels: Record<string, string>;
    Mode: { Replicated?: { Replicas: number }; Global?: object };
    UpdateConfig?: { Parallelism: number };
    EndpointSpec: { Ports?: { Protocol: string; TargetPort: number; PublishedPort?: number; PublishMode: string }[] };
    TaskTemplate: {
      ContainerSpec: {
        Image: string; Command?: string[]; Args?: string[]; Env?: string[]; Hostname?: string; Dir?: string; StopGracePeriod?: number; Labels?: Record<string, string>;
        Healthcheck?: { Test?: string[] }; Mounts?: { Type: string; Source?: string; Target: string }[];
        Configs?: { ConfigName: string; File: { Name: string; Mode: number } }[];
      };
      Placement?: { MaxReplicas?: number };
      Resources?: { Limits?: { MemoryBytes?: number } };
      Networks?: { Aliases?: string[] }[];
    };
  };
}

const compose = (webImage: string, image: string) => `
version: "3.8"
services:
  web:
    image: ${webImage}
    entrypoint: ["httpd"]
    command: -f -p 80
    environment:
      GREETING: hello
      TIER: "\${TIER:-front}"
    env_file: web.env
    ports:
      - "8080:80"
      - target: 81
        published: 8081
        protocol: udp
        mode: host
    networks:
      front:
        aliases: [www]
    volumes:
      - data:/data
      - type: tmpfs
        target: /scratch
    healthcheck:
      test: ["CMD-SHELL", "kill -0 1"]
      interval: 1s
      timeout: 2s
      retries: 3
      start_period: 1s
    hostname: web-host
    user: "0"
    working_dir: /tmp
    stop_grace_period: 2s
    labels:
      role: server
    configs:
      - source: site
        target: /etc/web/site.conf
        mode: 0440
    deploy:
      mode: replicated
      replicas: 3
      placement:
        constraints: [node.hostname!=nowhere]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 1
      resources:
        limits: {cpus: "0.5", memory: 64M, pids: 200}
        reservations: {cpus: "0.01", memory: 4M}
      restart_policy: {condition: any, delay: 1s, max_attempts: 0, window: 0s}
      update_config: {parallelism: 3, delay: 0s, failure_action: pause, monitor: 1s, order: stop-first}
      rollback_config: {parallelism: 1, order: stop-first}
      endpoint_mode: vip
      labels: {com.example.app: web}
  client:
    image: ${image}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web 80 >/dev/null; sleep 1 & wait $$!; done"]
    stop_grace_period: 1s
    networks: [front, back, outside]
    configs: [shared]
    depends_on:
      web: {condition: service_healthy}
  monitor:
    image: ${image}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 1d & wait"]
    stop_grace_period: 1s
    deploy:
      mode: global
networks:
  front:
    driver: overlay
    driver_opts:
      com.docker.network.driver.overlay.vxlanid_list: "4242"
    attachable: true
    ipam:
      config: [{subnet: 10.77.0.0/24, gateway: 10.77.0.1}]
  back: {}
  outside:
    external: true
    name: stack-ext
volumes:
  data: {}
configs:
  site:
    file: ./site.conf
  shared:
    external: true
    name: outside-conf
`;

test('stack deploy: every key on real hosts; a redeploy rolls only what changed; stack rm removes all', async (t) => {
  const lab = new Lab(testLabName('stack'));
  const dir = mkdtempSync(join(tmpdir(), 'shoal-stack-'));
  t.after(async () => {
    await lab.down();
    rmSync(dir, { recursive: true, force: true });
  });
  const t0 = Date.now();
  const mark = (what: string) => t.diagnostic(`${what}: ${Date.now() - t0} ms`);
  const { layout } = await lab.up({ hosts: 3, registry: true });
  await formCluster(lab, 1, () => {}, { hosts: 3 });
  const image = testImageReference(layout);
  // The second tag of the same image, for the redeploy that changes web's image only.
  const registry = layout.registry!;
  const repo = `${registryHost(layout)}/${TEST_IMAGE_REPOSITORY}`;
  await run(['nsenter', `--net=${registry.netnsPath}`, '--', 'skopeo', 'copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${repo}:latest`, `docker://${repo}:v2`]);
  shoal(lab, 'h1', ['network', 'create', '--driver', 'overlay', 'stack-ext']);
  writeFileSync(join(dir, 'outside.conf'), 'made outside the stack\n');
  shoal(lab, 'h1', ['config', 'create', 'outside-conf', join(dir, 'outside.conf')]);
  writeFileSync(join(dir, 'web.env'), '# from a file\nFROM_FILE=yes\n');
  writeFileSync(join(dir, 'site.conf'), 'server_name example;\n');
  const file = join(dir, 'stack.yml');
  writeFileSync(file, compose(image, image));

  mark('cluster formed');
  const first = cli(lab, 'h1', ['stack', 'deploy', '-c', file, 'app']);
  assert.equal(first.status, 0, first.stderr);
  // The client waits for web's tasks to be healthy: it is created after them.
  assert.deepEqual(
    first.stdout.split('\n').filter((l) => /^(Creating|Updating)/.test(l)),
    ['Creating network app_back', 'Creating network app_default', 'Creating network app_front', 'Creating config app_site', 'Creating service app_web', 'Creating service app_client', 'Creating service app_monitor'],
  );
  assert.match(first.stdout, /Waiting for service app_web to be healthy/);

  // `inspect` speaks Docker's names (Spec.TaskTemplate.ContainerSpec…), durations in nanoseconds.
  const inspect = (name: string) => (JSON.parse(shoal(lab, 'h1', ['service', 'inspect', name])) as DockerService[])[0]!;
  const web = inspect('app_web');
  const c = web.Spec.TaskTemplate.ContainerSpec;
  assert.equal(c.Image, image);
  assert.deepEqual(c.Command, ['httpd']);
  assert.deepEqual(c.Args, ['-f', '-p', '80']);
  assert.deepEqual(c.Env, ['FROM_FILE=yes', 'GREETING=hello', 'TIER=front']);
  assert.equal(c.Hostname, 'web-host');
  assert.equal(c.Dir, '/tmp');
  assert.equal(c.StopGracePeriod, 2e9);
  assert.equal(c.Labels?.role, 'server');
  assert.deepEqual(c.Healthcheck?.Test, ['CMD-SHELL', 'kill -0 1']);
  assert.deepEqual(c.Mounts?.map((m) => `${m.Type}:${m.Source ?? ''}:${m.Target}`), ['volume:app_data:/data', 'tmpfs::/scratch']);
  assert.equal(web.Spec.Labels['com.docker.stack.namespace'], 'app');
  assert.equal(web.Spec.Labels['com.example.app'], 'web');
  assert.equal(web.Spec.Mode.Replicated?.Replicas, 3);
  assert.equal(web.Spec.TaskTemplate.Placement?.MaxReplicas, 1);
  assert.equal(web.Spec.TaskTemplate.Resources?.Limits?.MemoryBytes, 64 * 1024 * 1024);
  assert.equal(web.Spec.UpdateConfig?.Parallelism, 3);
  assert.deepEqual(web.Spec.EndpointSpec.Ports?.map((p) => `${p.PublishedPort}:${p.TargetPort}/${p.Protocol}/${p.PublishMode}`), ['8080:80/tcp/ingress', '8081:81/udp/host']);
  assert.deepEqual(web.Spec.TaskTemplate.Networks?.[0]?.Aliases, ['web', 'www']);
  assert.deepEqual(c.Configs?.map((r) => `${r.ConfigName}:${r.File.Name}:${r.File.Mode.toString(8)}`), ['app_site:/etc/web/site.conf:440']);
  assert.deepEqual(inspect('app_client').Spec.TaskTemplate.ContainerSpec.Configs?.map((r) => `${r.ConfigName}:${r.File.Name}`), ['outside-conf:/shared']);
  const configs = JSON.parse(shoal(lab, 'h1', ['config', 'inspect', 'app_site'])) as { Spec: { Data: string; Labels: Record<string, string> } }[];
  assert.equal(Buffer.from(configs[0]!.Spec.Data, 'base64').toString(), 'server_name example;\n');
  assert.equal(configs[0]!.Spec.Labels['com.docker.stack.namespace'], 'app');
  assert.ok(inspect('app_monitor').Spec.Mode.Global);

  const nets = JSON.parse(shoal(lab, 'h1', ['network', 'inspect', 'app_front'])) as { Attachable: boolean; IPAM: { Config: { Subnet: string }[] }; Labels: Record<string, string> }[];
  assert.equal(nets[0]!.Attachable, true);
  assert.equal(nets[0]!.IPAM.Config[0]!.Subnet, '10.77.0.0/24');
  assert.equal(nets[0]!.Labels['com.docker.stack.namespace'], 'app');

  assert.match(shoal(lab, 'h1', ['stack', 'ls']), /^app\s+3$/m);
  assert.deepEqual(shoal(lab, 'h1', ['stack', 'services', 'app', '--format', '{{.Name}}']).trim().split('\n'), ['app_client', 'app_monitor', 'app_web']);
  const everything = () => ['app_web', 'app_client', 'app_monitor'].flatMap((s) => running(lab, s));
  const settled = await waitFor('web 3, client 1 and monitor 3 tasks running', () => {
    const r = everything();
    return r.length === 7 ? r : null;
  }, { timeoutMs: 60_000 });
  assert.equal(new Set(running(lab, 'app_web').map((x) => x.node)).size, 3, 'max_replicas_per_node 1 spreads web over the 3 hosts');
  assert.match(shoal(lab, 'h1', ['stack', 'ps', 'app']), /app_web\.1/);

  // Each container reads its config as a read-only file with the mode asked for.
  const webTask = running(lab, 'app_web')[0]!;
  const read = await execInTask(lab, webTask, ['sh', '-c', 'cat /etc/web/site.conf; stat -c %a /etc/web/site.conf']);
  assert.equal(read.stdout, 'server_name example;\n440\n', read.stderr);
  const write = await execInTask(lab, webTask, ['sh', '-c', 'echo changed > /etc/web/site.conf']);
  assert.notEqual(write.code, 0, 'the config file is mounted read-only');
  const clientRead = await execInTask(lab, running(lab, 'app_client')[0]!, ['cat', '/shared']);
  assert.equal(clientRead.stdout, 'made outside the stack\n', clientRead.stderr);

  mark('deployed and running');
  // Redeploy: web's image changes (same image, second tag); client and monitor are left alone.
  const before = { client: inspect('app_client'), monitor: inspect('app_monitor') };
  writeFileSync(file, compose(`${repo}:v2`, image));
  const second = cli(lab, 'h1', ['stack', 'deploy', '-c', file, 'app']);
  assert.equal(second.status, 0, second.stderr);
  assert.deepEqual(second.stdout.split('\n').filter((l) => /^(Creating|Updating)/.test(l)).map((l) => l.replace(/ \(id: .*\)$/, '')), ['Updating service app_web']);
  const others = settled.filter((x) => !x.name.startsWith('app_web')).map((x) => x.id).sort();
  await waitFor('web’s 3 tasks replaced', () => {
    const now = running(lab, 'app_web');
    return now.length === 3 && now.every((x) => !settled.some((y) => y.id === x.id));
  }, { timeoutMs: 60_000 });
  mark('web rolled');
  const after = [...tasks(lab, 'app_client'), ...tasks(lab, 'app_monitor')].map((x) => x.id).sort();
  assert.deepEqual(after, others, 'client and monitor kept their tasks (and got no new ones)');
  for (const [name, svc] of [['app_client', before.client], ['app_monitor', before.monitor]] as const) {
    assert.equal(inspect(name).Version.Index, svc.Version.Index, `${name} was not written`);
  }
  assert.equal(inspect('app_web').Spec.TaskTemplate.ContainerSpec.Image, `${repo}:v2`);
  const rolled = running(lab, 'app_web')[0]!;
  assert.equal((await execInTask(lab, rolled, ['cat', '/etc/web/site.conf'])).stdout, 'server_name example;\n', 'the new tasks have the config too');

  // A third deploy of the same file changes nothing.
  const third = cli(lab, 'h1', ['stack', 'deploy', '-c', file, 'app']);
  assert.equal(third.status, 0, third.stderr);
  assert.doesNotMatch(third.stdout, /Updating|Creating/);

  mark('redeploys done');
  const rm = cli(lab, 'h1', ['stack', 'rm', 'app']);
  assert.equal(rm.status, 0, rm.stderr);
  mark('stack removed');
  assert.match(rm.stdout, /Removing service app_web/);
  assert.match(rm.stdout, /Removing network app_front/);
  assert.match(rm.stdout, /Removing config app_site/);
  assert.equal(shoal(lab, 'h1', ['service', 'ls', '-q']).trim(), '');
  const left = shoal(lab, 'h1', ['network', 'ls', '--format', '{{.Name}}']).split('\n').filter((n) => n.startsWith('app_'));
  assert.deepEqual(left, []);
  assert.match(shoal(lab, 'h1', ['network', 'ls', '--format', '{{.Name}}']), /stack-ext/, 'the external network is not the stack’s to remove');
  assert.deepEqual(shoal(lab, 'h1', ['config', 'ls', '--format', '{{.Name}}']).trim().split('\n'), ['outside-conf'], 'the external config is not the stack’s to remove');
  assert.doesNotMatch(shoal(lab, 'h1', ['stack', 'ls']), /^app\s/m);
});
