// The task file: what was put is there after a reload, writes made together share one write.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
