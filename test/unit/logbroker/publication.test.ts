// The agent's side of one subscription: which of the node's tasks it reads, tail/since/streams
// applied per task, batching, and a follow that picks up new lines and tasks that start later.
// Log files are real k8s-file logs in a temp dir; the node's task list is a plain array.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { entryTimestamp, publish } from '../../../agent/logs/publication.js';
import type { LocalTask, TaskLogSource } from '../../../agent/logs/source.js';
import type { LogMessage, LogSubscriptionOptions, SubscriptionMessage } from '../../../proto/gen/logs.js';
import { waitFor } from '../../support/wait.js';

const k8s = (second: number, stream: 'stdout' | 'stderr', text: string) => `2024-05-01T10:00:0${second}.000000123+00:00 ${stream} F ${text}\n`;

async function node(t: test.TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-pub-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const tasks: LocalTask[] = [];
  const logs = new Map<string, string>();
  const source: TaskLogSource = {
    tasks: () => [...tasks],
    log: async (id) => (logs.has(id) ? { logPath: logs.get(id)!, isFinished: async () => false } : undefined),
  };
  const addTask = async (id: string, serviceId: string, slot: number, content?: string) => {
    tasks.push({ id, serviceId, slot, nodeId: 'node1' });
    if (content !== undefined) {
      const path = join(dir, `${id}.log`);
      await writeFile(path, content);
      logs.set(id, path);
    }
  };
  return { source, addTask, logs };
}

function subscription(options: Partial<LogSubscriptionOptions>): SubscriptionMessage {
  return { id: 'sub1', selector: { serviceIds: ['svcA'], taskIds: [] }, options: { follow: false, tail: -1, since: null, streams: [], ...options }, close: false };
}

const text = (batches: LogMessage[][]) => batches.flat().map((m) => m.line);

test('timestamps keep the nanoseconds conmon wrote', () => {
  const at = new Date(Date.UTC(2024, 4, 1, 10, 0, 1));
  assert.deepEqual(entryTimestamp({ time: at, timestamp: '2024-05-01T10:00:01.000000123+00:00' }), { seconds: at.getTime() / 1000, nanos: 123 });
  assert.deepEqual(entryTimestamp({ time: at, timestamp: '2024-05-01T10:00:01Z' }), { seconds: at.getTime() / 1000, nanos: 0 });
  assert.deepEqual(entryTimestamp({ time: new Date(NaN), timestamp: 'garbage' }), { seconds: 0, nanos: 0 });
});

test('without follow: the selected tasks that have a container, in slot order, filtered and batched', async (t) => {
  const { source, addTask } = await node(t);
  await addTask('a2', 'svcA', 2, k8s(1, 'stdout', 'a2 only'));
  await addTask('a1', 'svcA', 1, k8s(1, 'stdout', 'a1 first') + k8s(2, 'stderr', 'a1 err') + k8s(3, 'stdout', 'a1 last'));
  await addTask('a3', 'svcA', 3); // no container yet
  await addTask('b1', 'svcB', 1, k8s(1, 'stdout', 'not selected'));
  const run = async (options: Partial<LogSubscriptionOptions>, batchSize = 200) => {
    const batches: LogMessage[][] = [];
    await publish({ subscription: subscription(options), source, send: async (m) => void batches.push(m), signal: new AbortController().signal, batchSize });
    return batches;
  };

  const all = await run({}, 2);
  assert.ok(all.every((b) => b.length <= 2) && all.some((b) => b.length === 2), `batches of at most 2: ${JSON.stringify(all.map((b) => b.length))}`);
  assert.deepEqual(text(all), ['a1 first', 'a1 err', 'a1 last', 'a2 only']);
  assert.deepEqual(all[0]![1]!.context, { serviceId: 'svcA', nodeId: 'node1', taskId: 'a1', serviceName: '', taskSlot: 0, nodeName: '' });
  assert.equal(all[0]![1]!.stream, 'STDERR');

  assert.deepEqual(text(await run({ tail: 1 })), ['a1 last', 'a2 only']);
  assert.deepEqual(text(await run({ tail: 0 })), []);
  assert.deepEqual(text(await run({ streams: ['STDERR'] })), ['a1 err']);
  const second = Date.UTC(2024, 4, 1, 10, 0, 2) / 1000;
  assert.deepEqual(text(await run({ since: { seconds: second, nanos: 123 } })), ['a1 err', 'a1 last']);
  assert.deepEqual(text(await run({ since: { seconds: second, nanos: 124 } })), ['a1 last']);
});

test('follow: tail for what exists, then new lines, and tasks that get a container later from their first line', async (t) => {
  const { source, addTask, logs } = await node(t);
  await addTask('a1', 'svcA', 1, k8s(1, 'stdout', 'old') + k8s(2, 'stdout', 'recent'));
  await addTask('a2', 'svcA', 2); // container comes later
  const seen: string[] = [];
  const abort = new AbortController();
  const done = publish({
    subscription: subscription({ follow: true, tail: 1 }),
    source,
    send: async (m) => void seen.push(...m.map((x) => `${x.context?.taskId} ${x.line}`)),
    signal: abort.signal,
    pollMs: 10,
    taskScanMs: 20,
  });
  await waitFor('the tail', () => seen.includes('a1 recent'));
  await appendFile(logs.get('a1')!, k8s(3, 'stdout', 'new'));
  await waitFor('a new line', () => seen.includes('a1 new'));
  const later = join(logs.get('a1')!, '..', 'a2.log');
  await writeFile(later, k8s(4, 'stdout', 'one') + k8s(5, 'stdout', 'two'));
  logs.set('a2', later);
  await addTask('a3', 'svcB', 1, k8s(4, 'stdout', 'never'));
  await waitFor('the late task', () => seen.includes('a2 two'));
  abort.abort();
  await done;
  assert.deepEqual(seen, ['a1 recent', 'a1 new', 'a2 one', 'a2 two']);
});

test('follow: a failing send ends the publication with its error', async (t) => {
  const { source, addTask } = await node(t);
  await addTask('a1', 'svcA', 1, k8s(1, 'stdout', 'x'));
  await assert.rejects(
    publish({
      subscription: subscription({ follow: true }),
      source,
      send: () => Promise.reject(new Error('stream broken')),
      signal: new AbortController().signal,
      pollMs: 10,
      taskScanMs: 20,
    }),
    /stream broken/,
  );
});
