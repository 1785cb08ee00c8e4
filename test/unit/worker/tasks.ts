// Task objects as the dispatcher would send them, with every field the decoder fills in.
import type { ContainerSpec, Task, TaskState } from '../../../proto/gen/objects.js';

export function containerSpec(overrides: Partial<ContainerSpec> = {}): ContainerSpec {
  return {
    image: 'busybox:latest',
    labels: {},
    command: [],
    args: [],
    hostname: '',
    env: [],
    dir: '',
    user: '',
    mounts: [],
    stopGracePeriodMs: 0,
    stopSignal: '',
    healthcheck: null,
    readOnly: false,
    capAdd: [],
    capDrop: [],
    hosts: [],
    log: null,
    tty: false, configs: [],
    ...overrides,
  };
}

export function makeTask(id: string, container: Partial<ContainerSpec> = {}, desiredState: TaskState = 'RUNNING'): Task {
  return {
    id,
    meta: null,
    spec: { container: containerSpec(container), resources: null, restart: null, placement: null, networks: [], forceUpdate: 0 },
    specVersion: 1,
    serviceId: 'svc1',
    slot: 1,
    nodeId: 'node1',
    annotations: null,
    serviceName: 'web',
    status: { timestamp: 1, state: 'ASSIGNED', message: 'assigned', err: '', container: null, health: '', hostPorts: [] },
    desiredState,
    networks: [],
    endpoint: null,
    jobIteration: 0,
    assignedGenericResources: [],
  };
}

/** The task attached to a network (the attacher then has work to do for it). */
export function onNetwork(task: Task, networkId = 'net1'): Task {
  return { ...task, networks: [{ networkId, addresses: ['10.0.9.2/24'], aliases: [], mac: '' }] };
}

export function withDesired(task: Task, desiredState: TaskState): Task {
  return { ...task, desiredState };
}
