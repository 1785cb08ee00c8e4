// `shoal service logs [OPTIONS] SERVICE|TASK`, Docker's command: the same flags, and lines
// printed the way `docker service logs` prints them, because people grep them:
//   web.1.abcdef123456@h2    | hello              (stdout lines on stdout, stderr on stderr)
//   2024-05-01T10:00:00.123456789Z web.1.abcdef123456@h2    | hello        (-t)
// The daemon's Logs service (local socket) streams the lines the leader's log broker gathers;
// nodes that could not be read are reported at the end as an incomplete log stream (exit 1).
import * as grpc from '@grpc/grpc-js';
import type { Command, CommandContext } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import type { FlagValues } from '../../util/flags.js';
import { LogsClient, type LogMessage, type LogTarget, type SubscribeLogsMessage, type SubscribeLogsRequest, type Timestamp, type UnavailableNode } from '../../proto/gen/logs.js';
import { hostFrom } from '../client.js';

// ---- flags ------------------------------------------------------------------------------------

/** Docker's --tail: "all", or a number of lines; a negative or non-integer value means all. */
export function parseTail(value: string): number {
  return /^\d+$/.test(value.trim()) ? Number(value.trim()) : -1;
}

const DURATION_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("42m", "1h30m", "1.5s"), in milliseconds; undefined when it is not one. */
export function parseGoDuration(value: string): number | undefined {
  const m = /^([-+]?)((?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|ms|s|m|h))+)$/.exec(value);
  if (!m) return undefined;
  let ms = 0;
  for (const part of m[2]!.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|ms|s|m|h)/g)) ms += Number(part[1]) * DURATION_UNIT_MS[part[2]!]!;
  return m[1] === '-' ? -ms : ms;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

function fromMillisAndFraction(ms: number, fraction: string | undefined): Timestamp {
  const nanos = Number((fraction ?? '').padEnd(9, '0').slice(0, 9));
  return { seconds: Math.floor(ms / 1000), nanos };
}

/**
 * Docker's --since: a duration before now ("42m"), a date or time (RFC 3339, optionally without
 * seconds, fraction or zone; no zone means the local one; "2006-01-02" alone is midnight), or a
 * unix timestamp with optional nanoseconds ("1357132417.000000001").
 */
export function parseSince(value: string, now: Date): Timestamp {
  const v = value.trim();
  const duration = v === '0' ? undefined : parseGoDuration(v);
  if (duration !== undefined) {
    const ms = now.getTime() - duration;
    return { seconds: Math.floor(ms / 1000), nanos: Math.round((ms - Math.floor(ms / 1000) * 1000) * 1e6) };
  }
  const date = /^(\d{4})-(\d\d)-(\d\d)(?:T(\d\d)(?::(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?)?)?(Z|z|[+-]\d\d:\d\d)?$/.exec(v);
  if (date) {
    const [, y, mo, d, h = '0', mi = '0', s = '0', fraction, zone] = date;
    const fields = [Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)] as const;
    let ms: number;
    if (zone === undefined) ms = new Date(...fields).getTime();
    else {
      const offsetMin = /^[zZ]$/.test(zone) ? 0 : (zone.startsWith('-') ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
      ms = Date.UTC(...fields) - offsetMin * 60_000;
    }
    // Date() rolls 25:00 over into the next day: only a real date and time count.
    const real = new Date(Date.UTC(...fields));
    const valid = real.getUTCMonth() === fields[1] && real.getUTCDate() === fields[2] && fields[3] < 24 && fields[4] < 60 && fields[5] < 60;
    if (valid && !Number.isNaN(ms)) return fromMillisAndFraction(ms, fraction);
  }
  const unix = /^(\d+)(?:\.(\d{1,9}))?$/.exec(v);
  if (unix) return { seconds: Number(unix[1]), nanos: Number((unix[2] ?? '').padEnd(9, '0')) };
  throw new UserError(`invalid --since value "${value}": give a time (2013-01-02T13:23:37Z or 2013-01-02), a unix timestamp (1357132417) or a duration before now (42m)`);
}

export const serviceLogsFlags = [
  { name: 'follow', short: 'f', kind: 'bool', description: 'Follow log output' },
  { name: 'no-resolve', kind: 'bool', description: 'Do not map IDs to Names in output' },
  { name: 'no-task-ids', kind: 'bool', description: 'Do not include task IDs in output' },
  { name: 'no-trunc', kind: 'bool', description: 'Do not truncate output' },
  { name: 'raw', kind: 'bool', description: 'Do not neatly format logs' },
  { name: 'since', kind: 'string', description: 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
  { name: 'tail', short: 'n', kind: 'string', default: 'all', description: 'Number of lines to show from the end of the logs' },
  { name: 'timestamps', short: 't', kind: 'bool', description: 'Show timestamps' },
] as const satisfies Command['flags'];

export interface LogFormatOptions {
  timestamps: boolean;
  raw: boolean;
  noResolve: boolean;
  noTaskIds: boolean;
  noTrunc: boolean;
}

export function formatOptions(flags: FlagValues): LogFormatOptions {
  return { timestamps: Boolean(flags.timestamps), raw: Boolean(flags.raw), noResolve: Boolean(flags['no-resolve']), noTaskIds: Boolean(flags['no-task-ids']), noTrunc: Boolean(flags['no-trunc']) };
}

/** The daemon request for `service logs TARGET` with these flags. */
export function logsRequest(target: string, flags: FlagValues, now: Date): SubscribeLogsRequest {
  const since = typeof flags.since === 'string' && flags.since !== '' ? parseSince(flags.since, now) : null;
  return { target, options: { follow: Boolean(flags.follow), tail: parseTail(String(flags.tail ?? 'all')), since, streams: [] } };
}

// ---- output -----------------------------------------------------------------------------------

/** RFC 3339 in UTC with all nine digits of the fraction, so timestamps line up (Docker's RFC3339NanoFixed). */
export function formatTimestamp(ts: Timestamp | null | undefined): string {
  const d = new Date((ts?.seconds ?? 0) * 1000);
  const date = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  return `${date}T${time}.${pad(ts?.nanos ?? 0, 9)}Z`;
}

const digits = (n: number) => String(n).length;

/** `service.slot.task@node`, padded to the target's widest slot like Docker's. */
export function taskPrefix(message: LogMessage, target: LogTarget | null, opts: LogFormatOptions): string {
  const c = message.context;
  const service = (opts.noResolve ? c?.serviceId : c?.serviceName || c?.serviceId) ?? '';
  const node = (opts.noResolve ? c?.nodeId : c?.nodeName || c?.nodeId) ?? '';
  const slot = c?.taskSlot ?? 0;
  const taskId = c?.taskId ?? '';
  let name = `${service}.${slot}`;
  if (!opts.noTaskIds) name += `.${opts.noTrunc ? taskId : taskId.slice(0, 12)}`;
  const padding = Math.max(0, (target?.slotDigits ?? 1) - digits(slot));
  return `${name}@${node}${' '.repeat(padding)}`;
}

export function formatLogLine(message: LogMessage, target: LogTarget | null, opts: LogFormatOptions): string {
  const ts = opts.timestamps ? `${formatTimestamp(message.timestamp)} ` : '';
  if (opts.raw) return `${ts}${message.line}\n`;
  return `${ts}${taskPrefix(message, target, opts)}    | ${message.line}\n`;
}

function nodeLabel(u: UnavailableNode): string {
  return u.nodeName ? `${u.nodeName} (${u.nodeId})` : u.nodeId;
}

/** Docker's warning for a stream that misses some nodes' logs. */
export function incompleteWarning(unavailable: UnavailableNode[]): string {
  const reasons = unavailable.map((u) => `node ${nodeLabel(u)} ${u.reason}`).join(', ');
  return `warning: incomplete log stream. some logs could not be retrieved for the following reasons: ${reasons}\n`;
}

// ---- the command ------------------------------------------------------------------------------

function userError(e: grpc.ServiceError, target: string): UserError {
  if (e.code === grpc.status.UNAVAILABLE && /connect|No connection/i.test(e.details)) return new UserError(`Cannot connect to the shoal daemon at ${target}. Is shoald running?`);
  return new UserError(e.details || e.message);
}

/** Streams the logs to out/err; resolves with the exit code. An abort ends a follow cleanly (exit 0). */
export async function runServiceLogs(ctx: Pick<CommandContext, 'args' | 'flags' | 'global' | 'out' | 'err'>, options: { now?: Date; signal?: AbortSignal } = {}): Promise<number> {
  const request = logsRequest(ctx.args[0]!, ctx.flags, options.now ?? new Date());
  const follow = request.options!.follow;
  const opts = formatOptions(ctx.flags);
  const host = hostFrom(ctx.global);
  const client = new LogsClient(host, grpc.credentials.createInsecure());
  let target: LogTarget | null = null;
  const unavailable: UnavailableNode[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      const stream = client.subscribeLogs(request);
      const abort = () => {
        stream.cancel();
        resolve();
      };
      if (options.signal?.aborted) abort();
      else options.signal?.addEventListener('abort', abort, { once: true });
      stream.on('data', (m: SubscribeLogsMessage) => {
        if (m.target) target = m.target;
        let blocked: NodeJS.WritableStream | undefined;
        for (const msg of m.messages) {
          const w = msg.stream === 'STDERR' ? ctx.err : ctx.out;
          if (!w.write(formatLogLine(msg, target, opts))) blocked = w;
        }
        for (const u of m.unavailable) {
          unavailable.push(u);
          if (follow) ctx.err.write(`warning: node ${nodeLabel(u)} ${u.reason}: its logs are missing from this stream\n`);
        }
        // A slow reader (a pager, a pipe) holds the stream back instead of buffering everything.
        if (blocked) {
          stream.pause();
          blocked.once('drain', () => stream.resume());
        }
      });
      stream.on('end', resolve);
      stream.on('error', (e: grpc.ServiceError) => (options.signal?.aborted ? resolve() : reject(userError(e, host))));
    });
  } finally {
    client.close();
  }
  if (unavailable.length > 0 && !follow) {
    ctx.err.write(incompleteWarning(unavailable));
    return 1;
  }
  return 0;
}

export const serviceLogsCommand: Command = {
  name: 'logs',
  summary: 'Fetch the logs of a service or task',
  usage: '[OPTIONS] SERVICE|TASK',
  minArgs: 1,
  maxArgs: 1,
  flags: [...serviceLogsFlags],
  run: (ctx) => runServiceLogs(ctx),
};
