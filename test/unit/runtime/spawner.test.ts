// The helper shell that runs the runtime's short commands: status, output and working directory
// come back per command even when many overlap, quoting survives any argument, and the shells
// leave no zombies behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spawner } from '../../../agent/runtime/spawner.js';

test('overlapping commands each get their own status, stdout and stderr; arguments arrive as given', async (t) => {
  const spawner = new Spawner(3);
  t.after(() => spawner.close());
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => spawner.run('/bin/sh', ['-c', `echo out${i}; echo err${i} >&2; exit ${i % 4}`])));
  results.forEach((r, i) => assert.deepEqual(r, { code: i % 4, stdout: `out${i}\n`, stderr: `err${i}\n` }));
  const odd = `it's "quoted" $HOME \`x\` ; & | \\ *`;
  assert.equal((await spawner.run('/bin/echo', [odd])).stdout, `${odd}\n`);
  assert.equal((await spawner.run('/bin/pwd', [], { cwd: '/usr' })).stdout, '/usr\n');
  const missing = await spawner.run('/nonexistent/tool', []);
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /nonexistent\/tool/);
});

test('the helper shells reap what they ran: no zombie children', async (t) => {
  const spawner = new Spawner(2);
  t.after(() => spawner.close());
  await Promise.all(Array.from({ length: 10 }, () => spawner.run('/bin/true', [])));
  const shells = new Set(spawner.shellPids);
  assert.equal(shells.size, 2);
  const children: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (shells.has(Number(ppid))) children.push(`${pid} ${state}`);
  }
  assert.deepEqual(children, []);
});

test('output directories of daemons killed with SIGKILL are swept when a new one starts; live ones stay', async (t) => {
  const dead = spawnSync('/bin/true').pid!; // a pid whose process has exited
  const stale = mkdtempSync(join(tmpdir(), `shoal-spawner-${dead}-`));
  const live = mkdtempSync(join(tmpdir(), `shoal-spawner-${process.ppid}-`));
  t.after(() => rmSync(live, { recursive: true, force: true }));
  const spawner = new Spawner(1);
  t.after(() => spawner.close());
  assert.equal((await spawner.run('/bin/true', [])).code, 0);
  assert.equal(existsSync(stale), false, 'the dead process\'s directory is gone');
  assert.equal(existsSync(live), true, 'a running process\'s directory is left alone');
});

test('commands keep working when the output directory is removed under the spawner', async (t) => {
  const spawner = new Spawner(1);
  t.after(() => spawner.close());
  assert.equal((await spawner.run('/bin/echo', ['one'])).stdout, 'one\n');
  const mine = readdirSync(tmpdir()).filter((n) => n.startsWith(`shoal-spawner-${process.pid}-`));
  assert.ok(mine.length > 0, 'the spawner made its directory');
  for (const n of mine) rmSync(join(tmpdir(), n), { recursive: true, force: true });
  assert.deepEqual(await spawner.run('/bin/echo', ['two']), { code: 0, stdout: 'two\n', stderr: '' });
});
