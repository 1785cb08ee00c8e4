import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { Config, Network, Service, ServiceSpec, type Task } from '../../../proto/gen/objects.js';
import { convertStack, type StackModel } from '../../../cli/stack/convert.js';
import { parseComposeFile } from '../../../cli/stack/load.js';
import { deployStack, removeStack, specChanged, type Caller, type DeployOptions } from '../../../cli/stack/deploy.js';
import { normalizeSpec } from '../../../cli/servicespec.js';

/**
 * A cluster in memory answering the Control calls the stack commands make, as the manager would:
 * network names resolved to ids and the mode field filled in on stored specs, versions bumped.
 */
class FakeCluster {
  services = new Map<string, Service>();
  networks = new Map<string, Network>();
  configs = new Map<string, Config>();
  tasks: Task[] = [];
  calls: string[] = [];
  /** removeNetwork fails this many times first (tasks still holding it). */
  networkBusy = 0;
  private n = 0;

  private id(prefix: string) {
    return `${prefix}${++this.n}`;
  }

  private store(spec: ServiceSpec): ServiceSpec {
    const s = normalizeSpec(spec);
    for (const a of s.task?.networks ?? []) a.target = [...this.networks.values()].find((n) => n.id === a.target || n.spec?.annotations?.name === a.target)?.id ?? a.target;
    s.mode = s.global ? 'global' : 'replicated';
    for (const r of s.task?.container?.configs ?? []) {
      const c = [...this.configs.values()].find((x) => x.id === r.configId || x.spec?.annotations?.name === r.configName);
      assert.ok(c, `config ${r.configName} exists`);
      r.configId = c.id;
    }
    return s;
  }

  readonly api: Caller = (async (name: string, req: Record<string, unknown>) => {
    this.calls.push(name === 'createService' || name === 'updateService' ? `${name} ${(req.spec as ServiceSpec).annotations!.name}` : name);
    const labelFilter = (labels: Record<string, string> | undefined) => {
      const f = (req.filters as Record<string, string> | undefined)?.label;
      if (!f) return true;
      const [k, v] = f.split('=');
      return labels !== undefined && k! in labels && (v === undefined || labels[k!] === v);
    };
    switch (name) {
      case 'listNetworks':
        return { networks: [...this.networks.values()].filter((n) => labelFilter(n.spec?.annotations?.labels)) };
      case 'createNetwork': {
        const n = Network.decode(Network.encode({ id: this.id('net'), spec: req.spec as Network['spec'] }));
        this.networks.set(n.id, n);
        return { network: n };
      }
      case 'removeNetwork': {
        if (this.networkBusy-- > 0) throw new Error('network is in use by task x');
        this.networks.delete(req.network as string);
        return {};
      }
      case 'listConfigs':
        return { configs: [...this.configs.values()].filter((c) => labelFilter(c.spec?.annotations?.labels)) };
      case 'createConfig': {
        const c = Config.decode(Config.encode({ id: this.id('cfg'), spec: req.spec as Config['spec'] }));
        this.configs.set(c.id, c);
        return { config: c };
      }
      case 'removeConfig': {
        const users = [...this.services.values()].filter((s) => s.spec?.task?.container?.configs.some((r) => r.configId === req.config));
        if (users.length) throw new Error(`config is in use by the following service: ${users[0]!.spec!.annotations!.name}`);
        this.configs.delete(req.config as string);
        return {};
      }
      case 'listServices':
        return { services: [...this.services.values()].filter((s) => labelFilter(s.spec?.annotations?.labels)), statuses: [] };
      case 'getService':
        return { service: this.services.get(req.service as string) };
      case 'createService': {
        const s = Service.decode(Service.encode({ id: this.id('svc'), meta: { version: 1, createdAt: 0, updatedAt: 0 }, spec: this.store(req.spec as ServiceSpec), specVersion: 1 } as Service));
        this.services.set(s.id, s);
        return { service: s, warnings: [] };
      }
      case 'updateService': {
        const s = this.services.get(req.service as string)!;
        assert.equal(req.version, s.meta!.version, 'updates name the current version');
        s.spec = this.store(req.spec as ServiceSpec);
        s.meta!.version += 1;
        s.specVersion += 1;
        return { service: s, warnings: [] };
      }
      case 'removeService':
        this.services.delete(req.service as string);
        return {};
      case 'listTasks':
        return { tasks: this.tasks.filter((t) => t.serviceId === (req.filters as Record<string, string>).service), nodeNames: {} };
      default:
        throw new Error(`unexpected call ${name}`);
    }
  }) as unknown as Caller;
}

function sink() {
  const s = new PassThrough();
  const chunks: string[] = [];
  s.on('data', (b: Buffer) => chunks.push(b.toString()));
  return { stream: s, text: () => chunks.join('') };
}

/** Config files the compose files name, by absolute path. */
const FILES: Record<string, string> = { '/site.conf': 'listen 80;\n', '/other.conf': 'x' };
const readFile = (p: string) => {
  const text = FILES[p];
  if (text === undefined) throw Object.assign(new Error(`ENOENT: ${p}`), { code: 'ENOENT' });
  return text;
};
const model = (yaml: string, stack = 'app'): StackModel => convertStack(stack, parseComposeFile({ name: 'c.yml', text: yaml }, {}), { env: {}, readFile, workingDir: '/' });

async function deploy(c: FakeCluster, yaml: string, extra: Partial<DeployOptions> = {}) {
  const out = sink();
  const err = sink();
  await deployStack(c.api, model(yaml), { prune: false, out: out.stream, err: err.stream, healthTimeoutMs: 10_000, pollMs: 1, sleep: async () => {}, ...extra });
  return { out: out.text(), err: err.text() };
}

const TWO = (apiImage: string) => `
services:
  api: {image: ${apiImage}, networks: [back], deploy: {replicas: 2}}
  web: {image: web:1, environment: {A: "1"}}
networks:
  back: {}
`;

test('first deploy creates the used networks, then the services; Docker’s messages', async () => {
  const c = new FakeCluster();
  const r = await deploy(c, TWO('api:1'));
  assert.equal(r.out, 'Creating network app_back\nCreating network app_default\nCreating service app_api\nCreating service app_web\n');
  const api = [...c.services.values()].find((s) => s.spec!.annotations!.name === 'app_api')!;
  const back = [...c.networks.values()].find((n) => n.spec!.annotations!.name === 'app_back')!;
  assert.equal(api.spec!.task!.networks[0]!.target, back.id, 'attachments name networks by id');
});

test('redeploy: only the service whose spec changed is updated; an identical file changes nothing', async () => {
  const c = new FakeCluster();
  await deploy(c, TWO('api:1'));
  const web = [...c.services.values()].find((s) => s.spec!.annotations!.name === 'app_web')!;
  web.spec!.task!.forceUpdate = 3; // a `service update --force` since: not the file's to undo
  c.calls = [];
  const same = await deploy(c, TWO('api:1'));
  assert.equal(same.out, '');
  assert.deepEqual(c.calls.filter((x) => /create|update/i.test(x)), []);
  const changed = await deploy(c, TWO('api:2'));
  const api = [...c.services.values()].find((s) => s.spec!.annotations!.name === 'app_api')!;
  assert.equal(changed.out, `Updating service app_api (id: ${api.id})\n`);
  assert.deepEqual(c.calls.filter((x) => /create|update/i.test(x)), ['updateService app_api']);
  assert.equal(api.spec!.task!.container!.image, 'api:2');
  assert.equal(web.spec!.task!.forceUpdate, 3);
});

test('specChanged ignores the server-filled mode and compares everything else', () => {
  const spec = normalizeSpec({ annotations: { name: 'a', labels: {} }, replicated: { replicas: 1 }, task: { container: null, resources: null, restart: null, placement: null, networks: [], forceUpdate: 0 } });
  assert.equal(specChanged({ ...spec, mode: 'replicated' }, spec), false);
  assert.equal(specChanged(spec, { ...spec, replicated: { replicas: 2 } }), true);
});

test('--prune removes the stack’s services no longer in the file, and only with --prune', async () => {
  const c = new FakeCluster();
  await deploy(c, TWO('api:1'));
  const one = 'services:\n  web: {image: web:1, environment: {A: "1"}}\n';
  assert.equal((await deploy(c, one)).out, '');
  assert.equal(c.services.size, 2);
  assert.equal((await deploy(c, one, { prune: true })).out, 'Removing service app_api\n');
  assert.deepEqual([...c.services.values()].map((s) => s.spec!.annotations!.name), ['app_web']);
});

test('an external network must exist; warnings go to stderr before anything is done', async () => {
  const c = new FakeCluster();
  const yaml = 'services:\n  a: {image: x, networks: [pub], privileged: true}\nnetworks:\n  pub: {external: true}\n';
  await assert.rejects(deploy(c, yaml), /network "pub" is declared as external, but could not be found/);
  assert.deepEqual(c.calls, ['listNetworks']);
  c.networks.set('n0', Network.decode(Network.encode({ id: 'n0', spec: { annotations: { name: 'pub', labels: {} } } } as Network)));
  const r = await deploy(c, yaml);
  assert.equal(r.out, 'Creating service app_a\n');
  assert.equal(r.err, 'Ignoring unsupported options for service a: privileged\n');
  assert.equal([...c.services.values()][0]!.spec!.task!.networks[0]!.target, 'n0');
});

const HEALTHY = `
services:
  web: {image: w, depends_on: {db: {condition: service_healthy}}}
  db: {image: d, deploy: {replicas: 2}, healthcheck: {test: [CMD, ok]}}
`;

const task = (serviceId: string, specVersion: number, health: string, state: Task['desiredState'] = 'RUNNING'): Task =>
  ({ id: `t${Math.random()}`, serviceId, specVersion, desiredState: 'RUNNING', status: { state, health, timestamp: 0, message: '', err: '', container: null, hostPorts: [] } }) as unknown as Task;

test('depends_on service_healthy: the dependent is created only once the dependency’s tasks run healthy', async () => {
  const c = new FakeCluster();
  let polls = 0;
  const sleep = async () => {
    polls++;
    const db = [...c.services.values()].find((s) => s.spec!.annotations!.name === 'app_db')!;
    // First poll: one starting and one healthy; then both healthy.
    c.tasks = polls === 1 ? [task(db.id, 1, 'starting'), task(db.id, 1, 'healthy')] : [task(db.id, 1, 'healthy'), task(db.id, 1, 'healthy')];
    assert.equal([...c.services.values()].length, 1, 'web is not created while db is unhealthy');
  };
  const r = await deploy(c, HEALTHY, { sleep });
  assert.equal(r.out, 'Creating network app_default\nCreating service app_db\nWaiting for service app_db to be healthy (0/2)\nCreating service app_web\n');
  assert.equal(polls, 2);
});

test('depends_on service_healthy: tasks of an older spec do not count; a timeout names the service', async () => {
  const c = new FakeCluster();
  let t = 0;
  const sleep = async () => {
    const db = [...c.services.values()].find((s) => s.spec!.annotations!.name === 'app_db')!;
    c.tasks = [task(db.id, 0, 'healthy'), task(db.id, 0, 'healthy'), task(db.id, 1, 'unhealthy')];
    t += 1000;
  };
  await assert.rejects(deploy(c, HEALTHY, { sleep, now: () => t, healthTimeoutMs: 5000 }), /service app_db was not running and healthy within 5s \(0\/2 tasks ready\): the services that depend on it were not deployed/);
  assert.equal(c.services.size, 1);
});

test('stack rm: services, then networks (retried while busy); nothing found is told', async () => {
  const c = new FakeCluster();
  await deploy(c, TWO('api:1'));
  c.networks.set('other', Network.decode(Network.encode({ id: 'other', spec: { annotations: { name: 'not-ours', labels: {} } } } as Network)));
  c.networkBusy = 2;
  const out = sink();
  assert.equal(await removeStack(c.api, 'app', { out: out.stream, networkTimeoutMs: 1000, pollMs: 1, sleep: async () => {} }), true);
  assert.equal(out.text(), 'Removing service app_api\nRemoving service app_web\nRemoving network app_back\nRemoving network app_default\n');
  assert.equal(c.services.size, 0);
  assert.deepEqual([...c.networks.keys()], ['other']);
  assert.equal(await removeStack(c.api, 'app', { out: out.stream, networkTimeoutMs: 1000 }), false);
});

test('stack rm: a network that stays busy is reported after the timeout', async () => {
  const c = new FakeCluster();
  await deploy(c, 'services:\n  a: {image: x}\n');
  c.networkBusy = 1000;
  let t = 0;
  await assert.rejects(
    removeStack(c.api, 'app', { out: sink().stream, networkTimeoutMs: 3000, pollMs: 1, sleep: async () => void (t += 1000), now: () => t }),
    /failed to remove network app_default: network is in use by task x/,
  );
});

const WITH_CONFIGS = (apiImage: string, site = 'site.conf') => `
services:
  api: {image: ${apiImage}, configs: [site]}
  web: {image: web:1, configs: [{source: site, target: /etc/web/site.conf, mode: 0440}, shared]}
configs:
  site: {file: ./${site}}
  shared: {external: true, name: team-shared}
`;

function outsideConfig(c: FakeCluster, name: string): Config {
  const cfg = Config.decode(Config.encode({ id: `out-${name}`, spec: { annotations: { name, labels: {} }, data: Buffer.from('shared') } } as Config));
  c.configs.set(cfg.id, cfg);
  return cfg;
}

test('configs: the used ones are created before the services, which name them by id; external ones must exist', async () => {
  const c = new FakeCluster();
  await assert.rejects(deploy(c, WITH_CONFIGS('api:1')), /config "team-shared" is declared as external, but could not be found/);
  assert.deepEqual(c.calls.filter((x) => /create/i.test(x)), ['createNetwork'], 'no config and no service made');
  const shared = outsideConfig(c, 'team-shared');
  const r = await deploy(c, WITH_CONFIGS('api:1'));
  assert.equal(r.out, 'Creating config app_site\nCreating service app_api\nCreating service app_web\n');
  const site = [...c.configs.values()].find((x) => x.spec!.annotations!.name === 'app_site')!;
  assert.equal(Buffer.from(site.spec!.data).toString(), 'listen 80;\n');
  assert.equal(site.spec!.annotations!.labels['com.docker.stack.namespace'], 'app');
  const web = [...c.services.values()].find((s) => s.spec!.annotations!.name === 'app_web')!;
  assert.deepEqual(
    web.spec!.task!.container!.configs.map((x) => [x.configId, x.configName, x.file!.name, x.file!.mode.toString(8)]),
    [
      [site.id, 'app_site', '/etc/web/site.conf', '440'],
      [shared.id, 'team-shared', '/shared', '444'],
    ],
  );
});

test('configs: a redeploy with one image changed updates only that service and creates no config again', async () => {
  const c = new FakeCluster();
  outsideConfig(c, 'team-shared');
  await deploy(c, WITH_CONFIGS('api:1'));
  c.calls = [];
  assert.equal((await deploy(c, WITH_CONFIGS('api:1'))).out, '', 'an identical file changes nothing');
  const r = await deploy(c, WITH_CONFIGS('api:2'));
  assert.match(r.out, /^Updating service app_api \(id: svc\d+\)\n$/);
  assert.deepEqual(c.calls.filter((x) => /create|update/i.test(x)), ['updateService app_api']);
});

test('configs: data of an existing config cannot change; the message says what to do', async () => {
  const c = new FakeCluster();
  outsideConfig(c, 'team-shared');
  await deploy(c, WITH_CONFIGS('api:1'));
  await assert.rejects(deploy(c, WITH_CONFIGS('api:1', 'other.conf')), /config app_site already exists with other data: a config cannot be changed; give the new data a new name/);
});

test('stack rm removes the configs the stack made, after its services, and nothing else', async () => {
  const c = new FakeCluster();
  const shared = outsideConfig(c, 'team-shared');
  const unrelated = outsideConfig(c, 'unrelated');
  await deploy(c, WITH_CONFIGS('api:1'));
  const out = sink();
  assert.equal(await removeStack(c.api, 'app', { out: out.stream, networkTimeoutMs: 1000, pollMs: 1, sleep: async () => {} }), true);
  assert.equal(out.text(), 'Removing service app_api\nRemoving service app_web\nRemoving network app_default\nRemoving config app_site\n');
  assert.deepEqual([...c.configs.keys()].sort(), [shared.id, unrelated.id]);
});
