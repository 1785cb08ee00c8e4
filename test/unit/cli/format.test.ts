import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRows, renderTemplate, FormatError } from '../../../cli/format.js';

const rows = [
  { ID: 'abc123', Hostname: 'h1', Status: 'Ready', ManagerStatus: 'Leader', Labels: { zone: 'a' }, Addrs: ['10.0.0.1', '10.0.0.2'] },
  { ID: 'def456789', Hostname: 'worker-two', Status: 'Down', ManagerStatus: '', Labels: {}, Addrs: [] },
];
const headers = { ID: 'ID', Hostname: 'HOSTNAME', Status: 'STATUS', ManagerStatus: 'MANAGER STATUS' };
const defaultTable = 'table {{.ID}}\t{{.Hostname}}\t{{.Status}}\t{{.ManagerStatus}}';

test('the default table aligns columns like Docker (min width 10, padding 3)', () => {
  assert.equal(
    formatRows(rows, '', defaultTable, headers),
    'ID          HOSTNAME     STATUS    MANAGER STATUS\n' + 'abc123      h1           Ready     Leader\n' + 'def456789   worker-two   Down\n',
  );
});

test('a user template prints one line per row', () => {
  assert.equal(formatRows(rows, '{{.Hostname}} {{.Status}}', defaultTable, headers), 'h1 Ready\nworker-two Down\n');
});

test('a user table template gets headers from the fields it names', () => {
  assert.equal(formatRows(rows, 'table {{.ID}}\\t{{.Hostname}}', defaultTable, headers), 'ID          HOSTNAME\nabc123      h1\ndef456789   worker-two\n');
});

test('json prints one object a line', () => {
  const out = formatRows(rows, 'json', defaultTable, headers).trim().split('\n');
  assert.deepEqual(JSON.parse(out[0]!), rows[0]);
});

test('functions and pipes', () => {
  assert.equal(renderTemplate('{{json .Labels}}', rows[0]), '{"zone":"a"}');
  assert.equal(renderTemplate('{{.Hostname | upper}}', rows[1]), 'WORKER-TWO');
  assert.equal(renderTemplate('{{join .Addrs ","}}', rows[0]), '10.0.0.1,10.0.0.2');
  assert.equal(renderTemplate('{{index .Labels "zone"}}', rows[0]), 'a');
  assert.equal(renderTemplate('{{truncate .ID 3}}', rows[1]), 'def');
  assert.equal(renderTemplate('{{printf "%s=%s" .ID .Status}}', rows[0]), 'abc123=Ready');
});

test('bad templates are user errors naming the problem', () => {
  assert.throws(() => renderTemplate('{{.Nope}}', rows[0]), (e: unknown) => e instanceof FormatError && /can't evaluate field Nope/.test(e.message));
  assert.throws(() => renderTemplate('{{.ID', rows[0]), /unclosed action/);
  assert.throws(() => renderTemplate('{{frob .ID}}', rows[0]), /function "frob" not defined/);
});
