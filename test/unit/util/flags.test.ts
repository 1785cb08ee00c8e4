import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags, UsageError, type FlagSpec } from '../../../util/flags.js';

const specs: FlagSpec[] = [
  { name: 'replicas', kind: 'int', description: 'Number of tasks' },
  { name: 'env', short: 'e', kind: 'list', description: 'Set environment variables' },
  { name: 'detach', short: 'd', kind: 'bool', description: 'Exit immediately' },
  { name: 'interactive', short: 'i', kind: 'bool', description: 'Keep STDIN open' },
  { name: 'tty', short: 't', kind: 'bool', description: 'Allocate a TTY' },
  { name: 'name', kind: 'string', description: 'Service name' },
  { name: 'mode', kind: 'string', default: 'replicated', description: 'Service mode' },
];

test('long flags take values separated by space or =', () => {
  const p = parseFlags(['--replicas', '3', '--name=web', 'busybox'], specs);
  assert.equal(p.flags.replicas, 3);
  assert.equal(p.flags.name, 'web');
  assert.deepEqual(p.args, ['busybox']);
});

test('defaults apply, booleans start false, lists start empty', () => {
  const p = parseFlags([], specs);
  assert.equal(p.flags.mode, 'replicated');
  assert.equal(p.flags.detach, false);
  assert.deepEqual(p.flags.env, []);
});

test('repeatable flags collect every value in order', () => {
  const p = parseFlags(['-e', 'A=1', '--env', 'B=2', '-eC=3'], specs);
  assert.deepEqual(p.flags.env, ['A=1', 'B=2', 'C=3']);
});

test('short booleans bundle like -it', () => {
  const p = parseFlags(['-it', 'task', 'sh'], specs);
  assert.equal(p.flags.interactive, true);
  assert.equal(p.flags.tty, true);
  assert.deepEqual(p.args, ['task', 'sh']);
});

test('stopAtFirstArg leaves the command tail alone', () => {
  const p = parseFlags(['-i', 'task', 'ls', '-la', '--name', 'x'], specs, true);
  assert.deepEqual(p.args, ['task', 'ls', '-la', '--name', 'x']);
  assert.equal(p.flags.name, undefined);
});

test('-- ends the flags', () => {
  const p = parseFlags(['--', '--name', 'x'], specs);
  assert.deepEqual(p.args, ['--name', 'x']);
});

test('errors name the flag and the bad value', () => {
  assert.throws(() => parseFlags(['--replicas', 'three'], specs), (e: unknown) => e instanceof UsageError && /"three".*--replicas/.test(e.message));
  assert.throws(() => parseFlags(['--nope'], specs), /unknown flag: --nope/);
  assert.throws(() => parseFlags(['-x'], specs), /unknown shorthand flag: 'x'/);
  assert.throws(() => parseFlags(['--name'], specs), /flag needs an argument: --name/);
  assert.throws(() => parseFlags(['--detach=maybe'], specs), /"maybe".*--detach/);
});
