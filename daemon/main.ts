#!/usr/bin/env node
// `shoald`: the daemon. Every shoald runs the agent; one whose node is a manager also runs the
// manager. The cluster issue fills in start-up; this entry point owns flags, --version and --help.
import { runCommand, helpText, type Command } from '../util/command.js';
import { version } from '../util/version.js';

const root: Command = {
  name: 'shoald',
  summary: 'The shoal daemon: agent on every node, manager on manager nodes',
  usage: '[OPTIONS]',
  maxArgs: 0,
  flags: [
    { name: 'version', short: 'v', kind: 'bool', description: 'Print version information and quit' },
    { name: 'data-root', kind: 'string', default: '/var/lib/shoal', description: 'Root directory of persistent state' },
    { name: 'host', short: 'H', kind: 'string', default: 'unix:///run/shoal/shoal.sock', description: 'Local API socket' },
  ],
  run: ({ flags, out }) => {
    if (flags.version) {
      out.write(`shoald version ${version}\n`);
      return 0;
    }
    out.write(helpText(root, ['shoald']));
    return 0;
  },
};

process.exitCode = await runCommand(root, process.argv.slice(2), { out: process.stdout, err: process.stderr });
