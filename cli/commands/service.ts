// `shoal service`: create, inspect, ls, ps, rm, rollback, scale, update — Docker's verbs, flags,
// columns and messages. Specs are built by the pure functions of cli/servicespec.ts, listings by
// cli/serviceview.ts, and create/update/scale/rollback wait for convergence (cli/progress.ts)
// unless -d.
import { readFileSync } from 'node:fs';
import type { Command } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import type { FlagValues } from '../../util/flags.js';
import type { Service, Task } from '../../proto/gen/objects.js';
import { call } from '../client.js';
import { dockerService, renderInspect } from '../dockerjson.js';
import { formatRows } from '../format.js';
import { labelMatches, parseFilters } from '../filters.js';
import { waitForConvergence } from '../progress.js';
import { serviceLogsCommand } from './servicelogs.js';
import { createFlags, updateFlags, parseNetworkAttachment } from '../serviceflags.js';
import { applyServiceUpdate, normalizeSpec, serviceSpecFromFlags } from '../servicespec.js';
import { modeName, prettyService, serviceHeaders, serviceRows, serviceTable, renderTaskList } from '../serviceview.js';

const formatFlag = { name: 'format', kind: 'string', description: 'Format output using a custom template: "table", "table TEMPLATE", "json", or a Go template' } as const;
const filterFlag = { name: 'filter', short: 'f', kind: 'list', description: 'Filter output based on conditions provided' } as const;
const detachFlag = { name: 'detach', short: 'd', kind: 'bool', description: 'Exit immediately instead of waiting for the service to converge' } as const;
const quietProgressFlag = { name: 'quiet', short: 'q', kind: 'bool', description: 'Suppress progress output' } as const;

/** The service a reference names (id, id prefix or name), or Docker's "no such service". */
export async function getService(global: FlagValues, ref: string): Promise<Service> {
  const res = await call(global, 'getService', { service: ref }).catch((e: Error) => {
    throw new UserError(/not found/i.test(e.message) ? `no such service: ${ref}` : e.message);
  });
  if (!res.service) throw new UserError(`no such service: ${ref}`);
  return res.service;
}

/** Runs `each` on every argument, Docker-style: print successes, gather failures, fail at the end. */
async function forEachArg(args: readonly string[], each: (arg: string) => Promise<void>): Promise<void> {
  const errors: string[] = [];
  for (const a of args) {
    try {
      await each(a);
    } catch (e) {
      if (!(e as { userError?: boolean }).userError) throw e;
      errors.push((e as Error).message);
    }
  }
  if (errors.length) throw new UserError(errors.join('\n'));
}

const wait = (global: FlagValues, flags: FlagValues, out: NodeJS.WritableStream, service: Service) =>
  flags.detach ? Promise.resolve() : waitForConvergence({ global, service: service.id, out, quiet: Boolean(flags.quiet), initial: service });

/** A throwaway spec every update flag applies to (a job takes both --replicas and --max-concurrent). */
const PROBE_SPEC = normalizeSpec({ annotations: { name: 'probe', labels: {} }, task: { container: null, resources: null, restart: null, placement: null, networks: [], forceUpdate: 0 }, replicatedJob: { maxConcurrent: 1, totalCompletions: 1 } });

/** Finds bad update flag values before anything is sent: the real apply needs the current spec. */
export function checkUpdateFlags(flags: FlagValues): void {
  applyServiceUpdate(PROBE_SPEC, flags);
}

const createCommand: Command = {
  name: 'create',
  summary: 'Create a new service',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  flags: createFlags,
  passThrough: true,
  minArgs: 1,
  run: async ({ args, flags, global, out, err }) => {
    const spec = serviceSpecFromFlags(flags, args, { readFile: (p) => readFileSync(p, 'utf8'), env: process.env });
    const res = await call(global, 'createService', { spec });
    for (const w of res.warnings) err.write(w + '\n');
    if (!res.service) throw new UserError('the manager returned no service');
    out.write(res.service.id + '\n');
    await wait(global, flags, out, res.service);
  },
};

const lsCommand: Command = {
  name: 'ls',
  aliases: ['list'],
  summary: 'List services',
  usage: '[OPTIONS]',
  maxArgs: 0,
  flags: [{ name: 'quiet', short: 'q', kind: 'bool', description: 'Only display IDs' }, formatFlag, filterFlag],
  run: async ({ flags, global, out }) => {
    const filters = parseFilters(flags.filter as string[], ['id', 'label', 'mode', 'name']);
    const res = await call(global, 'listServices', { filters });
    const services = res.services.filter((s) => serviceMatches(s, filters));
    const rows = serviceRows(services, res.statuses);
    if (flags.quiet) return void out.write(rows.map((r) => r.ID + '\n').join(''));
    out.write(formatRows(rows, String(flags.format ?? ''), serviceTable, serviceHeaders));
  },
};

export function serviceMatches(s: Service, filters: Record<string, string>): boolean {
  const name = s.spec?.annotations?.name ?? '';
  if (filters.id !== undefined && !s.id.startsWith(filters.id)) return false;
  if (filters.name !== undefined && !name.startsWith(filters.name)) return false;
  if (filters.mode !== undefined && modeName(s.spec).replace(' ', '-') !== filters.mode) return false;
  if (filters.label !== undefined && !labelMatches(s.spec?.annotations?.labels, filters.label)) return false;
  return true;
}

export function taskMatches(t: Task, name: string, nodeName: string, filters: Record<string, string>): boolean {
  if (filters.id !== undefined && !t.id.startsWith(filters.id)) return false;
  if (filters.name !== undefined && !name.startsWith(filters.name)) return false;
  if (filters.node !== undefined && nodeName !== filters.node && !(t.nodeId && t.nodeId.startsWith(filters.node))) return false;
  if (filters['desired-state'] !== undefined && t.desiredState.toLowerCase() !== filters['desired-state'].toLowerCase()) return false;
  return true;
}

const psCommand: Command = {
  name: 'ps',
  summary: 'List the tasks of one or more services',
  usage: '[OPTIONS] SERVICE [SERVICE...]',
  minArgs: 1,
  flags: [
    filterFlag,
    formatFlag,
    { name: 'no-resolve', kind: 'bool', description: 'Do not map IDs to Names' },
    { name: 'no-trunc', kind: 'bool', description: 'Do not truncate output' },
    { name: 'quiet', short: 'q', kind: 'bool', description: 'Only display task IDs' },
  ],
  run: async ({ args, flags, global, out }) => {
    const filters = parseFilters(flags.filter as string[], ['id', 'name', 'node', 'desired-state']);
    const services = new Map<string, Service>();
    const missing: string[] = [];
    for (const ref of args) {
      try {
        const s = await getService(global, ref);
        services.set(s.id, s);
      } catch (e) {
        if (!(e as { userError?: boolean }).userError) throw e;
        missing.push((e as Error).message);
      }
    }
    if (missing.length) throw new UserError(missing.join('\n'));
    const tasks: Task[] = [];
    const nodeNames: Record<string, string> = {};
    const serviceNames = Object.fromEntries([...services.values()].map((s) => [s.id, s.spec?.annotations?.name ?? s.id]));
    for (const s of services.values()) {
      const res = await call(global, 'listTasks', { filters: { ...filters, service: s.id } });
      Object.assign(nodeNames, res.nodeNames);
      for (const t of res.tasks) {
        const name = t.slot ? `${serviceNames[s.id]}.${t.slot}` : `${serviceNames[s.id]}.${t.nodeId}`;
        if (t.serviceId === s.id && taskMatches(t, name, nodeNames[t.nodeId] ?? '', filters)) tasks.push(t);
      }
    }
    out.write(renderTaskList(tasks, flags, { serviceNames, nodeNames }));
  },
};

const inspectCommand: Command = {
  name: 'inspect',
  summary: 'Display detailed information on one or more services',
  usage: '[OPTIONS] SERVICE [SERVICE...]',
  minArgs: 1,
  flags: [
    { name: 'format', short: 'f', kind: 'string', description: 'Format output using a custom template: "json", or a Go template over the service object' },
    { name: 'pretty', kind: 'bool', description: 'Print the information in a human friendly format' },
  ],
  run: async ({ args, flags, global, out }) => {
    const format = flags.format === undefined ? undefined : String(flags.format);
    if (flags.pretty && format) throw new UserError('--format is incompatible with human friendly format');
    const found: Service[] = [];
    let failure: unknown;
    await forEachArg(args, async (ref) => void found.push(await getService(global, ref))).catch((e: unknown) => (failure = e));
    if (flags.pretty) {
      for (const s of found) out.write(prettyService(s, await networkNames(global, s), Date.now()));
    } else {
      out.write(renderInspect(found.map(dockerService), format));
    }
    if (failure) throw failure;
  },
};

/** Network id → name for the networks a service is attached to (unknown ones are left out). */
async function networkNames(global: FlagValues, s: Service): Promise<Record<string, string>> {
  const names: Record<string, string> = {};
  for (const n of s.spec?.task?.networks ?? []) {
    const net = await call(global, 'getNetwork', { network: n.target }).catch(() => null);
    if (net?.network) names[n.target] = net.network.spec?.annotations?.name ?? n.target;
  }
  return names;
}

/** `web=5` → ['web', 5]; anything else is refused before a single call is made. */
export function parseScaleArgs(args: readonly string[]): [string, number][] {
  return args.map((a) => {
    const eq = a.indexOf('=');
    if (eq <= 0 || eq === a.length - 1) throw new UserError(`invalid scale specifier '${a}': expected SERVICE=REPLICAS`);
    const name = a.slice(0, eq);
    const n = a.slice(eq + 1);
    if (!/^\d+$/.test(n) || !Number.isSafeInteger(Number(n))) throw new UserError(`${name}: invalid replicas value ${n}: expected a non-negative integer`);
    return [name, Number(n)];
  });
}

const scaleCommand: Command = {
  name: 'scale',
  summary: 'Scale one or multiple replicated services',
  usage: 'SERVICE=REPLICAS [SERVICE=REPLICAS...]',
  minArgs: 1,
  flags: [detachFlag],
  run: async ({ args, flags, global, out, err }) => {
    const wanted = parseScaleArgs(args);
    const scaled: Service[] = [];
    const errors: string[] = [];
    for (const [ref, n] of wanted) {
      try {
        const s = await getService(global, ref);
        const spec = normalizeSpec(s.spec ?? {});
        if (spec.replicated) spec.replicated.replicas = n;
        else if (spec.replicatedJob) spec.replicatedJob.totalCompletions = n;
        else throw new UserError('scale can only be used with replicated or replicated-job mode');
        const res = await call(global, 'updateService', { service: s.id, version: s.meta?.version ?? 0, spec, rollback: '' });
        for (const w of res.warnings) err.write(w + '\n');
        out.write(`${ref} scaled to ${n}\n`);
        scaled.push(res.service ?? s);
      } catch (e) {
        if (!(e as { userError?: boolean }).userError) throw e;
        errors.push(`${ref}: ${(e as Error).message}`);
      }
    }
    for (const s of scaled) {
      try {
        await wait(global, flags, out, s);
      } catch (e) {
        if (!(e as { userError?: boolean }).userError) throw e;
        errors.push(`${s.spec?.annotations?.name ?? s.id}: ${(e as Error).message}`);
      }
    }
    if (errors.length) throw new UserError(errors.join('\n'));
  },
};

const rmCommand: Command = {
  name: 'rm',
  aliases: ['remove'],
  summary: 'Remove one or more services',
  usage: 'SERVICE [SERVICE...]',
  minArgs: 1,
  run: async ({ args, global, out }) => {
    await forEachArg(args, async (ref) => {
      await call(global, 'removeService', { service: ref }).catch((e: Error) => {
        throw new UserError(/not found/i.test(e.message) ? `no such service: ${ref}` : e.message);
      });
      out.write(ref + '\n');
    });
  },
};

/** Network names and ids the update flags mention, resolved to ids (refused if unknown). */
async function resolveNetworks(global: FlagValues, flags: FlagValues): Promise<Record<string, string>> {
  const refs = [...(flags['network-add'] as string[]).map((n) => parseNetworkAttachment('network-add', n).target), ...(flags['network-rm'] as string[])];
  const ids: Record<string, string> = {};
  for (const ref of new Set(refs)) {
    const res = await call(global, 'getNetwork', { network: ref }).catch((e: Error) => {
      throw new UserError(/not found/i.test(e.message) ? `network ${ref} not found` : e.message);
    });
    if (!res.network) throw new UserError(`network ${ref} not found`);
    ids[ref] = res.network.id;
  }
  return ids;
}

const updateCommand: Command = {
  name: 'update',
  summary: 'Update a service',
  usage: '[OPTIONS] SERVICE',
  minArgs: 1,
  maxArgs: 1,
  flags: updateFlags,
  run: async ({ args, flags, global, out, err }) => {
    checkUpdateFlags(flags);
    const ref = args[0]!;
    const s = await getService(global, ref);
    if (flags.rollback && !s.previousSpec) throw new UserError(`service ${ref} does not have a previous spec to roll back to`);
    const spec = applyServiceUpdate(s.spec ?? {}, flags, { networkIds: await resolveNetworks(global, flags), env: process.env });
    const res = await call(global, 'updateService', { service: s.id, version: s.meta?.version ?? 0, spec, rollback: flags.rollback ? 'previous' : '' });
    for (const w of res.warnings) err.write(w + '\n');
    out.write(ref + '\n');
    await wait(global, flags, out, res.service ?? s);
  },
};

const rollbackCommand: Command = {
  name: 'rollback',
  summary: "Revert changes to a service's configuration",
  usage: '[OPTIONS] SERVICE',
  minArgs: 1,
  maxArgs: 1,
  flags: [detachFlag, quietProgressFlag],
  run: async ({ args, flags, global, out, err }) => {
    const ref = args[0]!;
    const s = await getService(global, ref);
    if (!s.previousSpec) throw new UserError(`service ${ref} does not have a previous spec to roll back to`);
    const res = await call(global, 'updateService', { service: s.id, version: s.meta?.version ?? 0, spec: s.spec ?? {}, rollback: 'previous' });
    for (const w of res.warnings) err.write(w + '\n');
    out.write(ref + '\n');
    await wait(global, flags, out, res.service ?? s);
  },
};

export const serviceCommand: Command = {
  name: 'service',
  summary: 'Manage Swarm services',
  subcommands: [createCommand, inspectCommand, serviceLogsCommand, lsCommand, psCommand, rmCommand, rollbackCommand, scaleCommand, updateCommand],
};
