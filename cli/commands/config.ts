// `shoal config`: create, inspect, ls, rm — Docker's config objects, flags, columns and messages.
// A config's data is read from a file or stdin (`-`) here; the manager checks name and size.
import { readFileSync } from 'node:fs';
import type { Command } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import type { Config } from '../../proto/gen/objects.js';
import { call } from '../client.js';
import { formatRows } from '../format.js';
import { dockerConfig, renderInspect } from '../dockerjson.js';
import { labelMatches, parseFilters } from '../filters.js';
import { parseKeyValues } from '../serviceflags.js';
import { naturalCompare } from '../serviceview.js';
import { humanDuration } from '../units.js';

export const configHeaders = { ID: 'ID', Name: 'NAME', CreatedAt: 'CREATED', UpdatedAt: 'UPDATED' };
export const configTable = 'table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}';

const ago = (now: number, at: number | undefined): string => `${humanDuration(Math.max(0, now - (at ?? now)))} ago`;

export function configRows(configs: readonly Config[], now: number): Record<string, string>[] {
  return [...configs]
    .sort((a, b) => naturalCompare(a.spec?.annotations?.name ?? '', b.spec?.annotations?.name ?? ''))
    .map((c) => ({ ID: c.id, Name: c.spec?.annotations?.name ?? '', CreatedAt: ago(now, c.meta?.createdAt), UpdatedAt: ago(now, c.meta?.updatedAt) }));
}

export function configMatches(c: Config, f: Record<string, string>): boolean {
  if (f.id !== undefined && !c.id.startsWith(f.id)) return false;
  if (f.name !== undefined && !(c.spec?.annotations?.name ?? '').startsWith(f.name)) return false;
  if (f.label !== undefined && !labelMatches(c.spec?.annotations?.labels, f.label)) return false;
  return true;
}

/** Go's time.Time String() in UTC, what Docker's --pretty prints: `2024-05-01 10:20:30.123 +0000 UTC`. */
function goTime(ms: number | undefined): string {
  const iso = new Date(ms ?? 0).toISOString(); // 2024-05-01T10:20:30.123Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)} +0000 UTC`;
}

/** `config inspect --pretty`: Docker's template, line for line. */
export function prettyConfig(c: Config): string {
  const L = [`ID:              ${c.id}`, `Name:              ${c.spec?.annotations?.name ?? ''}`];
  const labels = Object.entries(c.spec?.annotations?.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  if (labels.length) L.push('Labels:', ...labels.map(([k, v]) => ` - ${k}${v ? `=${v}` : ''}`));
  const data = Buffer.from(c.spec?.data ?? new Uint8Array(0)).toString('utf8');
  L.push(`Created at:            ${goTime(c.meta?.createdAt)}`, `Updated at:            ${goTime(c.meta?.updatedAt)}`, 'Data:', data.endsWith('\n') ? data.slice(0, -1) : data);
  return L.join('\n') + '\n';
}

function readData(path: string): Uint8Array {
  try {
    return readFileSync(path === '-' ? 0 : path);
  } catch (e) {
    throw new UserError(`error reading content from "${path}": ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
  }
}

const notFound = (ref: string) => (e: Error) => {
  throw new UserError(/not found/i.test(e.message) ? `no such config: ${ref}` : e.message);
};

export const configCommand: Command = {
  name: 'config',
  summary: 'Manage Swarm configs',
  subcommands: [
    {
      name: 'create',
      summary: 'Create a config from a file or STDIN',
      usage: '[OPTIONS] CONFIG file|-',
      minArgs: 2,
      maxArgs: 2,
      flags: [{ name: 'label', short: 'l', kind: 'list', description: 'Config labels' }],
      run: async ({ args, flags, global, out }) => {
        const [name, path] = args as [string, string];
        const spec = { annotations: { name, labels: parseKeyValues('label', flags.label as string[]) }, data: readData(path) };
        const res = await call(global, 'createConfig', { spec });
        out.write((res.config?.id ?? '') + '\n');
      },
    },
    {
      name: 'inspect',
      summary: 'Display detailed information on one or more configs',
      usage: '[OPTIONS] CONFIG [CONFIG...]',
      minArgs: 1,
      flags: [
        { name: 'format', short: 'f', kind: 'string', description: 'Format output using a custom template: "json", or a Go template over the config object' },
        { name: 'pretty', kind: 'bool', description: 'Print the information in a human friendly format' },
      ],
      run: async ({ args, flags, global, out }) => {
        const format = flags.format === undefined ? '' : String(flags.format);
        if (flags.pretty && format) throw new UserError('--format is incompatible with human friendly format');
        const found: Config[] = [];
        const errors: string[] = [];
        for (const ref of args) {
          try {
            const res = await call(global, 'getConfig', { config: ref }).catch(notFound(ref));
            if (res.config) found.push(res.config);
            else errors.push(`no such config: ${ref}`);
          } catch (e) {
            if (!(e as { userError?: boolean }).userError) throw e;
            errors.push((e as Error).message);
          }
        }
        if (flags.pretty) out.write(found.map(prettyConfig).join('\n'));
        else out.write(renderInspect(found.map(dockerConfig), format));
        if (errors.length) throw new UserError(errors.join('\n'));
      },
    },
    {
      name: 'ls',
      aliases: ['list'],
      summary: 'List configs',
      usage: '[OPTIONS]',
      maxArgs: 0,
      flags: [
        { name: 'filter', short: 'f', kind: 'list', description: "Filter output based on conditions provided (id, label, name)" },
        { name: 'format', kind: 'string', description: 'Format output using a custom template: "table", "table TEMPLATE", "json", or a Go template' },
        { name: 'quiet', short: 'q', kind: 'bool', description: 'Only display IDs' },
      ],
      run: async ({ flags, global, out }) => {
        const filters = parseFilters(flags.filter as string[], ['id', 'label', 'name']);
        const res = await call(global, 'listConfigs', { filters });
        const rows = configRows(res.configs.filter((c) => configMatches(c, filters)), Date.now());
        if (flags.quiet) return void out.write(rows.map((r) => r.ID + '\n').join(''));
        out.write(formatRows(rows, String(flags.format ?? ''), configTable, configHeaders));
      },
    },
    {
      name: 'rm',
      aliases: ['remove'],
      summary: 'Remove one or more configs',
      usage: 'CONFIG [CONFIG...]',
      minArgs: 1,
      run: async ({ args, global, out }) => {
        const errors: string[] = [];
        for (const ref of args) {
          try {
            await call(global, 'removeConfig', { config: ref }).catch(notFound(ref));
            out.write(ref + '\n');
          } catch (e) {
            if (!(e as { userError?: boolean }).userError) throw e;
            errors.push((e as Error).message);
          }
        }
        if (errors.length) throw new UserError(errors.join('\n'));
      },
    },
  ],
};
