#!/usr/bin/env node
// `shoal`: the client. Talks to the local shoald over its unix socket, or to a remote manager
// over mutual TLS (-H / SHOAL_HOST), like `docker` and DOCKER_HOST.
import { runCommand } from '../util/command.js';
import { root } from './root.js';

const code = await runCommand(root, process.argv.slice(2), { out: process.stdout, err: process.stderr });
process.exitCode = code;
