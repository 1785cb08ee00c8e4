import { test } from 'node:test';
import assert from 'node:assert/strict';
import { interpolateString, interpolateTree } from '../../../cli/stack/interpolate.js';
import { loadCompose, mergeComposeFiles, parseComposeFile } from '../../../cli/stack/load.js';

const env = { SET: 'value', EMPTY: '' };

test('interpolation: $VAR, ${VAR}, defaults, alternatives, $$', () => {
  assert.equal(interpolateString('$SET/${SET}', env, 'x'), 'value/value');
  assert.equal(interpolateString('${UNSET:-dflt} ${EMPTY:-dflt} ${EMPTY-dflt} ${UNSET-dflt}', env, 'x'), 'dflt dflt  dflt');
  assert.equal(interpolateString('${SET:+alt} ${EMPTY:+alt} ${EMPTY+alt}', env, 'x'), 'alt  alt');
  assert.equal(interpolateString('$$SET costs $$5', env, 'x'), '$SET costs $5');
  assert.equal(interpolateString('${UNSET:-${SET}-nested}', env, 'x'), 'value-nested');
  assert.equal(interpolateString('$UNSET', env, 'x'), '');
});

test('interpolation: required variables and bad syntax name the place', () => {
  assert.throws(() => interpolateString('${UNSET:?set it please}', env, 'services.web.image'), /required variable UNSET is missing a value: set it please \(in services.web.image\)/);
  assert.throws(() => interpolateString('${EMPTY:?}', env, 'x'), /required variable EMPTY/);
  assert.equal(interpolateString('${EMPTY?}', env, 'x'), '');
  assert.throws(() => interpolateString('${SET', env, 'services.a.command'), /invalid interpolation format for services.a.command: "\$\{SET"/);
  assert.throws(() => interpolateString('a $ b', env, 'x'), /invalid interpolation format/);
  assert.throws(() => interpolateString('${1BAD}', env, 'x'), /invalid interpolation format/);
});

test('interpolation touches values, never keys', () => {
  assert.deepEqual(interpolateTree({ $SET: ['${SET}', 3, null], n: { k: '$SET' } }, env), { $SET: ['value', 3, null], n: { k: 'value' } });
});

test('a file: YAML merge keys, environment and labels as maps, networks list as a map', () => {
  const doc = parseComposeFile(
    {
      name: 'a.yml',
      text: `
x-common: &common
  environment: [A=1, B]
services:
  web:
    <<: *common
    image: img:\${TAG:-1}
    labels: {x: 1}
    networks: [front]
    env_file: one.env
`,
    },
    {},
  );
  assert.deepEqual(doc.services, { web: { environment: { A: '1', B: null }, image: 'img:1', labels: { x: '1' }, networks: { front: null }, env_file: ['one.env'] } });
});

test('a file: bad YAML and a non-mapping are refused with the file name', () => {
  assert.throws(() => parseComposeFile({ name: 'bad.yml', text: 'services: [\n' }, {}), /^UserError: bad.yml: invalid YAML/);
  assert.throws(() => parseComposeFile({ name: 'list.yml', text: '- a\n' }, {}), /list.yml: top-level object must be a mapping/);
  assert.throws(() => parseComposeFile({ name: 's.yml', text: 'services:\n  web: 3\n' }, {}), /s.yml: service web must be a mapping/);
  assert.throws(() => loadCompose([], {}), /specify a Compose file/);
});

test('files merge in order: scalars and maps override, ports and volumes by target, command replaced, lists appended', () => {
  const base = parseComposeFile(
    {
      name: 'base.yml',
      text: `
services:
  web:
    image: a
    command: [one, two]
    environment: {A: '1', B: '2'}
    ports: ["80", "8080:81"]
    volumes: [data:/data, logs:/logs]
    cap_add: [NET_ADMIN]
    deploy: {replicas: 2, resources: {limits: {memory: 64M}}}
  db:
    image: d
`,
    },
    {},
  );
  const over = parseComposeFile(
    {
      name: 'over.yml',
      text: `
services:
  web:
    image: b
    command: [three]
    environment: [B=3, C=4]
    ports: ["9090:81"]
    volumes: [other:/data]
    cap_add: [NET_ADMIN, SYS_TIME]
    deploy: {resources: {limits: {cpus: '1'}}}
`,
    },
    {},
  );
  const merged = mergeComposeFiles([base, over]) as { services: Record<string, Record<string, unknown>> };
  const web = merged.services.web!;
  assert.equal(web.image, 'b');
  assert.deepEqual(web.command, ['three']);
  assert.deepEqual(web.environment, { A: '1', B: '3', C: '4' });
  assert.deepEqual(web.ports, ['80', '8080:81', '9090:81']);
  assert.deepEqual(web.volumes, ['other:/data', 'logs:/logs']);
  assert.deepEqual(web.cap_add, ['NET_ADMIN', 'SYS_TIME']);
  assert.deepEqual(web.deploy, { replicas: 2, resources: { limits: { memory: '64M', cpus: '1' } } });
  assert.deepEqual(merged.services.db, { image: 'd' });
});

test('YAML 1.1 octals (file modes as Compose writes them) and a service’s configs merged by target', () => {
  const a = parseComposeFile({ name: 'a.yml', text: 'services:\n  s:\n    image: x\n    configs: [one, {source: two, target: /etc/two, mode: 0440}]\n' }, {});
  const b = parseComposeFile({ name: 'b.yml', text: 'services:\n  s:\n    configs: [{source: three, target: /etc/two, mode: 0o600}, {source: one, target: one, mode: 420}]\n' }, {});
  const merged = mergeComposeFiles([a, b]) as { services: { s: { configs: unknown[] } } };
  assert.deepEqual(merged.services.s.configs, [
    { source: 'one', target: 'one', mode: 420 },
    { source: 'three', target: '/etc/two', mode: 0o600 },
  ]);
  assert.equal((a as { services: { s: { configs: [string, { mode: number }] } } }).services.s.configs[1].mode, 0o440, '0440 is octal, as in YAML 1.1');
});
