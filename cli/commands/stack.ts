// `shoal stack`: deploy, ls, ps, rm, services — Docker's verbs over Compose files. The files are
// loaded, interpolated and merged (cli/stack/load.ts), converted into service and network specs
// (cli/stack/convert.ts) and deployed through the Control API (cli/stack/deploy.ts): the work is
// the client's, as with Docker's CLI. Listings reuse `service ls` / `service ps` formatting.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import type { FlagValues } from '../../util/flags.js';
import type { Task } from '../../proto/gen/objects.js';
import { call } from '../client.js';
import { formatRows } from '../format.js';
import { parseFilters } from '../filters.js';
import { naturalCompare, serviceHeaders, serviceRows, serviceTable, renderTaskList } from '../serviceview.js';
import { parseDuration } from '../units.js';
import { serviceMatches, taskMatches } from './service.js';
import { loadCompose, type ComposeFile } from '../stack/load.js';
import { checkStackName, convertStack, NAMESPACE_LABEL } from '../stack/convert.js';
import { deployStack, removeStack, stackServices, type Caller } from '../stack/deploy.js';

const formatFlag = { name: 'format', kind: 'string', description: 'Format output using a custom template: "table", "table TEMPLATE", "json", or a Go template' } as const;
const filterFlag = { name: 'filter', short: 'f', kind: 'list', description: 'Filter output based on conditions provided' } as const;

const caller = (global: FlagValues): Caller => ((name, req) => call(global, name, req)) as Caller;

function readComposeFiles(paths: readonly string[]): ComposeFile[] {
  return paths.map((p) => {
    try {
      return { name: p, text: p === '-' ? readFileSync(0, 'utf8') : readFileSync(p, 'utf8') };
    } catch (e) {
      throw new UserError(`open ${p}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
  });
}

const deployCommand: Command = {
  name: 'deploy',
  aliases: ['up'],
  summary: 'Deploy a new stack or update an existing stack',
  usage: '[OPTIONS] STACK',
  minArgs: 1,
  maxArgs: 1,
  flags: [
    { name: 'compose-file', short: 'c', kind: 'list', description: 'Path to a Compose file, or "-" to read from stdin' },
    { name: 'prune', kind: 'bool', description: 'Prune services that are no longer referenced' },
    { name: 'health-timeout', kind: 'string', valueName: 'duration', description: 'How long to wait for a service_healthy dependency (default 5m)' },
    { name: 'resolve-image', kind: 'string', description: 'Query the registry to resolve image digest and supported platforms ("always", "changed", "never") (accepted for compatibility; shoal never resolves)' },
  ],
  run: async ({ args, flags, global, out, err }) => {
    const stack = args[0]!;
    checkStackName(stack);
    const paths = flags['compose-file'] as string[];
    if (!paths.length) throw new UserError('please specify a Compose file (with --compose-file)');
    const model = loadCompose(readComposeFiles(paths), process.env);
    const first = paths[0] === '-' ? process.cwd() : dirname(resolve(paths[0]!));
    const stackModel = convertStack(stack, model, { env: process.env, readFile: (p) => readFileSync(p, 'utf8'), readBinary: (p) => readFileSync(p), workingDir: first });
    let healthTimeoutMs = 5 * 60_000;
    if (flags['health-timeout'] !== undefined) {
      try {
        healthTimeoutMs = parseDuration(String(flags['health-timeout']));
      } catch (e) {
        throw new UserError(`invalid argument "${String(flags['health-timeout'])}" for "--health-timeout" flag: ${(e as Error).message}`);
      }
    }
    await deployStack(caller(global), stackModel, { prune: Boolean(flags.prune), out, err, healthTimeoutMs });
  },
};

const lsCommand: Command = {
  name: 'ls',
  aliases: ['list'],
  summary: 'List stacks',
  usage: '[OPTIONS]',
  maxArgs: 0,
  flags: [formatFlag],
  run: async ({ flags, global, out }) => {
    const res = await call(global, 'listServices', { filters: { label: NAMESPACE_LABEL } });
    const counts = new Map<string, number>();
    for (const s of res.services) {
      const ns = s.spec?.annotations?.labels?.[NAMESPACE_LABEL];
      if (ns !== undefined) counts.set(ns, (counts.get(ns) ?? 0) + 1);
    }
    const rows = [...counts.entries()].sort(([a], [b]) => naturalCompare(a, b)).map(([Name, n]) => ({ Name, Services: String(n) }));
    out.write(formatRows(rows, String(flags.format ?? ''), 'table {{.Name}}\t{{.Services}}', { Name: 'NAME', Services: 'SERVICES' }));
  },
};

const servicesCommand: Command = {
  name: 'services',
  summary: 'List the services in the stack',
  usage: '[OPTIONS] STACK',
  minArgs: 1,
  maxArgs: 1,
  flags: [filterFlag, formatFlag, { name: 'quiet', short: 'q', kind: 'bool', description: 'Only display IDs' }],
  run: async ({ args, flags, global, out, err }) => {
    const stack = args[0]!;
    const filters = parseFilters(flags.filter as string[], ['id', 'label', 'mode', 'name']);
    const { services, statuses } = await stackServices(caller(global), stack);
    const matching = services.filter((s) => serviceMatches(s, filters));
    if (!matching.length && !flags.quiet) {
      err.write(`Nothing found in stack: ${stack}\n`);
      return;
    }
    const rows = serviceRows(matching, statuses);
    if (flags.quiet) return void out.write(rows.map((r) => r.ID + '\n').join(''));
    out.write(formatRows(rows, String(flags.format ?? ''), serviceTable, serviceHeaders));
  },
};

const psCommand: Command = {
  name: 'ps',
  summary: 'List the tasks in the stack',
  usage: '[OPTIONS] STACK',
  minArgs: 1,
  maxArgs: 1,
  flags: [
    filterFlag,
    formatFlag,
    { name: 'no-resolve', kind: 'bool', description: 'Do not map IDs to Names' },
    { name: 'no-trunc', kind: 'bool', description: 'Do not truncate output' },
    { name: 'quiet', short: 'q', kind: 'bool', description: 'Only display task IDs' },
  ],
  run: async ({ args, flags, global, out, err }) => {
    const stack = args[0]!;
    const filters = parseFilters(flags.filter as string[], ['id', 'name', 'node', 'desired-state']);
    const { services } = await stackServices(caller(global), stack);
    const serviceNames = Object.fromEntries(services.map((s) => [s.id, s.spec?.annotations?.name ?? s.id]));
    const tasks: Task[] = [];
    const nodeNames: Record<string, string> = {};
    for (const s of services) {
      const res = await call(global, 'listTasks', { filters: { ...filters, service: s.id } });
      Object.assign(nodeNames, res.nodeNames);
      for (const t of res.tasks) {
        const name = t.slot ? `${serviceNames[s.id]}.${t.slot}` : `${serviceNames[s.id]}.${t.nodeId}`;
        if (t.serviceId === s.id && taskMatches(t, name, nodeNames[t.nodeId] ?? '', filters)) tasks.push(t);
      }
    }
    if (!tasks.length && !flags.quiet) {
      err.write(`Nothing found in stack: ${stack}\n`);
      return;
    }
    out.write(renderTaskList(tasks, flags, { serviceNames, nodeNames }));
  },
};

const rmCommand: Command = {
  name: 'rm',
  aliases: ['remove', 'down'],
  summary: 'Remove one or more stacks',
  usage: 'STACK [STACK...]',
  minArgs: 1,
  run: async ({ args, global, out, err }) => {
    const errors: string[] = [];
    for (const stack of args) {
      try {
        const found = await removeStack(caller(global), stack, { out, networkTimeoutMs: 60_000 });
        if (!found) err.write(`Nothing found in stack: ${stack}\n`);
      } catch (e) {
        if (!(e as { userError?: boolean }).userError) throw e;
        errors.push((e as Error).message);
      }
    }
    if (errors.length) throw new UserError(errors.join('\n'));
  },
};

export const stackCommand: Command = {
  name: 'stack',
  summary: 'Manage Swarm stacks',
  subcommands: [deployCommand, lsCommand, psCommand, rmCommand, servicesCommand],
};
