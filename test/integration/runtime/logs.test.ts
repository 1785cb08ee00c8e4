// Container logs through conmon's k8s-file: follow until exit, tail, since, and rotation to
// max-file files without losing or reordering lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogEntry } from '../../../agent/runtime/runtime.js';
import { logLines, setupRuntime } from './harness.js';

test('follow streams lines as they come and ends when the container exits; tail and since filter', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  await runtime.create({ id: 'talker', rootfs, command: ['sh', '-c', 'for i in 1 2 3 4 5; do echo line$i; sleep 0.05; done; printf partial'] });
  const followed: LogEntry[] = [];
  const following = (async () => {
    for await (const e of runtime.logs('talker', { follow: true })) followed.push(e);
  })();
  await runtime.start('talker');
  await following;
  assert.deepEqual(
    followed.map((e) => e.line),
    ['line1', 'line2', 'line3', 'line4', 'line5', 'partial'],
  );
  const tail: string[] = [];
  for await (const e of runtime.logs('talker', { tail: 2 })) tail.push(e.line);
  assert.deepEqual(tail, ['line5', 'partial']);
  const since = followed[2].time;
  const after: LogEntry[] = [];
  for await (const e of runtime.logs('talker', { since })) after.push(e);
  assert.ok(after.length >= 4 && after.every((e) => e.time >= since));
  assert.equal(after.at(-1)?.line, 'partial');
  assert.ok(after.some((e) => e.line === 'line3'));
});

test('rotation keeps max-file files: the newest lines survive, complete and in order', async (t) => {
  const { runtime, rootfs, dir } = await setupRuntime(t, { logRotateIntervalMs: 0 });
  const shared = join(dir, 'shared');
  await mkdir(shared);
  // Five batches of 30 lines (~2.6 kB each in k8s-file form); each batch waits for a go file.
  const script =
    'for b in 1 2 3 4 5; do i=1; while [ $i -le 30 ]; do echo "batch$b line$i padding-padding"; i=$((i+1)); done; ' +
    'while [ ! -e /shared/go$b ]; do sleep 0.02; done; done';
  await runtime.create({
    id: 'chatty',
    rootfs,
    log: { maxSizeBytes: 2000, maxFiles: 3 },
    mounts: [{ type: 'bind', source: shared, target: '/shared' }],
    command: ['sh', '-c', script],
  });
  await runtime.start('chatty');
  const lines = (b: number): string[] => Array.from({ length: 30 }, (_, i) => `batch${b} line${i + 1} padding-padding`);
  for (let b = 1; b <= 5; b++) {
    // Wait for the batch to be fully logged, then rotate (except after the last batch).
    for (;;) {
      const got = await logLines(runtime, 'chatty');
      if (got.at(-1) === lines(b).at(-1)) break;
      await sleep(20);
    }
    if (b < 5) assert.equal(await runtime.rotateLogs('chatty'), true);
    await writeFile(join(shared, `go${b}`), '');
  }
  await runtime.wait('chatty');
  const files = (await readdir(join(dir, 'root', 'containers', 'chatty'))).filter((n) => n.startsWith('ctr.log')).sort();
  assert.deepEqual(files, ['ctr.log', 'ctr.log.1', 'ctr.log.2']);
  assert.deepEqual(await logLines(runtime, 'chatty'), [...lines(3), ...lines(4), ...lines(5)]);
});

test("the runtime's own timer rotates a growing log", async (t) => {
  const { runtime, rootfs, dir } = await setupRuntime(t, { logRotateIntervalMs: 20 });
  const shared = join(dir, 'shared');
  await mkdir(shared);
  await runtime.create({
    id: 'grower',
    rootfs,
    log: { maxSizeBytes: 1000, maxFiles: 2 },
    mounts: [{ type: 'bind', source: shared, target: '/shared' }],
    command: ['sh', '-c', 'i=0; while [ ! -e /shared/stop ]; do i=$((i+1)); echo "line $i"; sleep 0.01; done; echo last'],
  });
  await runtime.start('grower');
  const cdir = join(dir, 'root', 'containers', 'grower');
  while (!(await readdir(cdir)).includes('ctr.log.1')) await sleep(20);
  await writeFile(join(shared, 'stop'), '');
  await runtime.wait('grower');
  const files = (await readdir(cdir)).filter((n) => n.startsWith('ctr.log')).sort();
  assert.deepEqual(files, ['ctr.log', 'ctr.log.1']);
  const got = await logLines(runtime, 'grower');
  assert.equal(got.at(-1), 'last');
  // What is kept is a gap-free run of the newest lines.
  const numbers = got.slice(0, -1).map((l) => Number(l.split(' ')[1]));
  assert.ok(numbers.length > 0);
  numbers.forEach((n, i) => assert.equal(n, numbers[0] + i));
});
