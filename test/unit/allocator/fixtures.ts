// Builders for allocator tests: a store with no Raft behind it, and networks, services and tasks
// with only the fields the allocator reads.
import { MemoryStore, LocalProposer } from '../../../manager/store/memory.js';
import { blank, copy } from '../../../manager/store/blank.js';
import {
  Annotations,
  Cluster,
  Driver,
  EndpointSpec,
  IPAMConfig,
  IPAMOptions,
  Network,
  NetworkAttachmentConfig,
  NetworkSpec,
  PortConfig,
  Service,
  ServiceSpec,
  Task,
  TaskSpec,
  TaskStatus,
  type TaskState,
} from '../../../proto/gen/objects.js';

export function newStore(): MemoryStore {
  let t = 1000;
  const s = new MemoryStore(null, () => t++);
  s.setProposer(new LocalProposer(s));
  return s;
}

export interface NetworkOpts {
  driver?: string;
  subnet?: string;
  gateway?: string;
  range?: string;
  ingress?: boolean;
  options?: Record<string, string>;
}

export function network(id: string, name: string, o: NetworkOpts = {}): Network {
  const configs = o.subnet || o.gateway || o.range ? [blank(IPAMConfig, { subnet: o.subnet ?? '', gateway: o.gateway ?? '', range: o.range ?? '' })] : [];
  return blank(Network, {
    id,
    spec: blank(NetworkSpec, {
      annotations: blank(Annotations, { name }),
      driverConfig: blank(Driver, { name: o.driver ?? 'overlay', options: o.options ?? {} }),
      ipam: blank(IPAMOptions, { configs }),
      ingress: o.ingress ?? false,
    }),
  });
}

export function port(target: number, published = 0, mode: 'INGRESS' | 'HOST' = 'INGRESS', protocol: 'TCP' | 'UDP' = 'TCP'): PortConfig {
  return blank(PortConfig, { targetPort: target, publishedPort: published, publishMode: mode, protocol });
}

export interface ServiceOpts {
  networks?: string[];
  ports?: PortConfig[];
  mode?: 'VIP' | 'DNSRR';
  aliases?: string[];
}

export function serviceSpec(name: string, o: ServiceOpts = {}): ServiceSpec {
  return blank(ServiceSpec, {
    annotations: blank(Annotations, { name }),
    task: blank(TaskSpec, {
      networks: (o.networks ?? []).map((target) => blank(NetworkAttachmentConfig, { target, aliases: o.aliases ?? [] })),
    }),
    endpoint: blank(EndpointSpec, { mode: o.mode ?? 'VIP', ports: o.ports ?? [] }),
  });
}

export function service(id: string, name: string, o: ServiceOpts = {}): Service {
  return blank(Service, { id, spec: serviceSpec(name, o) });
}

/** A task as the orchestrator makes it: NEW, desired RUNNING, with its service's task spec. */
export function task(id: string, s: Service, slot: number): Task {
  return blank(Task, {
    id,
    serviceId: s.id,
    serviceName: s.spec?.annotations?.name ?? '',
    slot,
    spec: s.spec?.task ? copy(TaskSpec, s.spec.task) : null,
    desiredState: 'RUNNING',
    status: blank(TaskStatus, { state: 'NEW' }),
  });
}

export function cluster(pools: string[], subnetSize: number): Cluster {
  return blank(Cluster, { id: 'cluster', spec: null, defaultAddressPool: pools, subnetSize });
}

/** Moves a task to an observed state, as the dispatcher does when an agent reports. */
export async function setTaskState(store: MemoryStore, id: string, state: TaskState): Promise<void> {
  await store.update((tx) => {
    const t = copy(Task, tx.get('tasks', id)!);
    t.status = { ...t.status!, state };
    tx.update('tasks', t);
  });
}
