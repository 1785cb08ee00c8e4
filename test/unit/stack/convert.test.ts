import { test } from 'node:test';
import assert from 'node:assert/strict';
import { convertStack, deployOrder, type StackService } from '../../../cli/stack/convert.js';
import { parseComposeFile } from '../../../cli/stack/load.js';

const files: Record<string, string> = { '/w/app.env': '# comment\nFROM_FILE=1\nMODE=file\n' };
const opts = { env: { FROM_SHELL: 'shell' }, readFile: (p: string) => {
  if (!(p in files)) throw Object.assign(new Error('nope'), { code: 'ENOENT' });
  return files[p]!;
}, workingDir: '/w' };

const convert = (yaml: string, stack = 'st') => convertStack(stack, parseComposeFile({ name: 'c.yml', text: yaml }, opts.env), opts);

const FULL = `
services:
  web:
    image: img:1
    entrypoint: ["/bin/sh", "-c"]
    command: httpd -f -p "80"
    environment: {MODE: env, FROM_SHELL: null, NOT_SET: null}
    env_file: app.env
    ports:
      - "8080-8081:80-81/udp"
      - target: 90
        published: 9090
        mode: host
    networks:
      front: {aliases: [www], ipv4_address: 10.9.0.5}
    volumes: [data:/data, ./site:/site:ro, /anon, {type: tmpfs, target: /t, tmpfs: {size: 1m}}]
    healthcheck: {test: curl -f localhost, interval: 1m30s, timeout: 5s, retries: 2, start_period: 500ms}
    hostname: h
    user: "1000:1000"
    working_dir: /srv
    stop_grace_period: 20s
    labels: [c=d]
    extra_hosts: ["db:10.0.0.9"]
    logging: {driver: json-file, options: {max-size: 10m, max-file: "3"}}
    deploy:
      mode: replicated
      replicas: 4
      placement:
        constraints: [node.role==worker]
        preferences: [spread: node.labels.zone]
        max_replicas_per_node: 2
      resources:
        limits: {cpus: '1.5', memory: 1G, pids: 50}
        reservations: {cpus: '0.25', memory: 128M}
      restart_policy: {condition: on-failure, delay: 2s, max_attempts: 5, window: 1m}
      update_config: {parallelism: 2, delay: 10s, failure_action: rollback, monitor: 3s, max_failure_ratio: 0.25, order: start-first}
      rollback_config: {parallelism: 0, failure_action: continue}
      endpoint_mode: dnsrr
      labels: {a: b}
  job:
    image: img:1
    deploy: {mode: global}
networks:
  front:
    driver: overlay
    driver_opts: {k: v}
    attachable: true
    labels: {n: m}
    ipam: {config: [{subnet: 10.9.0.0/24, gateway: 10.9.0.1, ip_range: 10.9.0.128/25}]}
  unused: {}
volumes:
  data: {}
`;

test('every supported service key lands in the spec, Docker-style', () => {
  const m = convert(FULL);
  assert.deepEqual(m.warnings, []);
  const web = m.services.find((s) => s.key === 'web')!;
  const s = web.spec;
  const c = s.task!.container!;
  assert.equal(s.annotations!.name, 'st_web');
  assert.deepEqual(s.annotations!.labels, { a: 'b', 'com.docker.stack.namespace': 'st' });
  assert.deepEqual(c.labels, { c: 'd', 'com.docker.stack.namespace': 'st' });
  assert.deepEqual(c.command, ['/bin/sh', '-c']);
  assert.deepEqual(c.args, ['httpd', '-f', '-p', '80']);
  assert.deepEqual(c.env, ['FROM_FILE=1', 'FROM_SHELL=shell', 'MODE=env']);
  assert.deepEqual(
    s.endpoint!.ports.map((p) => `${p.publishedPort}:${p.targetPort}/${p.protocol}/${p.publishMode}`),
    ['8080:80/UDP/INGRESS', '8081:81/UDP/INGRESS', '9090:90/TCP/HOST'],
  );
  assert.equal(s.endpoint!.mode, 'DNSRR');
  assert.deepEqual(s.task!.networks, [{ target: 'st_front', aliases: ['web', 'www'], addresses: ['10.9.0.5'], driverOpts: {} }]);
  assert.deepEqual(
    c.mounts.map((x) => [x.type, x.source, x.target, x.readOnly, x.tmpfsSizeBytes]),
    [
      ['VOLUME', 'st_data', '/data', false, 0],
      ['BIND', '/w/site', '/site', true, 0],
      ['VOLUME', '', '/anon', false, 0],
      ['TMPFS', '', '/t', false, 1048576],
    ],
  );
  assert.deepEqual(c.healthcheck, { test: ['CMD-SHELL', 'curl -f localhost'], intervalMs: 90_000, timeoutMs: 5000, retries: 2, startPeriodMs: 500 });
  assert.equal(c.hostname, 'h');
  assert.equal(c.user, '1000:1000');
  assert.equal(c.dir, '/srv');
  assert.equal(c.stopGracePeriodMs, 20_000);
  assert.deepEqual(c.hosts, ['10.0.0.9 db']);
  assert.deepEqual(c.log, { maxSize: '10m', maxFile: 3 });
  assert.deepEqual(s.replicated, { replicas: 4 });
  assert.deepEqual(s.task!.placement, { constraints: ['node.role==worker'], preferences: [{ spreadDescriptor: 'node.labels.zone' }], maxReplicas: 2, platforms: [] });
  assert.deepEqual(s.task!.resources, {
    limits: { nanoCpus: 1_500_000_000, memoryBytes: 1024 ** 3, pids: 50, generic: [] },
    reservations: { nanoCpus: 250_000_000, memoryBytes: 128 * 1024 ** 2, pids: 0, generic: [] },
  });
  assert.deepEqual(s.task!.restart, { condition: 'ON_FAILURE', delayMs: 2000, maxAttempts: 5, windowMs: 60_000 });
  assert.deepEqual(s.update, { parallelism: 2, delayMs: 10_000, failureAction: 'ROLLBACK', monitorMs: 3000, maxFailureRatio: 0.25, order: 'START_FIRST' });
  assert.deepEqual(s.rollback, { parallelism: 0, delayMs: 0, failureAction: 'CONTINUE', monitorMs: 5000, maxFailureRatio: 0, order: 'STOP_FIRST' });

  const job = m.services.find((x) => x.key === 'job')!;
  assert.deepEqual(job.spec.global, {});
  assert.deepEqual(job.spec.task!.networks, [{ target: 'st_default', aliases: ['job'], addresses: [], driverOpts: {} }]);
});

test('only the networks services use are created: STACK_default as an overlay, declared ones with their options', () => {
  const m = convert(FULL);
  assert.deepEqual(m.networks.map((n) => n.name), ['st_default', 'st_front']);
  const front = m.networks[1]!.spec!;
  assert.deepEqual(front.annotations, { name: 'st_front', labels: { n: 'm', 'com.docker.stack.namespace': 'st' } });
  assert.deepEqual(front.driverConfig, { name: 'overlay', options: { k: 'v' } });
  assert.equal(front.attachable, true);
  assert.deepEqual(front.ipam!.configs, [{ subnet: '10.9.0.0/24', gateway: '10.9.0.1', range: '10.9.0.128/25' }]);
  assert.equal(m.networks[0]!.spec!.driverConfig!.name, 'overlay');
  assert.equal(m.networks[0]!.spec!.scope, 'swarm');
});

test('external networks and volumes keep their own names and are not created', () => {
  const m = convert(`
services:
  a: {image: x, networks: [pub, named], volumes: [shared:/s, mine:/m]}
networks:
  pub: {external: true}
  named: {external: {name: real-net}}
volumes:
  shared: {external: true}
  mine: {name: exact-name}
`);
  assert.deepEqual(m.networks.map((n) => [n.name, n.external]), [['real-net', true], ['pub', true]]);
  assert.deepEqual(m.services[0]!.spec.task!.networks.map((n) => n.target), ['pub', 'real-net']);
  assert.deepEqual(m.services[0]!.spec.task!.container!.mounts.map((x) => x.source), ['shared', 'exact-name']);
});

test('unsupported keys are named in warnings (with the service), never dropped silently', () => {
  const m = convert(`
secrets: {s: {file: ./s}}
services:
  a:
    image: x
    build: .
    privileged: true
    devices: [/dev/fuse]
    deploy: {resources: {reservations: {devices: []}}, rollback_config: {bogus: 1}}
    logging: {driver: syslog}
    x-ignored: yes
    depends_on: {b: {condition: service_completed_successfully}}
  b: {image: y}
networks:
  default: {driver: overlay, enable_ipv6: false, bogus: 1}
volumes:
  v: {driver: nfs}
`);
  assert.deepEqual(m.warnings, [
    'Ignoring unsupported options for the stack: secrets',
    'Ignoring unsupported options for volume v: driver (nfs: only local volumes)',
    'Ignoring unsupported options for service a: build, privileged, devices',
    'Ignoring unsupported options for service a: logging.driver (syslog: only json-file)',
    'Ignoring unsupported options for service a: deploy.rollback_config.bogus',
    'Ignoring unsupported options for service a: deploy.resources.reservations.devices',
    'Ignoring unsupported options for service a: depends_on.b.condition (service_completed_successfully: treated as service_started)',
    'Ignoring unsupported options for network default: bogus',
  ]);
});

test('bad values are refused with the compose path and the value', () => {
  const bad = (svc: string, re: RegExp) => assert.throws(() => convert(`services:\n  a:\n    image: x\n${svc}`), re);
  bad('    ports: ["99999:80"]\n', /services.a.ports\[0\]: invalid argument "99999:80": invalid port "99999"/);
  bad('    stop_grace_period: soon\n', /services.a.stop_grace_period: time: invalid duration "soon"/);
  bad('    deploy: {replicas: many}\n', /services.a.deploy.replicas: expected a non-negative integer, got "many"/);
  bad('    deploy: {mode: everywhere}\n', /services.a.deploy.mode: unknown mode "everywhere"/);
  bad('    deploy: {mode: global, replicas: 2}\n', /replicas can only be used with replicated/);
  bad('    deploy: {placement: {constraints: [nonsense]}}\n', /services.a.deploy.placement.constraints: invalid argument "nonsense"/);
  bad('    deploy: {resources: {limits: {memory: lots}}}\n', /services.a.deploy.resources.limits.memory: invalid size: 'lots'/);
  bad('    networks: [nowhere]\n', /service a refers to undefined network nowhere/);
  bad('    volumes: [undeclared:/x]\n', /undefined volume "undeclared"/);
  bad('    env_file: missing.env\n', /services.a.env_file: open \/w\/missing.env: no such file or directory/);
  bad('    depends_on: [ghost]\n', /service a depends on undefined service ghost/);
  assert.throws(() => convert('services:\n  a: {build: .}\n'), /service a has no image \(build is not supported/);
  assert.throws(() => convert('services: {}\n'), /no services to deploy/);
  assert.throws(() => convert('services:\n  a: {image: x}\n', 'bad name'), /invalid stack name "bad name"/);
});

test('an env_file marked required: false may be missing', () => {
  const m = convert('services:\n  a:\n    image: x\n    env_file: [{path: gone.env, required: false}, app.env]\n');
  assert.deepEqual(m.services[0]!.spec.task!.container!.env, ['FROM_FILE=1', 'MODE=file']);
});

const svc = (key: string, deps: string[] = [], healthy = false): StackService => ({ key, name: key, spec: {}, dependsOn: deps.map((service) => ({ service, healthy })) });

test('deploy order: dependencies first, file order otherwise; a cycle is named', () => {
  assert.deepEqual(deployOrder([svc('web', ['api']), svc('api', ['db']), svc('db'), svc('other')]).map((s) => s.key), ['db', 'api', 'web', 'other']);
  assert.throws(() => deployOrder([svc('a', ['b']), svc('b', ['c']), svc('c', ['a'])]), /dependency cycle between services: a -> b -> c -> a/);
  const m = convert('services:\n  web: {image: x, depends_on: {db: {condition: service_healthy}}}\n  db: {image: y}\n');
  assert.deepEqual(m.services.map((s) => s.key), ['db', 'web']);
  assert.deepEqual(m.services[1]!.dependsOn, [{ service: 'db', healthy: true }]);
});

test('configs: top-level file (relative to the first file), content, name and external; only the used ones, labelled', () => {
  files['/w/conf/site.conf'] = 'listen 80;\n';
  const m = convert(`
services:
  web:
    image: x
    configs:
      - site
      - source: inline
        target: etc/inline.conf
        uid: "101"
        gid: "102"
        mode: 0440
      - {source: shared, target: /shared, mode: "0600"}
      - {source: named}
configs:
  site: {file: ./conf/site.conf, labels: {tier: web}}
  inline: {content: "hello"}
  shared: {external: true, name: team-shared}
  named: {name: exact-name, content: "n"}
  unused: {file: ./missing.conf}
`);
  assert.deepEqual(
    m.configs.map((c) => [c.key, c.name, c.external, c.spec ? Buffer.from(c.spec.data).toString() : null, c.spec?.annotations?.labels ?? null]),
    [
      ['inline', 'st_inline', false, 'hello', { 'com.docker.stack.namespace': 'st' }],
      ['named', 'exact-name', false, 'n', { 'com.docker.stack.namespace': 'st' }],
      ['shared', 'team-shared', true, null, null],
      ['site', 'st_site', false, 'listen 80;\n', { tier: 'web', 'com.docker.stack.namespace': 'st' }],
    ],
  );
  const refs = m.services[0]!.spec.task!.container!.configs;
  assert.deepEqual(
    refs.map((r) => [r.configId, r.configName, r.file!.name, r.file!.uid, r.file!.gid, r.file!.mode.toString(8)]),
    [
      ['', 'st_site', '/site', '0', '0', '444'],
      ['', 'st_inline', '/etc/inline.conf', '101', '102', '440'],
      ['', 'team-shared', '/shared', '0', '0', '600'],
      ['', 'exact-name', '/named', '0', '0', '444'],
    ],
  );
  assert.deepEqual(m.warnings, []);
});

test('configs: mistakes name the place; unsupported keys are warned about', () => {
  assert.throws(() => convert('services:\n  a: {image: x, configs: [nope]}\n'), /service a refers to undefined config nope: invalid compose file/);
  assert.throws(() => convert('services:\n  a: {image: x, configs: [c]}\nconfigs:\n  c: {file: ./absent}\n'), /configs\.c\.file: open \/w\/absent: no such file or directory/);
  assert.throws(() => convert('services:\n  a: {image: x, configs: [c]}\nconfigs:\n  c: {}\n'), /configs\.c: a config needs a file, content, or external: true/);
  assert.throws(() => convert('services:\n  a: {image: x, configs: [{source: c, mode: "0999"}]}\nconfigs:\n  c: {content: x}\n'), /services\.a\.configs\[0\]\.mode: expected an octal file mode/);
  assert.throws(() => convert('services:\n  a: {image: x, configs: [{source: c, mode: 01777}]}\nconfigs:\n  c: {content: x}\n'), /services\.a\.configs\[0\]\.mode: invalid mode 1777: at most 0777/);
  assert.throws(() => convert('services:\n  a: {image: x, configs: [{source: c, uid: root}]}\nconfigs:\n  c: {content: x}\n'), /services\.a\.configs\[0\]\.uid: expected a number, got "root"/);
  const m = convert('services:\n  a: {image: x, configs: [c]}\nconfigs:\n  c: {content: x, template_driver: golang}\n');
  assert.deepEqual(m.warnings, ['Ignoring unsupported options for config c: template_driver']);
});
