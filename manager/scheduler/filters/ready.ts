// Only a node whose agent is connected and reporting (status READY) can run new tasks: a DOWN,
// DISCONNECTED or never-seen node would leave the task assigned and never started.
import { nodes, type Filter } from './filter.js';

export const readyFilter: Filter = {
  name: 'ready',
  dynamic: false,
  enabled: () => true,
  check: (node) => (node.node.status?.state === 'READY' ? undefined : ''),
  explain: (count) => `${nodes(count)} not ready`,
};
