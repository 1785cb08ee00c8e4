#!/usr/bin/env node
// `shoald`: the daemon. Every shoald runs the agent; one whose node is a manager also runs the
// manager. This entry point owns flags, --version, --help and signals.
import { runCommand, type Command } from '../util/command.js';
import { version } from '../util/version.js';
import { createLogger } from '../util/log.js';
import { configFromFlags, daemonFlags } from './config.js';
import { Daemon } from './daemon.js';

const root: Command = {
  name: 'shoald',
  summary: 'The shoal daemon: agent on every node, manager on manager nodes',
  usage: '[OPTIONS]',
  maxArgs: 0,
  flags: daemonFlags,
  run: async ({ flags, out }) => {
    if (flags.version) {
      out.write(`shoald version ${version}\n`);
      return 0;
    }
    const config = configFromFlags(flags);
    const log = createLogger('shoald', { level: config.logLevel });
    const daemon = new Daemon(config, log);
    await daemon.start();
    await new Promise<void>((resolve) => {
      let stopping = false;
      const onSignal = (sig: NodeJS.Signals) => {
        if (stopping) return;
        stopping = true;
        log.info('shutting down', { signal: sig });
        daemon.stop().then(resolve, (e: unknown) => {
          log.error('shutdown failed', { error: e as Error });
          resolve();
        });
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    return 0;
  },
};

process.exitCode = await runCommand(root, process.argv.slice(2), { out: process.stdout, err: process.stderr });
