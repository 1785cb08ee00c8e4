// The operator's say: only ACTIVE nodes take new tasks. PAUSE keeps running tasks and takes no
// new ones; DRAIN also has the orchestrators move its tasks away.
import { nodes, type Filter } from './filter.js';

export const availabilityFilter: Filter = {
  name: 'availability',
  dynamic: false,
  enabled: () => true,
  check: (node) => ((node.node.spec?.availability ?? 'ACTIVE') === 'ACTIVE' ? undefined : ''),
  explain: (count) => `${nodes(count)} not available for new tasks`,
};
