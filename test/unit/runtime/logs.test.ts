import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineJoiner, parseK8sLine, parseTimestamp } from '../../../agent/runtime/logs/k8sfile.js';
import { readLogs } from '../../../agent/runtime/logs/reader.js';
import { formatLogEntry } from '../../../agent/runtime/runtime.js';

test('k8s-file lines parse; junk does not', () => {
  assert.deepEqual(parseK8sLine('2026-01-02T03:04:05.123456789+00:00 stdout F hello world'), {
    timestamp: '2026-01-02T03:04:05.123456789+00:00',
    stream: 'stdout',
    partial: false,
    content: 'hello world',
  });
  assert.equal(parseK8sLine('2026-01-02T03:04:05Z stderr P ')?.content, '');
  assert.equal(parseK8sLine('garbage'), undefined);
  assert.equal(parseK8sLine('ts stdin F x'), undefined);
});

test('timestamps keep milliseconds and honour the offset', () => {
  assert.equal(parseTimestamp('2026-01-02T03:04:05.123456789+00:00').toISOString(), '2026-01-02T03:04:05.123Z');
  assert.equal(parseTimestamp('2026-01-02T03:04:05+01:00').toISOString(), '2026-01-02T02:04:05.000Z');
});

test('partial pieces join per stream', () => {
  const j = new LineJoiner();
  assert.equal(j.push({ timestamp: 't1', stream: 'stdout', partial: true, content: 'ab' }), undefined);
  assert.deepEqual(j.push({ timestamp: 't2', stream: 'stderr', partial: false, content: 'err' }), { stream: 'stderr', timestamp: 't2', line: 'err' });
  assert.deepEqual(j.push({ timestamp: 't3', stream: 'stdout', partial: false, content: 'cd' }), { stream: 'stdout', timestamp: 't1', line: 'abcd' });
  j.push({ timestamp: 't4', stream: 'stdout', partial: true, content: 'tail' });
  assert.deepEqual(j.flush(), [{ stream: 'stdout', timestamp: 't4', line: 'tail' }]);
});

test('reading spans rotated files oldest first; tail counts across them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-logs-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const log = join(dir, 'ctr.log');
  const line = (n: number): string => `2026-01-01T00:00:0${n}.000000000+00:00 stdout F l${n}\n`;
  await writeFile(`${log}.2`, line(1) + line(2));
  await writeFile(`${log}.1`, line(3));
  await writeFile(log, line(4) + line(5));
  const read = async (o: object): Promise<string[]> => {
    const out: string[] = [];
    for await (const e of readLogs(log, { isFinished: async () => true, ...o })) out.push(formatLogEntry(e));
    return out;
  };
  assert.deepEqual(await read({}), ['l1', 'l2', 'l3', 'l4', 'l5']);
  assert.deepEqual(await read({ tail: 3 }), ['l3', 'l4', 'l5']);
  assert.deepEqual(await read({ tail: 0 }), []);
  assert.deepEqual(await read({ since: new Date('2026-01-01T00:00:04Z') }), ['l4', 'l5']);
  assert.deepEqual(await read({ follow: true }), ['l1', 'l2', 'l3', 'l4', 'l5']);
  const stamped: string[] = [];
  for await (const e of readLogs(log, { isFinished: async () => true, tail: 1 })) stamped.push(formatLogEntry(e, { timestamps: true }));
  assert.deepEqual(stamped, ['2026-01-01T00:00:05.000000000+00:00 l5']);
});
