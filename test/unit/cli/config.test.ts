// Configs in the CLI: `--config` short and long forms as Docker parses them, `--config-add` and
// `--config-rm` on update, and `config ls` / `config inspect` output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from '../../../util/flags.js';
import { createFlags, parseConfigReference, updateFlags } from '../../../cli/serviceflags.js';
import { applyServiceUpdate, serviceSpecFromFlags } from '../../../cli/servicespec.js';
import { configMatches, configRows, prettyConfig } from '../../../cli/commands/config.js';
import { dockerConfig } from '../../../cli/dockerjson.js';
import type { Config, ConfigReference, ServiceSpec } from '../../../proto/gen/objects.js';

const show = (r: ConfigReference) => `${r.configName}@${r.file?.name} ${r.file?.uid}:${r.file?.gid} ${r.file?.mode.toString(8)}`;

test('--config NAME mounts at /NAME; the long form takes source, target, uid, gid and mode (0444 octal, as Go reads it)', () => {
  assert.equal(show(parseConfigReference('config', 'site')), 'site@/site 0:0 444');
  assert.equal(show(parseConfigReference('config', 'source=site,target=/etc/nginx/site.conf,uid=101,gid=102,mode=0440')), 'site@/etc/nginx/site.conf 101:102 440');
  assert.equal(show(parseConfigReference('config', 'src=site,target=site.conf')), 'site@/site.conf 0:0 444', 'a relative target is under /');
  assert.equal(show(parseConfigReference('config', 'source=site,mode=0o600')), 'site@/site 0:0 600');
  assert.equal(show(parseConfigReference('config', 'source=site,mode=292')), 'site@/site 0:0 444', 'a mode without a leading 0 is decimal, as in Docker');
});

test('--config mistakes name the flag and the value', () => {
  const bad: [string, RegExp][] = [
    ['', /invalid argument "" for "--config" flag: source is required/],
    ['target=/x', /invalid argument "target=\/x" for "--config" flag: source is required/],
    ['source=a,bogus=1', /invalid field in config request: bogus \(expected source, target, uid, gid or mode\)/],
    ['source=a,target', /invalid field 'target' must be a key=value pair/],
    ['source=a,mode=0999', /invalid mode "0999": expected an octal mode like 0444/],
    ['source=a,mode=01000', /invalid mode "01000": at most 0777/],
    ['source=a,uid=root', /invalid uid "root": expected a number/],
  ];
  for (const [v, re] of bad) assert.throws(() => parseConfigReference('config', v), re, v);
});

function create(argv: string[]): ServiceSpec {
  const { flags, args } = parseFlags(argv, createFlags, true);
  return serviceSpecFromFlags(flags, args);
}

function update(spec: ServiceSpec, argv: string[]): ServiceSpec {
  const { flags } = parseFlags(argv, updateFlags);
  return applyServiceUpdate(spec, flags);
}

test('service create --config; update --config-add replaces the one at the same target, --config-rm removes by name or id', () => {
  const spec = create(['--name', 'web', '--config', 'site', '--config', 'source=extra,target=/etc/extra', 'nginx']);
  assert.deepEqual(spec.task!.container!.configs.map(show), ['site@/site 0:0 444', 'extra@/etc/extra 0:0 444']);
  assert.throws(() => create(['--name', 'web', '--config', 'a', '--config', 'source=b,target=/a', 'nginx']), /duplicate config target \/a/);
  // As stored: references carry the ids the manager resolved.
  spec.task!.container!.configs[0]!.configId = 'cfgsite';
  spec.task!.container!.configs[1]!.configId = 'cfgextra';
  const added = update(spec, ['--config-add', 'source=v2,target=/etc/extra,mode=0400', '--config-add', 'more']);
  assert.deepEqual(added.task!.container!.configs.map(show), ['site@/site 0:0 444', 'v2@/etc/extra 0:0 400', 'more@/more 0:0 444']);
  const removed = update(spec, ['--config-rm', 'cfgsite', '--config-rm', 'extra']);
  assert.deepEqual(removed.task!.container!.configs, []);
  assert.deepEqual(update(spec, ['--replicas', '3']).task!.container!.configs, spec.task!.container!.configs, 'other flags leave configs alone');
});

const NOW = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
const config = (id: string, name: string, labels: Record<string, string> = {}): Config => ({
  id,
  meta: { version: 3, createdAt: NOW - 3 * 60_000, updatedAt: NOW - 5_000 },
  spec: { annotations: { name, labels }, data: Buffer.from('listen 80;\n') },
});

test('config ls rows: full id, name, created and updated ago, sorted by name; filters as Docker', () => {
  const rows = configRows([config('zz1', 'web.conf'), config('aa2', 'app.conf', { env: 'prod' })], NOW);
  assert.deepEqual(rows, [
    { ID: 'aa2', Name: 'app.conf', CreatedAt: '3 minutes ago', UpdatedAt: '5 seconds ago' },
    { ID: 'zz1', Name: 'web.conf', CreatedAt: '3 minutes ago', UpdatedAt: '5 seconds ago' },
  ]);
  assert.equal(configMatches(config('aa2', 'app.conf', { env: 'prod' }), { label: 'env=prod', name: 'app', id: 'aa' }), true);
  assert.equal(configMatches(config('aa2', 'app.conf'), { label: 'env' }), false);
});

test('config inspect: JSON with the data in base64; --pretty as Docker lays it out', () => {
  const c = config('aa2', 'app.conf', { env: 'prod', flag: '' });
  assert.deepEqual(dockerConfig(c).Spec, { Name: 'app.conf', Labels: { env: 'prod', flag: '' }, Data: Buffer.from('listen 80;\n').toString('base64') });
  assert.equal(
    prettyConfig(c),
    [
      'ID:              aa2',
      'Name:              app.conf',
      'Labels:',
      ' - env=prod',
      ' - flag',
      'Created at:            2026-01-02 03:01:05.678 +0000 UTC',
      'Updated at:            2026-01-02 03:04:00.678 +0000 UTC',
      'Data:',
      'listen 80;',
      '',
    ].join('\n'),
  );
});
