// `shoal node`: ls, inspect, update, promote, demote, rm, with Docker's columns and messages.
import type { Command } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import type { FlagSpec, FlagValues } from '../../util/flags.js';
import { call } from '../client.js';
import { dockerNode, renderInspect } from '../dockerjson.js';
import { formatRows } from '../format.js';
import { formatBytes } from '../units.js';
import { FlagReader, parseKeyValues } from '../serviceflags.js';
import { NodeSpec, type Node, type NodeRole, type NodeSpec_Availability } from '../../proto/gen/objects.js';

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

const updateFlags: FlagSpec[] = [
  { name: 'availability', kind: 'string', description: 'Availability of the node ("active", "pause", "drain")' },
  { name: 'label-add', kind: 'list', description: 'Add or update a node label ("key=value")' },
  { name: 'label-rm', kind: 'list', description: 'Remove a node label if exists' },
  { name: 'role', kind: 'string', description: 'Role of the node ("worker", "manager")' },
];

/** `node update`'s flags applied to a node's spec (a new object); refuses removing a label it lacks. */
export function applyNodeUpdate(current: NodeSpec, flags: FlagValues): NodeSpec {
  const f = new FlagReader(flags, updateFlags);
  const spec = NodeSpec.decode(NodeSpec.encode(current));
  const availability = f.choice('availability', ['active', 'pause', 'drain'] as const);
  if (availability) spec.availability = availability.toUpperCase() as NodeSpec_Availability;
  const role = f.choice('role', ['worker', 'manager'] as const);
  if (role) spec.desiredRole = role.toUpperCase() as NodeRole;
  const labels = { ...(spec.annotations?.labels ?? {}), ...parseKeyValues('label-add', f.list('label-add')) };
  for (const k of f.list('label-rm')) {
    if (!(k in labels)) throw new UserError(`key ${k} doesn't exist in node's labels`);
    delete labels[k];
  }
  spec.annotations = { name: spec.annotations?.name ?? '', labels };
  return spec;
}

async function getNode(global: FlagValues, ref: string): Promise<Node> {
  const res = await call(global, 'getNode', { node: ref });
  if (!res.node) throw new UserError(`node ${ref} not found`);
  return res.node;
}

async function updateNode(global: FlagValues, node: Node, spec: NodeSpec): Promise<void> {
  await call(global, 'updateNode', { node: node.id, version: node.meta?.version ?? 0, spec });
}

/** promote/demote: Docker's messages, a node already in the role is reported and skipped. */
function roleCommand(name: 'promote' | 'demote', role: NodeRole): Command {
  const promote = name === 'promote';
  return {
    name,
    summary: promote ? 'Promote one or more nodes to manager in the swarm' : 'Demote one or more nodes from manager in the swarm',
    usage: 'NODE [NODE...]',
    minArgs: 1,
    run: async ({ args, global, out }) => {
      for (const ref of args) {
        const node = await getNode(global, ref);
        if ((node.spec?.desiredRole ?? 'WORKER') === role) {
          out.write(`Node ${node.id} is already a ${promote ? 'manager' : 'worker'}.\n`);
          continue;
        }
        await updateNode(global, node, { ...(node.spec ?? { annotations: null, availability: 'ACTIVE', desiredRole: role }), desiredRole: role });
        out.write(promote ? `Node ${ref} promoted to a manager in the swarm.\n` : `Manager ${ref} demoted in the swarm.\n`);
      }
    },
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
      flags: [
        { name: 'format', short: 'f', kind: 'string', description: 'Format output using a custom template: "json", or a Go template over the node object (Docker\'s names: {{.Description.Hostname}})' },
        { name: 'pretty', kind: 'bool', description: 'Print the information in a human friendly format' },
      ],
      run: async ({ args, flags, global, out }) => {
        const format = flags.format === undefined ? undefined : String(flags.format);
        if (flags.pretty && format) throw new UserError('--format is incompatible with human friendly format');
        const info = await call(global, 'info', {});
        const nodes = [];
        for (const ref of args) {
          nodes.push((await call(global, 'getNode', { node: ref === 'self' ? info.nodeId : ref })).node);
        }
        if (flags.pretty) out.write(nodes.map((n) => (n ? prettyNode(n) : '')).join('\n'));
        else out.write(renderInspect(nodes.filter((n) => !!n).map(dockerNode), format));
      },
    },
    {
      name: 'update',
      summary: 'Update a node',
      usage: '[OPTIONS] NODE',
      minArgs: 1,
      maxArgs: 1,
      flags: updateFlags,
      run: async ({ args, flags, global, out }) => {
        const ref = args[0]!;
        // Bad values fail before any call; whether a removed label exists needs the node.
        applyNodeUpdate(NodeSpec.decode(new Uint8Array()), { ...flags, 'label-rm': [] });
        const node = await getNode(global, ref);
        await updateNode(global, node, applyNodeUpdate(node.spec ?? NodeSpec.decode(new Uint8Array()), flags));
        out.write(ref + '\n');
      },
    },
    roleCommand('promote', 'MANAGER'),
    roleCommand('demote', 'WORKER'),
    {
      name: 'rm',
      aliases: ['remove'],
      summary: 'Remove one or more nodes from the swarm',
      usage: '[OPTIONS] NODE [NODE...]',
      minArgs: 1,
      flags: [{ name: 'force', short: 'f', kind: 'bool', description: 'Force remove a node from the swarm' }],
      run: async ({ args, flags, global, out }) => {
        const errors: string[] = [];
        for (const ref of args) {
          try {
            await call(global, 'removeNode', { node: ref, force: Boolean(flags.force) });
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

const titleCase = (s: string) => s.charAt(0) + s.slice(1).toLowerCase();

/** `node inspect --pretty`, laid out as Docker prints it. */
export function prettyNode(n: Node): string {
  const lines: string[] = [];
  const row = (k: string, v: string | number) => lines.push(`${k}:`.padEnd(24) + String(v));
  row('ID', n.id);
  const labels = Object.entries(n.spec?.annotations?.labels ?? {});
  if (labels.length > 0) {
    lines.push('Labels:');
    for (const [k, v] of labels.sort()) lines.push(` - ${k}=${v}`);
  }
  row('Hostname', n.description?.hostname ?? '');
  lines.push('Status:');
  row(' State', titleCase(n.status?.state ?? 'UNKNOWN'));
  if (n.status?.message) row(' Message', n.status.message);
  row(' Availability', titleCase(n.spec?.availability ?? 'ACTIVE'));
  row(' Address', n.status?.addr ?? '');
  if (n.managerStatus) {
    lines.push('Manager Status:');
    row(' Address', n.managerStatus.addr);
    row(' Raft Status', titleCase(n.managerStatus.reachability || 'UNKNOWN'));
    row(' Leader', n.managerStatus.leader ? 'Yes' : 'No');
  }
  const p = n.description?.platform;
  lines.push('Platform:');
  row(' Operating System', p?.os ?? '');
  row(' Architecture', p?.architecture ?? '');
  const r = n.description?.resources;
  lines.push('Resources:');
  row(' CPUs', r ? Number(r.nanoCpus) / 1e9 : 0);
  row(' Memory', formatBytes(Number(r?.memoryBytes ?? 0)));
  const engineLabels = Object.entries(n.description?.engineLabels ?? {});
  if (engineLabels.length > 0) {
    lines.push('Engine Labels:');
    for (const [k, v] of engineLabels.sort()) lines.push(` - ${k}=${v}`);
  }
  row('Engine Version', n.description?.engineVersion ?? '');
  return lines.join('\n') + '\n';
}
