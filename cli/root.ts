// The root of the `shoal` command tree. Kept apart from main.ts so tools (the CLI reference
// generator, tests) can walk the tree without running anything.
import { helpText, type Command } from '../util/command.js';
import { version } from '../util/version.js';
import { swarmCommand } from './commands/swarm.js';
import { configCommand } from './commands/config.js';
import { nodeCommand } from './commands/node.js';
import { infoCommand } from './commands/info.js';
import { serviceCommand } from './commands/service.js';
import { networkCommand } from './commands/network.js';
import { imageCommand } from './commands/image.js';
import { execCommand } from './commands/exec.js';
import { stackCommand } from './commands/stack.js';

export const root: Command = {
  name: 'shoal',
  summary: 'A Docker-Swarm-style cluster orchestrator',
  usage: '[OPTIONS] COMMAND',
  flags: [
    { name: 'host', short: 'H', kind: 'string', description: 'Daemon socket to connect to (default $SHOAL_HOST or unix:///run/shoal/shoal.sock)' },
    { name: 'version', short: 'v', kind: 'bool', description: 'Print version information and quit' },
  ],
  subcommands: [
    configCommand,
    execCommand,
    imageCommand,
    infoCommand,
    networkCommand,
    nodeCommand,
    serviceCommand,
    stackCommand,
    swarmCommand,
    {
      name: 'version',
      summary: 'Show the shoal version information',
      maxArgs: 0,
      run: ({ out }) => {
        out.write(`Client:\n Version:  ${version}\n Node.js:  ${process.version}\n OS/Arch:  ${process.platform}/${process.arch}\n`);
      },
    },
  ],
  run: ({ global, out }) => {
    if (global.version) {
      out.write(`shoal version ${version}\n`);
      return 0;
    }
    out.write(helpText(root, ['shoal']));
    return 0;
  },
};

