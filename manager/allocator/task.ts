// Task network attachments: one address per network the task joins (its service's networks, and
// the ingress network when the service publishes ingress ports), with a MAC derived from it.
// Addresses are held while the task can still run and freed once it has ended.
import { TaskStateNumber, type Endpoint, type NetworkAttachment, type NetworkAttachmentConfig, type Service, type Task } from '../../proto/gen/objects.js';
import { precondition } from './errors.js';
import { macFromIp } from './ipam/mac.js';
import { hasIngressPorts, endpointSpecOf } from './service.js';
import type { AllocationState, Resource } from './state.js';

export const taskOwner = (id: string): string => `task:${id}`;

const stateOf = (t: Task): number => TaskStateNumber[t.status?.state ?? 'NEW'];

/** Past RUNNING (complete, shutdown, failed, rejected, orphaned): the task is over. */
export function isTaskEnded(t: Task): boolean {
  return stateOf(t) > TaskStateNumber.RUNNING;
}

/** A task waiting for the allocator: NEW, and still meant to run (or to complete, for jobs). */
export function isTaskAllocatable(t: Task): boolean {
  return stateOf(t) === TaskStateNumber.NEW && TaskStateNumber[t.desiredState] <= TaskStateNumber.COMPLETE;
}

/** What a committed task holds: its attachment addresses, once allocated and until it ends. */
export function taskResources(t: Task): Resource[] {
  if (stateOf(t) === TaskStateNumber.NEW || isTaskEnded(t)) return [];
  const out: Resource[] = [];
  for (const a of t.networks) for (const address of a.addresses) out.push({ kind: 'ip', networkId: a.networkId, address });
  return out;
}

/** The networks a task joins: the ingress network first when its service publishes through it. */
export function taskAttachmentConfigs(t: Task, service: Service | undefined, ingressNetworkId?: string): NetworkAttachmentConfig[] {
  const configs = (t.spec?.networks ?? service?.spec?.task?.networks ?? []).filter((c) => c.target !== '');
  const unique = configs.filter((c, i) => configs.findIndex((d) => d.target === c.target) === i);
  const publishes = service ? hasIngressPorts(endpointSpecOf(service)) : false;
  if (ingressNetworkId && publishes && !unique.some((c) => c.target === ingressNetworkId)) {
    unique.unshift({ target: ingressNetworkId, aliases: [], addresses: [], driverOpts: {} });
  }
  return unique;
}

/**
 * Allocates a task's attachments in `state` (pending until committed). A static address in the
 * attachment config is honoured; otherwise the network's next free one. Throws an AllocatorError
 * (a full subnet, a network not allocated yet); nothing stays allocated then.
 */
export function allocateTask(
  state: AllocationState,
  t: Task,
  service: Service | undefined,
  ingressNetworkId?: string,
): { networks: NetworkAttachment[]; endpoint: Endpoint | null } {
  const owner = taskOwner(t.id);
  try {
    const networks = taskAttachmentConfigs(t, service, ingressNetworkId).map((c): NetworkAttachment => {
      if (!state.ipam.hasNetwork(c.target)) throw precondition(`task ${t.id}: network ${c.target} is not allocated yet`);
      const address = c.addresses.length > 0 ? state.reserveIp(owner, c.target, c.addresses[0]!) : state.allocateIp(owner, c.target);
      return { networkId: c.target, addresses: [address], aliases: [...c.aliases], mac: macFromIp(address) };
    });
    return { networks, endpoint: service?.endpoint ?? null };
  } catch (e) {
    state.rollbackOwner(owner);
    throw e;
  }
}
