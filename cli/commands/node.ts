// `shoal node`: ls and inspect, with Docker's columns.
import type { Command } from '../../util/command.js';
import { call } from '../client.js';
import { formatRows } from '../format.js';
import type { Node } from '../../proto/gen/objects.js';

const title = (s: string) => s.charAt(0) + s.slice(1).toLowerCase();

export function nodeRow(n: Node, self: string): Record<string, unknown> {
  const ms = n.managerStatus;
  const managerStatus = ms && ms.raftId ? (ms.leader ? 'Leader' : ms.reachability === 'UNREACHABLE' ? 'Unreachable' : 'Reachable') : '';
  return {
    ID: n.id + (n.id === self ? ' *' : ''),
    Hostname: n.description?.hostname ?? '',
    Status: title(n.status?.state ?? 'UNKNOWN'),
    Availability: title(n.spec?.availability ?? 'ACTIVE'),
    ManagerStatus: managerStatus,
    EngineVersion: n.description?.engineVersion ?? '',
    Self: n.id === self,
  };
}

const headers = { ID: 'ID', Hostname: 'HOSTNAME', Status: 'STATUS', Availability: 'AVAILABILITY', ManagerStatus: 'MANAGER STATUS', EngineVersion: 'ENGINE VERSION' };

export const nodeCommand: Command = {
  name: 'node',
  summary: 'Manage Swarm nodes',
  subcommands: [
    {
      name: 'ls',
      aliases: ['list'],
      summary: 'List nodes in the swarm',
      usage: '[OPTIONS]',
      maxArgs: 0,
      flags: [
        { name: 'quiet', short: 'q', kind: 'bool', description: 'Only display IDs' },
        { name: 'format', kind: 'string', description: 'Format output using a custom template: "table", "table TEMPLATE", "json", or a Go template' },
      ],
      run: async ({ flags, global, out }) => {
        const info = await call(global, 'info', {}).catch(() => ({ nodeId: '' }));
        const res = await call(global, 'listNodes', { filters: {} });
        const nodes = [...res.nodes].sort((a, b) => (a.description?.hostname ?? '').localeCompare(b.description?.hostname ?? ''));
        if (flags.quiet) return void out.write(nodes.map((n) => n.id + '\n').join(''));
        out.write(formatRows(nodes.map((n) => nodeRow(n, info.nodeId)), String(flags.format ?? ''), 'table {{.ID}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}', headers));
      },
    },
    {
      name: 'inspect',
      summary: 'Display detailed information on one or more nodes',
      usage: '[OPTIONS] self|NODE [NODE...]',
      minArgs: 1,
      run: async ({ args, global, out }) => {
        const info = await call(global, 'info', {});
        const nodes = [];
        for (const ref of args) {
          nodes.push((await call(global, 'getNode', { node: ref === 'self' ? info.nodeId : ref })).node);
        }
        out.write(JSON.stringify(nodes, null, 4) + '\n');
      },
    },
  ],
};
