// One subscription's work on a node: read the logs of this node's tasks that the selector
// matches, through the runtime's reader (k8s-file lines, rotated files included), and hand them
// to `send` in batches.
// - Without follow: each matching task's log in turn (tail and since applied per task), then done.
// - With follow: every matching task is followed at once; tasks that appear or get a container
//   later are picked up by a periodic scan (and read from their first line: tail is for the logs
//   that existed when the subscription came). It runs until the signal aborts.
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogMessage, LogSelector, LogSubscriptionOptions, SubscriptionMessage, Timestamp } from '../../proto/gen/logs.js';
import { readLogs } from '../runtime/logs/reader.js';
import type { LogEntry } from '../runtime/runtime.js';
import type { LocalTask, TaskLog, TaskLogSource } from './source.js';

export interface PublicationOptions {
  subscription: SubscriptionMessage;
  source: TaskLogSource;
  /** Delivers a batch; resolves when the transport can take more. */
  send: (messages: LogMessage[]) => Promise<void>;
  signal: AbortSignal;
  /** How often a followed log is checked for new lines. Default 100 ms. */
  pollMs?: number;
  /** With follow: how often the node's tasks are scanned for new matches. Default 1000 ms. */
  taskScanMs?: number;
  /** Most lines in one message. Default 200. */
  batchSize?: number;
}

/** The nanoseconds of the timestamp as conmon wrote it (entry.time keeps only milliseconds). */
export function entryTimestamp(entry: Pick<LogEntry, 'time' | 'timestamp'>): Timestamp {
  const ms = entry.time.getTime();
  if (Number.isNaN(ms)) return { seconds: 0, nanos: 0 };
  const fraction = /\.(\d+)/.exec(entry.timestamp)?.[1] ?? '';
  return { seconds: Math.floor(ms / 1000), nanos: Number(fraction.padEnd(9, '0').slice(0, 9)) };
}

export function toLogMessage(task: LocalTask, entry: LogEntry): LogMessage {
  return {
    context: { serviceId: task.serviceId, nodeId: task.nodeId, taskId: task.id, serviceName: '', taskSlot: 0, nodeName: '' },
    timestamp: entryTimestamp(entry),
    stream: entry.stream === 'stderr' ? 'STDERR' : 'STDOUT',
    line: entry.line,
  };
}

export function matches(selector: LogSelector | null | undefined, task: LocalTask): boolean {
  return Boolean(selector && (selector.taskIds.includes(task.id) || selector.serviceIds.includes(task.serviceId)));
}

function sinceDate(since: Timestamp | null | undefined): Date | undefined {
  if (!since || (since.seconds === 0 && since.nanos === 0)) return undefined;
  return new Date(since.seconds * 1000 + Math.floor(since.nanos / 1e6));
}

/** A filter for what the reader (millisecond precision) lets through: streams, and since to the nanosecond. */
function keeper(options: LogSubscriptionOptions): (m: LogMessage) => boolean {
  const since = options.since;
  const streams = new Set(options.streams);
  return (m) => {
    if (streams.size > 0 && !streams.has(m.stream)) return false;
    if (!since || !m.timestamp) return true;
    return m.timestamp.seconds > since.seconds || (m.timestamp.seconds === since.seconds && m.timestamp.nanos >= since.nanos);
  };
}

/**
 * Collects messages from concurrent readers and sends them in batches, one send at a time; a
 * reader waits once too much is queued, so a slow manager slows the reading, not the memory.
 */
class Outbox {
  private queue: LogMessage[] = [];
  private sending: Promise<void> | undefined;
  private failure: unknown;

  constructor(
    private readonly send: (messages: LogMessage[]) => Promise<void>,
    private readonly batchSize: number,
    /** A send failed: nothing more can be delivered. */
    private readonly onFailure: (err: unknown) => void,
  ) {}

  async push(message: LogMessage): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    this.queue.push(message);
    this.kick();
    if (this.queue.length >= this.batchSize * 4) await this.sending;
  }

  async flush(): Promise<void> {
    while (this.sending) await this.sending;
    if (this.failure !== undefined) throw this.failure;
  }

  private kick(): void {
    if (this.sending) return;
    // Sending starts on the next turn, so the lines a reader hands out in one go share a message.
    this.sending = new Promise<void>((resolve) => setImmediate(resolve))
      .then(() => this.drain())
      .catch((err: unknown) => {
        this.failure ??= err;
        this.queue = [];
        this.onFailure(err);
      })
      .finally(() => {
        this.sending = undefined;
        if (this.queue.length > 0) this.kick();
      });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) await this.send(this.queue.splice(0, this.batchSize));
  }
}

export async function publish(options: PublicationOptions): Promise<void> {
  // Aborted by the caller, or by this publication when one of its readers fails.
  const stop = new AbortController();
  const onAbort = () => stop.abort();
  options.signal.addEventListener('abort', onAbort, { once: true });
  if (options.signal.aborted) stop.abort();
  try {
    await run(options, stop);
  } finally {
    options.signal.removeEventListener('abort', onAbort);
  }
}

async function run(options: PublicationOptions, stop: AbortController): Promise<void> {
  const { subscription, source } = options;
  const signal = stop.signal;
  const subOptions: LogSubscriptionOptions = subscription.options ?? { follow: false, tail: -1, since: null, streams: [] };
  let failure: unknown;
  const fail = (err: unknown) => {
    failure ??= err;
    stop.abort();
  };
  const outbox = new Outbox(options.send, options.batchSize ?? 200, fail);
  const keep = keeper(subOptions);
  const pollMs = options.pollMs ?? 100;
  const since = sinceDate(subOptions.since);

  const read = async (task: LocalTask, log: TaskLog, follow: boolean, tail: number): Promise<void> => {
    const entries = readLogs(log.logPath, {
      follow,
      ...(tail >= 0 ? { tail } : {}),
      ...(since ? { since } : {}),
      pollMs,
      // An aborted subscription ends a follower at its next look, like an exited container.
      isFinished: async () => signal.aborted || (await log.isFinished()),
    });
    for await (const entry of entries) {
      if (signal.aborted) break;
      const message = toLogMessage(task, entry);
      if (keep(message)) await outbox.push(message);
    }
  };
  const matching = () =>
    source
      .tasks()
      .filter((t) => matches(subscription.selector, t))
      .sort((a, b) => a.serviceId.localeCompare(b.serviceId) || a.slot - b.slot || a.id.localeCompare(b.id));

  if (!subOptions.follow) {
    for (const task of matching()) {
      if (signal.aborted) break;
      const log = await source.log(task.id);
      if (log) await read(task, log, false, subOptions.tail);
    }
    await outbox.flush();
    return;
  }

  const started = new Set<string>();
  const readers: Array<Promise<void>> = [];
  let firstScan = true;
  while (!signal.aborted) {
    for (const task of matching()) {
      if (started.has(task.id)) continue;
      const log = await source.log(task.id);
      if (!log) continue; // no container yet: the next scan looks again
      started.add(task.id);
      readers.push(read(task, log, true, firstScan ? subOptions.tail : -1).catch(fail));
    }
    firstScan = false;
    await sleep(options.taskScanMs ?? 1000, undefined, { signal }).catch(() => undefined);
  }
  // Only an abort ends a follow: what is still queued has no one to go to.
  await Promise.all(readers);
  if (failure !== undefined) throw failure;
}
