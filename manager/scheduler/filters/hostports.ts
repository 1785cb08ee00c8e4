// A port published in host mode binds the node's own address, so two tasks publishing the same
// port and protocol in host mode cannot share a node.
import { nodes, type Filter } from './filter.js';

export const hostPortsFilter: Filter = {
  name: 'host-ports',
  dynamic: true,
  enabled: (g) => g.hostPorts.length > 0,
  check: (node, g) => (g.hostPorts.some((p) => node.usedHostPorts.has(p)) ? '' : undefined),
  explain: (count) => `host-mode port already in use on ${nodes(count)}`,
};
