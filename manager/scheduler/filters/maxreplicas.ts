// `--replicas-max-per-node`: at most this many tasks of the service on one node.
import { nodes, type Filter } from './filter.js';

export const maxReplicasFilter: Filter = {
  name: 'max-replicas',
  dynamic: true,
  enabled: (g) => g.maxReplicas > 0,
  check: (node, g) => (node.serviceTasks(g.serviceId) < g.maxReplicas ? undefined : ''),
  explain: (count) => `max replicas per node limit exceeded on ${nodes(count)}`,
};
