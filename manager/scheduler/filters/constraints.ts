// Placement constraints (`--constraint node.labels.tier==web`): every one must hold on the node.
import { nodes, type Filter } from './filter.js';

export const constraintsFilter: Filter = {
  name: 'constraints',
  enabled: (g) => g.constraints.length > 0,
  dynamic: false,
  check: (node, g) => (g.meetsConstraints(node.node) ? undefined : ''),
  explain: (count) => `scheduling constraints not satisfied on ${nodes(count)}`,
};
