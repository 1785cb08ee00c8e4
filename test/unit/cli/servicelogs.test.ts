// `shoal service logs`: Docker's flags (--tail, --since in all its forms, -f, -t, --raw,
// --no-task-ids, --no-trunc, --no-resolve) and Docker's line format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from '../../../util/flags.js';
import { runCommand, type Command } from '../../../util/command.js';
import {
  formatLogLine,
  formatOptions,
  formatTimestamp,
  incompleteWarning,
  logsRequest,
  parseGoDuration,
  parseSince,
  parseTail,
  serviceLogsCommand,
  serviceLogsFlags,
} from '../../../cli/commands/servicelogs.js';
import type { LogMessage, LogTarget } from '../../../proto/gen/logs.js';

const NOW = new Date(Date.UTC(2024, 4, 1, 12, 0, 0, 500));

function flags(...argv: string[]) {
  return parseFlags(argv, serviceLogsFlags);
}

test('flags parse like Docker: -f, -t, -n/--tail, --since, and the formatting switches', () => {
  const p = flags('web', '-ft', '-n', '5', '--since', '10m', '--no-trunc', '--no-task-ids', '--raw', '--no-resolve');
  assert.deepEqual(p.args, ['web']);
  const req = logsRequest('web', p.flags, NOW);
  assert.equal(req.target, 'web');
  assert.equal(req.options?.follow, true);
  assert.equal(req.options?.tail, 5);
  assert.deepEqual(req.options?.since, { seconds: Math.floor(NOW.getTime() / 1000) - 600, nanos: 500_000_000 });
  assert.deepEqual(formatOptions(p.flags), { timestamps: true, raw: true, noResolve: true, noTaskIds: true, noTrunc: true });

  const defaults = logsRequest('web', flags('web').flags, NOW);
  assert.deepEqual(defaults.options, { follow: false, tail: -1, since: null, streams: [] });
  assert.equal(logsRequest('web', flags('--tail=0', 'web').flags, NOW).options?.tail, 0);
});

test('--tail: all, a count; a negative or non-integer value means all, as in Docker', () => {
  assert.equal(parseTail('all'), -1);
  assert.equal(parseTail('0'), 0);
  assert.equal(parseTail('20'), 20);
  assert.equal(parseTail('-3'), -1);
  assert.equal(parseTail('ten'), -1);
});

test('--since: Go durations before now', () => {
  assert.equal(parseGoDuration('42m'), 42 * 60_000);
  assert.equal(parseGoDuration('1h30m'), 90 * 60_000);
  assert.equal(parseGoDuration('1.5s'), 1500);
  assert.equal(parseGoDuration('250ms'), 250);
  assert.equal(parseGoDuration('42'), undefined);
  assert.equal(parseGoDuration('m'), undefined);
  assert.deepEqual(parseSince('1h', NOW), { seconds: Math.floor(NOW.getTime() / 1000) - 3600, nanos: 500_000_000 });
});

test('--since: RFC 3339 times with a zone, to the nanosecond', () => {
  assert.deepEqual(parseSince('2013-01-02T13:23:37Z', NOW), { seconds: Date.UTC(2013, 0, 2, 13, 23, 37) / 1000, nanos: 0 });
  assert.deepEqual(parseSince('2013-01-02T13:23:37.000000001Z', NOW), { seconds: Date.UTC(2013, 0, 2, 13, 23, 37) / 1000, nanos: 1 });
  assert.deepEqual(parseSince('2013-01-02T13:23:37.5+02:00', NOW), { seconds: Date.UTC(2013, 0, 2, 11, 23, 37) / 1000, nanos: 500_000_000 });
  assert.deepEqual(parseSince('2013-01-02T13:23-01:30', NOW), { seconds: Date.UTC(2013, 0, 2, 14, 53, 0) / 1000, nanos: 0 });
});

test('--since: times without a zone are local; a date alone is its midnight; unix seconds[.nanos]', () => {
  assert.deepEqual(parseSince('2013-01-02T13:23:37', NOW), { seconds: new Date(2013, 0, 2, 13, 23, 37).getTime() / 1000, nanos: 0 });
  assert.deepEqual(parseSince('2013-01-02', NOW), { seconds: new Date(2013, 0, 2).getTime() / 1000, nanos: 0 });
  assert.deepEqual(parseSince('1357132417', NOW), { seconds: 1357132417, nanos: 0 });
  assert.deepEqual(parseSince('1357132417.25', NOW), { seconds: 1357132417, nanos: 250_000_000 });
});

test('--since: anything else is refused, naming the value', () => {
  for (const bad of ['yesterday', '2013-13-02', '2013-01-02T25', '12:00', '1.2.3']) {
    assert.throws(() => parseSince(bad, NOW), (e: Error) => e.message.includes(`"${bad}"`) && /duration/.test(e.message), bad);
  }
});

const target: LogTarget = { serviceId: 'svcid0000000000000000000', serviceName: 'web', taskId: '', slotDigits: 2 };

function message(slot: number, line: string, stream: 'STDOUT' | 'STDERR' = 'STDOUT'): LogMessage {
  return {
    context: { serviceId: 'svcid0000000000000000000', nodeId: 'nodeid000000000000000000', taskId: 'abcdef1234567890abcdefghi', serviceName: 'web', taskSlot: slot, nodeName: 'h2' },
    timestamp: { seconds: Date.UTC(2024, 4, 1, 10, 0, 0) / 1000, nanos: 1_230 },
    stream,
    line,
  };
}

test("lines print as Docker's: service.slot.task@node, padded to the widest slot, then '    | '", () => {
  const opts = formatOptions(flags().flags);
  assert.equal(formatLogLine(message(1, 'hello'), target, opts), 'web.1.abcdef123456@h2     | hello\n');
  assert.equal(formatLogLine(message(10, 'hello'), target, opts), 'web.10.abcdef123456@h2    | hello\n');
  assert.equal(formatLogLine(message(1, 'x'), target, formatOptions(flags('--no-task-ids').flags)), 'web.1@h2     | x\n');
  assert.equal(formatLogLine(message(1, 'x'), target, formatOptions(flags('--no-trunc').flags)), 'web.1.abcdef1234567890abcdefghi@h2     | x\n');
  assert.equal(formatLogLine(message(1, 'x'), target, formatOptions(flags('--no-resolve').flags)), 'svcid0000000000000000000.1.abcdef123456@nodeid000000000000000000     | x\n');
});

test('-t puts the UTC timestamp with nine fraction digits first; --raw drops the task', () => {
  assert.equal(formatTimestamp({ seconds: Date.UTC(2024, 4, 1, 10, 0, 0) / 1000, nanos: 1_230 }), '2024-05-01T10:00:00.000001230Z');
  assert.equal(formatLogLine(message(1, 'hi'), target, formatOptions(flags('-t').flags)), '2024-05-01T10:00:00.000001230Z web.1.abcdef123456@h2     | hi\n');
  assert.equal(formatLogLine(message(1, 'hi'), target, formatOptions(flags('--raw').flags)), 'hi\n');
  assert.equal(formatLogLine(message(1, 'hi'), target, formatOptions(flags('--raw', '-t').flags)), '2024-05-01T10:00:00.000001230Z hi\n');
});

test('an incomplete stream is named node by node', () => {
  assert.equal(
    incompleteWarning([
      { nodeId: 'n2id', nodeName: 'h2', reason: 'is not available' },
      { nodeId: 'n3id', nodeName: '', reason: 'disconnected' },
    ]),
    'warning: incomplete log stream. some logs could not be retrieved for the following reasons: node h2 (n2id) is not available, node n3id disconnected\n',
  );
});

test('the command takes exactly one SERVICE|TASK and documents its flags', async () => {
  const root: Command = { name: 'shoal', summary: 'test', subcommands: [{ name: 'service', summary: 'services', subcommands: [serviceLogsCommand] }] };
  const chunks: string[] = [];
  const sink = { write: (s: string) => chunks.push(s) > 0 } as unknown as NodeJS.WritableStream;
  assert.equal(await runCommand(root, ['service', 'logs'], { out: sink, err: sink }), 2);
  assert.match(chunks.join(''), /"shoal service logs" requires exactly 1 argument/);
  chunks.length = 0;
  assert.equal(await runCommand(root, ['service', 'logs', '--help'], { out: sink, err: sink }), 0);
  const help = chunks.join('');
  for (const f of ['-f, --follow', '-n, --tail string', '--since string', '-t, --timestamps', '--no-task-ids', '--no-trunc', '--raw']) assert.ok(help.includes(f), f);
  assert.ok(help.includes('Usage:  shoal service logs [OPTIONS] SERVICE|TASK'), help);
});
