// Configs through the control API: create with swarmkit's name and size checks, inspect by id,
// prefix or name, list with filters, services naming them (resolved, defaulted, checked), and
// removal refused while a service uses the config, in Docker's words.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { createConfig, getConfig, listConfigs, MAX_CONFIG_SIZE, removeConfig } from '../../../manager/controlapi/configs.js';
import { createService, updateService } from '../../../manager/controlapi/services.js';
import type { ConfigReference, ConfigSpec, ServiceSpec } from '../../../proto/gen/objects.js';
import { newContext, rejects, serviceSpec } from './fixtures.js';

const configSpec = (name: string, data: string | Uint8Array = 'hello', labels: Record<string, string> = {}): ConfigSpec => ({
  annotations: { name, labels },
  data: typeof data === 'string' ? Buffer.from(data) : data,
});

const ref = (configName: string, target = '', extra: Partial<ConfigReference> = {}): ConfigReference => ({
  configId: '',
  configName,
  file: target ? { name: target, uid: '', gid: '', mode: 0 } : null,
  data: new Uint8Array(0),
  ...extra,
});

function withConfigs(spec: ServiceSpec, refs: ConfigReference[]): ServiceSpec {
  spec.task!.container!.configs = refs;
  return spec;
}

test('create, inspect by id, prefix or name, list with filters', async () => {
  const ctx = newContext();
  const a = await createConfig(ctx, { spec: configSpec('app.conf', 'listen 80;\n', { env: 'prod' }) });
  const b = await createConfig(ctx, { spec: configSpec('other', 'x') });
  assert.equal(a.id, 'id0001');
  assert.equal(Buffer.from(a.spec!.data).toString(), 'listen 80;\n');
  assert.ok((a.meta?.createdAt ?? 0) > 0);
  assert.equal(getConfig(ctx, 'app.conf').id, a.id);
  assert.equal(getConfig(ctx, b.id).id, b.id);
  assert.equal(getConfig(ctx, 'id0002').id, b.id);
  await rejects(() => getConfig(ctx, 'id'), status.INVALID_ARGUMENT, /config id is ambiguous \(2 matches found\)/);
  await rejects(() => getConfig(ctx, 'nope'), status.NOT_FOUND, /config nope not found/);
  assert.deepEqual(listConfigs(ctx, { filters: {} }).map((c) => c.spec!.annotations!.name), ['app.conf', 'other']);
  assert.deepEqual(listConfigs(ctx, { filters: { label: 'env=prod' } }).map((c) => c.id), [a.id]);
  assert.deepEqual(listConfigs(ctx, { filters: { name: 'oth' } }).map((c) => c.id), [b.id]);
  assert.deepEqual(listConfigs(ctx, { filters: { id: 'id0001' } }).map((c) => c.id), [a.id]);
  await rejects(() => listConfigs(ctx, { filters: { driver: 'x' } }), status.INVALID_ARGUMENT, /invalid filter 'driver': valid filters are id, name, label/);
});

test('create: a name Docker refuses, no data, too much data, a taken name', async () => {
  const ctx = newContext();
  await rejects(createConfig(ctx, { spec: configSpec('') }), status.INVALID_ARGUMENT, /a config needs a name/);
  await rejects(createConfig(ctx, { spec: configSpec('-bad') }), status.INVALID_ARGUMENT, /invalid config name "-bad": only 64 \[a-zA-Z0-9-_.\] characters allowed/);
  await rejects(createConfig(ctx, { spec: configSpec('a'.repeat(65)) }), status.INVALID_ARGUMENT, /invalid config name "a{65}"/);
  await rejects(createConfig(ctx, { spec: configSpec('empty', '') }), status.INVALID_ARGUMENT, /config empty: config data must be larger than 0 and at most 512000 bytes \(it has 0\)/);
  await rejects(createConfig(ctx, { spec: configSpec('big', new Uint8Array(MAX_CONFIG_SIZE + 1)) }), status.INVALID_ARGUMENT, /config big: config data must be larger than 0 and at most 512000 bytes \(it has 512001\)/);
  const max = await createConfig(ctx, { spec: configSpec('max', new Uint8Array(MAX_CONFIG_SIZE)) });
  assert.equal(max.spec!.data.length, MAX_CONFIG_SIZE);
  await rejects(createConfig(ctx, { spec: configSpec('max') }), status.ALREADY_EXISTS, /config max already exists \(id0001\)/);
});

test('a service names configs by name, id or prefix: stored by id and name, target /NAME by default, root-owned 0444', async () => {
  const ctx = newContext();
  const site = await createConfig(ctx, { spec: configSpec('site') });
  const extra = await createConfig(ctx, { spec: configSpec('extra') });
  const svc = await createService(ctx, {
    spec: withConfigs(serviceSpec('web'), [
      ref('site'),
      ref('', 'etc/extra.conf', { configId: extra.id.slice(0, 6), file: { name: 'etc/extra.conf', uid: '101', gid: '', mode: 0o440 } }),
      { ...ref('site', '/etc/again'), data: Buffer.from('ignored') },
    ]),
  });
  const refs = svc.spec!.task!.container!.configs;
  assert.deepEqual(
    refs.map((r) => [r.configId, r.configName, r.file?.name, r.file?.uid, r.file?.gid, r.file?.mode.toString(8), r.data.length]),
    [
      [site.id, 'site', '/site', '0', '0', '444', 0],
      [extra.id, 'extra', '/etc/extra.conf', '101', '0', '440', 0],
      [site.id, 'site', '/etc/again', '0', '0', '444', 0],
    ],
  );
});

test('a service’s config references are checked: missing config, mismatched name, clashing targets, bad mode or owner', async () => {
  const ctx = newContext();
  const site = await createConfig(ctx, { spec: configSpec('site') });
  const create = (refs: ConfigReference[], mutate: (s: ServiceSpec) => void = () => {}) => {
    const spec = withConfigs(serviceSpec('web'), refs);
    mutate(spec);
    return createService(ctx, { spec });
  };
  await rejects(create([ref('nope')]), status.NOT_FOUND, /service web: config nope not found/);
  await rejects(create([ref('', '', { configId: site.id, configName: 'other' })]), status.INVALID_ARGUMENT, new RegExp(`service web: config ${site.id} is named site, not other`));
  await rejects(create([ref('site', '/a'), ref('site', '/a')]), status.INVALID_ARGUMENT, /service web: config site is mounted at \/a, where config site already is/);
  await rejects(
    create([ref('site', '/data')], (s) => (s.task!.container!.mounts = [{ type: 'VOLUME', source: 'vol', target: '/data', readOnly: false, tmpfsSizeBytes: 0 }])),
    status.INVALID_ARGUMENT,
    /service web: config site is mounted at \/data, where a volume mount already is/,
  );
  await rejects(create([ref('site', '/a', { file: { name: '/a', uid: '', gid: '', mode: 0o1777 } })]), status.INVALID_ARGUMENT, /service web: invalid file mode 1777 for config site: at most 0777/);
  await rejects(create([ref('site', '/a', { file: { name: '/a', uid: 'root', gid: '', mode: 0 } })]), status.INVALID_ARGUMENT, /service web: invalid uid "root" for config site: expected a number/);
  await rejects(create([ref('')]), status.INVALID_ARGUMENT, /service web: a config reference needs the config's name or id/);
  assert.equal(ctx.store.all('services').length, 0);
});

test('remove: refused while services use the config, with Docker’s wording; allowed once none does', async () => {
  const ctx = newContext();
  const site = await createConfig(ctx, { spec: configSpec('site') });
  const unused = await createConfig(ctx, { spec: configSpec('unused') });
  await removeConfig(ctx, unused.id);
  assert.equal(ctx.store.get('configs', unused.id), undefined);
  const web = await createService(ctx, { spec: withConfigs(serviceSpec('web'), [ref('site')]) });
  await rejects(removeConfig(ctx, 'site'), status.INVALID_ARGUMENT, /^config 'site' is in use by the following service: web$/);
  await createService(ctx, { spec: withConfigs(serviceSpec('api'), [ref('site')]) });
  await rejects(removeConfig(ctx, site.id), status.INVALID_ARGUMENT, /^config 'site' is in use by the following services: api, web$/);
  // web lets go of it; api is removed: the config can go.
  await updateService(ctx, { service: 'web', version: web.meta!.version, spec: withConfigs(serviceSpec('web'), []), rollback: '' });
  await ctx.store.update((tx) => tx.remove('services', ctx.store.find('services', 'name', 'api')[0]!.id));
  await removeConfig(ctx, 'site');
  assert.deepEqual(ctx.store.all('configs'), []);
  await rejects(removeConfig(ctx, 'site'), status.NOT_FOUND, /config site not found/);
});
