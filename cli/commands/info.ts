// `shoal info`: the daemon's and the swarm's state, like `docker info`'s Swarm section.
import type { Command } from '../../util/command.js';
import { call } from '../client.js';

export const infoCommand: Command = {
  name: 'info',
  summary: 'Display system-wide information',
  maxArgs: 0,
  flags: [{ name: 'format', short: 'f', kind: 'string', description: 'Format output: "json"' }],
  run: async ({ flags, global, out }) => {
    const i = await call(global, 'info', {});
    if (flags.format === 'json') return void out.write(JSON.stringify(i) + '\n');
    const lines = [`Server Version: ${i.version}`, `Shoal Root Dir: ${i.dataRoot}`, `Swarm: ${i.localNodeState}`];
    if (i.localNodeState === 'active') {
      lines.push(` NodeID: ${i.nodeId}`, ` Is Manager: ${i.controlAvailable}`);
      if (i.controlAvailable) {
        lines.push(` ClusterID: ${i.clusterId}`, ` Managers: ${i.managerCount}`, ` Nodes: ${i.nodes}`, ` Raft:`, `  Term: ${i.raftTerm}`, `  Commit: ${i.raftCommit}`, `  Leader: ${i.leaderAddr}`);
      }
      lines.push(` Node Address: ${i.nodeAddr}`, ` Manager Addresses:`, ...i.managers.map((m) => `  ${m}`));
    }
    out.write(lines.join('\n') + '\n');
  },
};
