// The store's tables: which object type lives in each, and the secondary indexes kept for it.
// An index maps a key derived from an object to the ids of the objects with that key; a unique
// index refuses a second object with the same key when a transaction is applied.
import type { Node, Service, Task, Network, Cluster, Secret, Config, StoreAction } from '../../proto/gen/objects.js';

export interface ObjectTypes {
  nodes: Node;
  services: Service;
  tasks: Task;
  networks: Network;
  clusters: Cluster;
  secrets: Secret;
  configs: Config;
}

export type TableName = keyof ObjectTypes;
export type StoreObject = ObjectTypes[TableName];

export const TABLES: readonly TableName[] = ['clusters', 'nodes', 'networks', 'services', 'tasks', 'secrets', 'configs'];

/** The field of StoreAction's `target` oneof that carries each table's objects. */
export const ACTION_FIELD = {
  nodes: 'node',
  services: 'service',
  tasks: 'task',
  networks: 'network',
  clusters: 'cluster',
  secrets: 'secret',
  configs: 'config',
} as const satisfies Record<TableName, keyof StoreAction>;

export const TABLE_OF_FIELD: Record<string, TableName> = Object.fromEntries(
  Object.entries(ACTION_FIELD).map(([table, field]) => [field, table as TableName]),
);

/** Singular names for messages users see ("service web already exists"). */
export const KIND: Record<TableName, string> = {
  nodes: 'node',
  services: 'service',
  tasks: 'task',
  networks: 'network',
  clusters: 'cluster',
  secrets: 'secret',
  configs: 'config',
};

export interface IndexSpec<T> {
  /** Keys of an object under this index; an empty list leaves it out of the index. */
  keys: (o: T) => string[];
  unique?: boolean;
}

const byName = <T extends { spec?: { annotations?: { name: string } | null } | null }>(): IndexSpec<T> => ({
  keys: (o) => (o.spec?.annotations?.name ? [o.spec.annotations.name] : []),
  unique: true,
});

export const INDEXES: { [K in TableName]: Record<string, IndexSpec<ObjectTypes[K]>> } = {
  clusters: { name: byName<Cluster>() },
  nodes: {
    hostname: { keys: (n) => (n.description?.hostname ? [n.description.hostname] : []) },
    role: { keys: (n) => [n.role] },
  },
  networks: { name: byName<Network>() },
  services: { name: byName<Service>() },
  tasks: {
    service: { keys: (t) => (t.serviceId ? [t.serviceId] : []) },
    node: { keys: (t) => (t.nodeId ? [t.nodeId] : []) },
    // Replicated tasks by slot, global tasks by node: what the orchestrators reconcile.
    slot: { keys: (t) => (t.serviceId ? [t.slot ? `${t.serviceId}/${t.slot}` : `${t.serviceId}/node:${t.nodeId}`] : []) },
    desiredState: { keys: (t) => [t.desiredState] },
  },
  secrets: { name: byName<Secret>() },
  configs: { name: byName<Config>() },
};
