// The task file: what was put is there after a reload, writes made together share one write.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { emptyStatus } from '../../../agent/worker/states.js';
import { TaskDb } from '../../../agent/worker/taskdb.js';
import { makeTask } from './tasks.js';

test('records survive a reload; deletes too; concurrent puts all land', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-taskdb-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'sub', 'tasks.json');
  const db = new TaskDb(path);
  assert.deepEqual(await db.load(), []);
  await Promise.all(['a', 'b', 'c', 'd'].map((id, i) => db.put({ task: makeTask(id), status: emptyStatus('RUNNING', i) })));
  await db.put({ task: makeTask('a'), status: emptyStatus('COMPLETE', 9) });
  await db.delete('c');
  const reloaded = await new TaskDb(path).load();
  assert.deepEqual(
    reloaded.map((r) => `${r.task.id}:${r.status.state}`),
    ['a:COMPLETE', 'b:RUNNING', 'd:RUNNING'],
  );
  await writeFile(path, '{oops');
  await assert.rejects(new TaskDb(path).load(), /not valid JSON/);
});

test('byte fields (a config\'s data) come back as bytes, stored as base64', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-taskdb-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'tasks.json');
  const task = makeTask('cfg');
  const data = Buffer.from('server_name example;\n');
  task.spec!.container!.configs = [{ configId: 'c1', configName: 'site', file: { name: '/site.conf', uid: '0', gid: '0', mode: 0o444 }, data }];
  await new TaskDb(path).put({ task, status: emptyStatus('RUNNING', 1) });
  assert.match(await readFile(path, 'utf8'), new RegExp(`"data":\\{"\\$bytes":"${data.toString('base64')}"\\}`));
  const [back] = await new TaskDb(path).load();
  const got = back!.task.spec!.container!.configs[0]!.data;
  assert.ok(got instanceof Uint8Array);
  assert.equal(Buffer.from(got).toString(), 'server_name example;\n');
});
