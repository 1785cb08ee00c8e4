// `shoal swarm`: init, join, join-token — Docker's words and output.
import { parseDuration } from '../units.js';
import type { Command } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import { call } from '../client.js';

const joinTokenText = (role: string, token: string, addr: string) =>
  `To add a ${role} to this swarm, run the following command:\n\n    shoal swarm join --token ${token} ${addr}\n\n`;

export const swarmCommand: Command = {
  name: 'swarm',
  summary: 'Manage Swarm',
  subcommands: [
    {
      name: 'init',
      summary: 'Initialize a swarm',
      usage: '[OPTIONS]',
      maxArgs: 0,
      flags: [
        { name: 'advertise-addr', kind: 'string', description: 'Advertised address (format: "<ip|interface>[:port]")' },
        { name: 'listen-addr', kind: 'string', default: '0.0.0.0:2377', description: 'Listen address (format: "<ip|interface>[:port]")' },
        { name: 'force-new-cluster', kind: 'bool', description: 'Force create a new cluster from current state' },
        { name: 'default-addr-pool', kind: 'list', description: 'Default address pool in CIDR format (repeatable)' },
        { name: 'default-addr-pool-mask-length', kind: 'int', default: 24, description: 'Default address pool subnet mask length' },
        { name: 'task-history-limit', kind: 'int', default: 5, description: 'Task history retention limit (at least 1)' },
        { name: 'dispatcher-heartbeat', kind: 'string', default: '2s', description: 'Dispatcher heartbeat period (a node is Down after 2.5 periods without one)' },
      ],
      run: async ({ flags, global, out }) => {
        let addr = withPort(String(flags['advertise-addr'] ?? ''));
        const forceNewCluster = Boolean(flags['force-new-cluster']);
        let heartbeatPeriodMs: number;
        try {
          heartbeatPeriodMs = parseDuration(String(flags['dispatcher-heartbeat']));
        } catch (e) {
          throw new UserError(`invalid argument "${String(flags['dispatcher-heartbeat'])}" for "--dispatcher-heartbeat" flag: ${(e as Error).message}`);
        }
        const taskHistoryLimit = Number(flags['task-history-limit']);
        if (taskHistoryLimit < 1) throw new UserError(`invalid --task-history-limit ${taskHistoryLimit}: shoal keeps at least 1 task per slot`);
        const res = await call(global, 'init', {
          listenAddr: withPort(String(flags['listen-addr'])),
          advertiseAddr: addr,
          defaultAddrPool: (flags['default-addr-pool'] as string[] | undefined) ?? [],
          defaultAddrPoolMaskLen: Number(flags['default-addr-pool-mask-length']),
          forceNewCluster,
          taskHistoryLimit,
          heartbeatPeriodMs,
        });
        // A forced new cluster keeps the manager's own address: ask it which one that is.
        if (forceNewCluster && !addr) addr = (await call(global, 'getJoinToken', { role: 'WORKER', rotate: false })).managerAddr;
        out.write(`Swarm initialized: current node (${res.nodeId}) is now a manager.\n\n`);
        out.write(joinTokenText('worker', res.workerToken, addr || String(flags['listen-addr'])));
        out.write(`To add a manager to this swarm, run 'shoal swarm join-token manager' and follow the instructions.\n\n`);
      },
    },
    {
      name: 'join',
      summary: 'Join a swarm as a node and/or manager',
      usage: '[OPTIONS] HOST:PORT',
      minArgs: 1,
      maxArgs: 1,
      flags: [
        { name: 'token', kind: 'string', description: 'Token for entry into the swarm' },
        { name: 'advertise-addr', kind: 'string', description: 'Advertised address (format: "<ip|interface>[:port]")' },
        { name: 'listen-addr', kind: 'string', default: '0.0.0.0:2377', description: 'Listen address (format: "<ip|interface>[:port]")' },
      ],
      run: async ({ args, flags, global, out }) => {
        if (!flags.token) throw new UserError('a join token is required: --token TOKEN');
        const res = await call(global, 'join', { joinToken: String(flags.token), remoteAddrs: [withPort(args[0]!)], listenAddr: withPort(String(flags['listen-addr'])), advertiseAddr: withPort(String(flags['advertise-addr'] ?? '')) });
        out.write(`This node joined a swarm as a ${res.role === 'MANAGER' ? 'manager' : 'worker'}.\n`);
      },
    },
    {
      name: 'join-token',
      summary: 'Manage join tokens',
      usage: '[OPTIONS] (worker|manager)',
      minArgs: 1,
      maxArgs: 1,
      flags: [
        { name: 'quiet', short: 'q', kind: 'bool', description: 'Only display token' },
        { name: 'rotate', kind: 'bool', description: 'Rotate join token' },
      ],
      run: async ({ args, flags, global, out }) => {
        const role = args[0]!;
        if (role !== 'worker' && role !== 'manager') throw new UserError(`unknown role ${role}: expected worker or manager`);
        const res = await call(global, 'getJoinToken', { role: role === 'manager' ? 'MANAGER' : 'WORKER', rotate: Boolean(flags.rotate) });
        if (flags.quiet) return void out.write(res.token + '\n');
        if (flags.rotate) out.write(`Successfully rotated ${role} join token.\n\n`);
        out.write(joinTokenText(role, res.token, res.managerAddr));
      },
    },
    {
      name: 'leave',
      summary: 'Leave the swarm',
      usage: '[OPTIONS]',
      maxArgs: 0,
      flags: [{ name: 'force', short: 'f', kind: 'bool', description: 'Force this node to leave the swarm, ignoring warnings' }],
      run: async ({ flags, global, out }) => {
        await call(global, 'leave', { force: Boolean(flags.force) });
        out.write('Node left the swarm.\n');
      },
    },
  ],
};

/** Docker accepts an address without a port and means 2377. */
function withPort(addr: string): string {
  if (!addr) return addr;
  return /:\d+$/.test(addr) ? addr : `${addr}:2377`;
}
