// Reservations must fit what the node offers minus what its live tasks reserve: CPU (nano-CPUs),
// memory, and discrete generic resources such as "gpu". A reservation is a promise, so a node is
// refused even when its real usage is low. Memory is checked first: it is what usually runs out.
import { nodes, type Filter } from './filter.js';

export const resourcesFilter: Filter = {
  name: 'resources',
  dynamic: true,
  enabled: (g) => g.nanoCpus > 0 || g.memoryBytes > 0 || g.generic.size > 0,
  check(node, g) {
    if (g.memoryBytes > 0 && node.availableMemoryBytes < g.memoryBytes) return 'memory';
    if (g.nanoCpus > 0 && node.availableNanoCpus < g.nanoCpus) return 'cpu';
    for (const [kind, n] of g.generic) if (node.availableGeneric(kind) < n) return kind;
    return undefined;
  },
  explain: (count, key) => `insufficient ${key} on ${nodes(count)}`,
};
