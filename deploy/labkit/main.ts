#!/usr/bin/env node
// Entry point of deploy/lab. See cli.ts for the commands and lab.ts for what they do.
import { runCommand } from '../../util/command.js';
import { root } from './cli.js';

const code = await runCommand(root, process.argv.slice(2), { out: process.stdout, err: process.stderr });
process.exitCode = code;
