// `deploy/lab`: the command tree, parsed and documented by util/command like the shoal CLI.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { UsageError, type FlagSpec, type FlagValues } from '../../util/flags.js';
import type { Command, CommandContext } from '../../util/command.js';
import { Lab } from './lab.js';
import { DEFAULT_LAB, DEFAULT_SUBNET } from './layout.js';
import { registryHost, testImageReference } from './registry.js';
import { cli as shoalCli, formCluster, killDaemon, startDaemon } from './cluster.js';

const nameFlag: FlagSpec = {
  name: 'name',
  kind: 'string',
  valueName: 'LAB',
  description: `Lab to act on (default $SHOAL_LAB or "${DEFAULT_LAB}"); its namespaces are named LAB-h1, LAB-underlay, ...`,
};

/** `--name` may come before the subcommand or after it; then $SHOAL_LAB; then the default. */
export function labName(flags: FlagValues, global: FlagValues, env: NodeJS.ProcessEnv = process.env): string {
  const given = flags.name ?? global.name ?? env.SHOAL_LAB;
  return typeof given === 'string' && given !== '' ? given : DEFAULT_LAB;
}

function openLab(ctx: CommandContext): Lab {
  return new Lab(labName(ctx.flags, ctx.global), (line) => ctx.err.write(line + '\n'));
}

const up: Command = {
  name: 'up',
  summary: 'Build the lab: hosts h1..hN on a sealed underlay bridge',
  usage: '--hosts N [--managers M] [--registry] [--subnet CIDR] [--name LAB]',
  flags: [
    { name: 'hosts', kind: 'int', valueName: 'N', description: 'Number of hosts' },
    { name: 'managers', kind: 'int', valueName: 'M', description: 'Also run shoald on every host and form a cluster: h1..hM managers, the rest workers' },
    { name: 'registry', kind: 'bool', description: 'Also a registry host (the last usable address, port 5000) holding the test image as shoal/busybox' },
    { name: 'subnet', kind: 'string', valueName: 'CIDR', description: 'Underlay subnet; host hI gets its I-th address, the last usable one is kept for a registry', default: DEFAULT_SUBNET },
    nameFlag,
  ],
  maxArgs: 0,
  run: async (ctx) => {
    const hosts = ctx.flags.hosts;
    if (typeof hosts !== 'number') throw new UsageError(`"lab up" requires --hosts N.\nSee 'lab up --help'.`);
    const lab = openLab(ctx);
    const { layout } = await lab.up({ hosts, subnet: ctx.flags.subnet as string, registry: ctx.flags.registry === true });
    if (typeof ctx.flags.managers === 'number') await formCluster(lab, ctx.flags.managers, (line) => ctx.err.write(line + '\n'));
    for (const h of layout.hosts) ctx.out.write(`${h.name}\t${h.address}\n`);
    if (layout.registry) ctx.out.write(`registry\t${registryHost(layout)}\t${testImageReference(layout)}\n`);
  },
};

const exec: Command = {
  name: 'exec',
  summary: "Run a command on a host (in its network and UTS namespaces); exits with the command's code",
  usage: '[--name LAB] HOST [--] COMMAND [ARG...]',
  flags: [nameFlag],
  passThrough: true,
  minArgs: 2,
  run: async (ctx) => {
    const [host, ...rest] = ctx.args;
    const argv = rest[0] === '--' ? rest.slice(1) : rest;
    if (argv.length === 0) throw new UsageError(`"lab exec" needs a command to run on ${host}.\nUsage:  lab exec HOST -- COMMAND [ARG...]`);
    const child = openLab(ctx).spawn(host!, argv, { stdio: 'inherit' });
    return await mirror(child);
  },
};

const status: Command = {
  name: 'status',
  aliases: ['ls'],
  summary: 'List the hosts of the lab',
  usage: '[--name LAB] [--json]',
  flags: [nameFlag, { name: 'json', kind: 'bool', description: 'Print the status as JSON' }],
  maxArgs: 0,
  run: (ctx) => {
    const lab = openLab(ctx);
    const s = lab.status();
    if (ctx.flags.json) {
      ctx.out.write(JSON.stringify(s ?? null, null, 2) + '\n');
      return s ? 0 : 1;
    }
    if (!s) {
      ctx.err.write(`lab "${lab.name}" is not up\n`);
      return 1;
    }
    ctx.out.write(`lab ${s.name}: ${s.hosts.length} hosts on ${s.subnet}, ${s.status}\n`);
    const rows = [['HOST', 'ADDRESS', 'NAMESPACE', 'STATE'], ...s.hosts.map((h) => [h.name, h.address, h.netns, h.state])];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) ctx.out.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('   ') + '\n');
    return s.hosts.every((h) => h.state === 'up') ? 0 : 1;
  },
};

const down: Command = {
  name: 'down',
  summary: 'Remove every namespace, link, mount, process and file of the lab (safe to run any time)',
  usage: '[--name LAB]',
  flags: [nameFlag],
  maxArgs: 0,
  run: async (ctx) => {
    const lab = openLab(ctx);
    const r = await lab.down();
    if (!r.found) ctx.err.write(`lab ${lab.name}: nothing to remove\n`);
  },
};

const hostArg = (ctx: CommandContext): string => ctx.args[0]!;

const cliCmd: Command = {
  name: 'cli',
  summary: "Run the shoal CLI against a host's daemon",
  usage: '[--name LAB] HOST [--] SHOAL-ARGS...',
  flags: [nameFlag],
  passThrough: true,
  minArgs: 1,
  run: (ctx) => {
    const rest = ctx.args.slice(1);
    const r = shoalCli(openLab(ctx), hostArg(ctx), rest[0] === '--' ? rest.slice(1) : rest);
    ctx.out.write(r.stdout);
    ctx.err.write(r.stderr);
    return r.status ?? 1;
  },
};

const kill: Command = {
  name: 'kill',
  summary: "Send SIGKILL to a host's shoald",
  usage: '[--name LAB] HOST',
  flags: [nameFlag],
  minArgs: 1,
  maxArgs: 1,
  run: async (ctx) => {
    await killDaemon(openLab(ctx), hostArg(ctx));
  },
};

const start: Command = {
  name: 'start',
  summary: "Start a host's shoald again, with its data intact",
  usage: '[--name LAB] HOST',
  flags: [nameFlag],
  minArgs: 1,
  maxArgs: 1,
  run: async (ctx) => {
    const pid = await startDaemon(openLab(ctx), hostArg(ctx));
    ctx.out.write(`shoald on ${hostArg(ctx)}: pid ${pid}\n`);
  },
};

export const root: Command = {
  name: 'lab',
  summary: "shoal's lab: a sealed world of hosts on this machine, for testing cross-host behaviour for real",
  usage: '[--name LAB] COMMAND',
  flags: [nameFlag],
  subcommands: [up, exec, cliCmd, kill, start, status, down],
};

/** Waits for `child` and turns its end into an exit code (128 + signal, like a shell). */
function mirror(child: ReturnType<typeof spawn>): Promise<number> {
  // Signals meant for the command reach it: the terminal's ^C goes to the whole process group
  // anyway; SIGTERM and SIGHUP sent to this process by pid are passed on.
  const forward = (sig: NodeJS.Signals): void => {
    if (sig !== 'SIGINT') child.kill(sig);
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, forward);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}
