// `shoal network`: create, inspect, ls, rm — Docker's flags, columns and messages. The subnet,
// gateway and ip-range flags are paired up here as Docker pairs them (each gateway and range
// inside exactly one subnet), so a mistake is named before anything is sent.
import { BlockList, isIP } from 'node:net';
import type { Command } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import type { FlagValues } from '../../util/flags.js';
import type { IPAMConfig, Network, NetworkSpec } from '../../proto/gen/objects.js';
import { call } from '../client.js';
import { dockerNetwork, renderInspect } from '../dockerjson.js';
import { formatRows } from '../format.js';
import { labelMatches, parseFilters } from '../filters.js';
import { invalidFlag, orList, parseKeyValues } from '../serviceflags.js';
import { naturalCompare, truncateId } from '../serviceview.js';

export const DRIVERS = ['overlay', 'bridge', 'macvlan'] as const;

interface Cidr {
  text: string;
  addr: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

function parseCidr(flag: string, text: string): Cidr {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? '' : text.slice(0, slash);
  const prefix = Number(text.slice(slash + 1));
  const v = isIP(addr);
  if (!v || !/^\d+$/.test(text.slice(slash + 1)) || prefix > (v === 4 ? 32 : 128)) throw invalidFlag(flag, text, `invalid CIDR address: ${text}`);
  return { text, addr, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

function contains(net: Cidr, addr: string, family: 'ipv4' | 'ipv6'): boolean {
  if (net.family !== family) return false;
  const b = new BlockList();
  b.addSubnet(net.addr, net.prefix, net.family);
  return b.check(addr, family);
}

/** Docker's consolidateIpam: one IPAMConfig per subnet, each gateway and range inside one of them. */
export function ipamConfigs(subnets: readonly string[], gateways: readonly string[], ranges: readonly string[]): IPAMConfig[] {
  const nets = subnets.map((s) => parseCidr('subnet', s));
  for (let i = 0; i < nets.length; i++) {
    for (let j = i + 1; j < nets.length; j++) {
      const [a, b] = [nets[i]!, nets[j]!];
      if (contains(a, b.addr, b.family) || contains(b, a.addr, a.family)) throw new UserError(`subnets ${a.text} and ${b.text} overlap: multiple overlapping subnet configuration is not supported`);
    }
  }
  const configs = nets.map((n) => ({ subnet: n.text, range: '', gateway: '' }));
  for (const r of ranges) {
    const range = parseCidr('ip-range', r);
    const i = nets.findIndex((n) => contains(n, range.addr, range.family) && n.prefix <= range.prefix);
    if (i < 0) throw new UserError(`no matching subnet for range ${r}`);
    if (configs[i]!.range) throw new UserError(`cannot configure multiple ranges (${configs[i]!.range}, ${r}) on the same subnet (${configs[i]!.subnet})`);
    configs[i]!.range = r;
  }
  for (const g of gateways) {
    const v = isIP(g);
    if (!v) throw invalidFlag('gateway', g, 'expected an IP address');
    const i = nets.findIndex((n) => contains(n, g, v === 4 ? 'ipv4' : 'ipv6'));
    if (i < 0) throw new UserError(`no matching subnet for gateway ${g}`);
    if (configs[i]!.gateway) throw new UserError(`cannot configure multiple gateways (${configs[i]!.gateway}, ${g}) for the same subnet (${configs[i]!.subnet})`);
    configs[i]!.gateway = g;
  }
  return configs;
}

/** The NetworkSpec `network create` asks for. */
export function networkSpecFromFlags(flags: FlagValues, name: string): NetworkSpec {
  const driver = String(flags.driver ?? 'bridge').toLowerCase();
  if (!(DRIVERS as readonly string[]).includes(driver)) throw invalidFlag('driver', driver, `unknown network driver: expected ${orList(DRIVERS)}`);
  const scope = flags.scope === undefined ? (driver === 'overlay' ? 'swarm' : 'local') : String(flags.scope);
  if (scope !== 'swarm' && scope !== 'local') throw invalidFlag('scope', scope, 'expected "swarm" or "local"');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw new UserError(`invalid network name "${name}": letters, digits, '_', '.' and '-', starting with a letter or digit`);
  const configs = ipamConfigs(flags.subnet as string[], flags.gateway as string[], flags['ip-range'] as string[]);
  return {
    annotations: { name, labels: parseKeyValues('label', flags.label as string[]) },
    driverConfig: { name: driver, options: parseKeyValues('opt', flags.opt as string[]) },
    ipv6: Boolean(flags.ipv6),
    internal: Boolean(flags.internal),
    attachable: Boolean(flags.attachable),
    ingress: Boolean(flags.ingress),
    ipam: configs.length ? { driver: { name: 'default', options: {} }, configs } : null,
    scope,
  };
}

export const networkHeaders = { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE' };
export const networkTable = 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}';

export function networkRows(networks: readonly Network[], noTrunc = false): Record<string, string>[] {
  return [...networks]
    .sort((a, b) => naturalCompare(a.spec?.annotations?.name ?? '', b.spec?.annotations?.name ?? ''))
    .map((n) => ({
      ID: noTrunc ? n.id : truncateId(n.id),
      Name: n.spec?.annotations?.name ?? '',
      Driver: n.spec?.driverConfig?.name ?? '',
      Scope: n.spec?.scope || 'swarm',
    }));
}

export function networkMatches(n: Network, f: Record<string, string>): boolean {
  const name = n.spec?.annotations?.name ?? '';
  if (f.id !== undefined && !n.id.startsWith(f.id)) return false;
  if (f.name !== undefined && !name.includes(f.name)) return false;
  if (f.driver !== undefined && n.spec?.driverConfig?.name !== f.driver) return false;
  if (f.scope !== undefined && (n.spec?.scope || 'swarm') !== f.scope) return false;
  if (f.label !== undefined && !labelMatches(n.spec?.annotations?.labels, f.label)) return false;
  return true;
}

const notFound = (ref: string) => (e: Error) => {
  throw new UserError(/not found/i.test(e.message) ? `network ${ref} not found` : e.message);
};

export const networkCommand: Command = {
  name: 'network',
  summary: 'Manage networks',
  subcommands: [
    {
      name: 'create',
      summary: 'Create a network',
      usage: '[OPTIONS] NETWORK',
      minArgs: 1,
      maxArgs: 1,
      flags: [
        { name: 'driver', short: 'd', kind: 'string', description: 'Driver to manage the Network ("overlay", "bridge", "macvlan") (default "bridge")' },
        { name: 'subnet', kind: 'list', description: 'Subnet in CIDR format that represents a network segment' },
        { name: 'gateway', kind: 'list', description: 'IPv4 or IPv6 Gateway for the master subnet' },
        { name: 'ip-range', kind: 'list', description: 'Allocate container ip from a sub-range' },
        { name: 'attachable', kind: 'bool', description: 'Enable manual container attachment' },
        { name: 'internal', kind: 'bool', description: 'Restrict external access to the network' },
        { name: 'ingress', kind: 'bool', description: 'Create swarm routing-mesh network' },
        { name: 'ipv6', kind: 'bool', description: 'Enable IPv6 networking' },
        { name: 'opt', short: 'o', kind: 'list', description: 'Set driver specific options' },
        { name: 'label', kind: 'list', description: 'Set metadata on a network' },
        { name: 'scope', kind: 'string', description: 'Control the network\'s scope ("swarm", "local") (default: "swarm" for overlay, else "local")' },
      ],
      run: async ({ args, flags, global, out }) => {
        const spec = networkSpecFromFlags(flags, args[0]!);
        const res = await call(global, 'createNetwork', { spec });
        out.write((res.network?.id ?? '') + '\n');
      },
    },
    {
      name: 'inspect',
      summary: 'Display detailed information on one or more networks',
      usage: '[OPTIONS] NETWORK [NETWORK...]',
      minArgs: 1,
      flags: [{ name: 'format', short: 'f', kind: 'string', description: 'Format output using a custom template: "json", or a Go template over the network object (Docker\'s names: {{.Name}}, {{.IPAM.Config}})' }],
      run: async ({ args, flags, global, out }) => {
        const found: Network[] = [];
        const errors: string[] = [];
        for (const ref of args) {
          try {
            const res = await call(global, 'getNetwork', { network: ref }).catch(notFound(ref));
            if (res.network) found.push(res.network);
            else errors.push(`network ${ref} not found`);
          } catch (e) {
            if (!(e as { userError?: boolean }).userError) throw e;
            errors.push((e as Error).message);
          }
        }
        out.write(renderInspect(found.map(dockerNetwork), flags.format === undefined ? undefined : String(flags.format)));
        if (errors.length) throw new UserError(errors.join('\n'));
      },
    },
    {
      name: 'ls',
      aliases: ['list'],
      summary: 'List networks',
      usage: '[OPTIONS]',
      maxArgs: 0,
      flags: [
        { name: 'filter', short: 'f', kind: 'list', description: "Provide filter values (e.g. 'driver=bridge')" },
        { name: 'format', kind: 'string', description: 'Format output using a custom template: "table", "table TEMPLATE", "json", or a Go template' },
        { name: 'no-trunc', kind: 'bool', description: 'Do not truncate the output' },
        { name: 'quiet', short: 'q', kind: 'bool', description: 'Only display network IDs' },
      ],
      run: async ({ flags, global, out }) => {
        const filters = parseFilters(flags.filter as string[], ['driver', 'id', 'label', 'name', 'scope']);
        const res = await call(global, 'listNetworks', { filters });
        const rows = networkRows(
          res.networks.filter((n) => networkMatches(n, filters)),
          Boolean(flags['no-trunc']),
        );
        if (flags.quiet) return void out.write(rows.map((r) => r.ID + '\n').join(''));
        out.write(formatRows(rows, String(flags.format ?? ''), networkTable, networkHeaders));
      },
    },
    {
      name: 'rm',
      aliases: ['remove'],
      summary: 'Remove one or more networks',
      usage: 'NETWORK [NETWORK...]',
      minArgs: 1,
      flags: [{ name: 'force', short: 'f', kind: 'bool', description: 'Do not error if the network does not exist' }],
      run: async ({ args, flags, global, out }) => {
        const errors: string[] = [];
        for (const ref of args) {
          try {
            await call(global, 'removeNetwork', { network: ref });
            out.write(ref + '\n');
          } catch (e) {
            if (!(e as { userError?: boolean }).userError) throw e;
            const msg = (e as Error).message;
            if (flags.force && /not found/i.test(msg)) continue;
            errors.push(/not found/i.test(msg) ? `network ${ref} not found` : msg);
          }
        }
        if (errors.length) throw new UserError(errors.join('\n'));
      },
    },
  ],
};
