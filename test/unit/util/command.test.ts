import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { runCommand, UserError, type Command } from '../../../util/command.js';

function capture(): { out: PassThrough; err: PassThrough; text: () => { out: string; err: string } } {
  const out = new PassThrough();
  const err = new PassThrough();
  const o: Buffer[] = [];
  const e: Buffer[] = [];
  out.on('data', (b: Buffer) => o.push(b));
  err.on('data', (b: Buffer) => e.push(b));
  return { out, err, text: () => ({ out: Buffer.concat(o).toString(), err: Buffer.concat(e).toString() }) };
}

const seen: string[][] = [];
const tree: Command = {
  name: 'shoal',
  summary: 'root',
  flags: [{ name: 'host', short: 'H', kind: 'string', description: 'daemon' }],
  subcommands: [
    {
      name: 'node',
      summary: 'Manage nodes',
      subcommands: [
        {
          name: 'ls',
          aliases: ['list'],
          summary: 'List nodes',
          maxArgs: 0,
          flags: [{ name: 'quiet', short: 'q', kind: 'bool', description: 'Only IDs' }],
          run: ({ flags, global }) => {
            seen.push(['ls', String(flags.quiet), String(global.host)]);
          },
        },
        {
          name: 'rm',
          summary: 'Remove nodes',
          usage: 'NODE [NODE...]',
          minArgs: 1,
          run: ({ args }) => {
            throw new UserError(`node ${args[0]} not found`);
          },
        },
      ],
    },
  ],
};

test('walks the tree, passing root flags down as global', async () => {
  const io = capture();
  const code = await runCommand(tree, ['-H', 'unix:///x.sock', 'node', 'list', '-q'], io);
  assert.equal(code, 0);
  assert.deepEqual(seen.at(-1), ['ls', 'true', 'unix:///x.sock']);
});

test('help is generated from the specs at every level', async () => {
  const io = capture();
  assert.equal(await runCommand(tree, ['node', '--help'], io), 0);
  const { out } = io.text();
  assert.match(out, /Usage:\s+shoal node COMMAND/);
  assert.match(out, /ls\s+List nodes/);
  const io2 = capture();
  assert.equal(await runCommand(tree, ['node', 'ls', '--help'], io2), 0);
  assert.match(io2.text().out, /-q, --quiet\s+Only IDs/);
});

test('user errors print one line and exit non-zero, no stack', async () => {
  const io = capture();
  assert.equal(await runCommand(tree, ['node', 'rm', 'abc'], io), 1);
  assert.equal(io.text().err, 'Error: node abc not found\n');
  const io2 = capture();
  assert.equal(await runCommand(tree, ['node', 'rm'], io2), 2);
  assert.match(io2.text().err, /requires at least 1 argument/);
  const io3 = capture();
  assert.equal(await runCommand(tree, ['nodes'], io3), 2);
  assert.match(io3.text().err, /'nodes' is not a shoal command/);
});
