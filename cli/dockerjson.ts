// The objects `inspect` prints, in the shape and names of Docker's Engine API (`ID`, `Spec.Name`,
// `Spec.TaskTemplate.ContainerSpec.Image`, durations in nanoseconds, times in RFC 3339), so that
// `--format '{{.Spec.Mode.Replicated.Replicas}}'` and scripts that read `docker service inspect`
// work unchanged. Fields Docker leaves out when empty are left undefined: JSON output omits them,
// while a template naming one prints `<no value>` instead of failing, as Go does for a nil field.
import { renderTemplate } from './format.js';
import type {
  Annotations, Config, ContainerSpec, EndpointSpec, HealthConfig, Meta, Network, Node, PortConfig, Resources, RestartPolicy, Service, ServiceSpec, TaskSpec, UpdateConfig,
} from '../proto/gen/objects.js';

type Json = Record<string, unknown>;

const NS_PER_MS = 1_000_000;
const nanos = (ms: number | undefined) => (ms ? ms * NS_PER_MS : undefined);
const time = (ms: number | undefined) => new Date(ms ?? 0).toISOString();
const lower = (s: string | undefined) => (s ? s.toLowerCase().replace(/_/g, '-') : undefined);
const nonEmpty = <T>(list: T[] | undefined): T[] | undefined => (list && list.length ? list : undefined);
const labels = (a: Annotations | null | undefined) => ({ ...(a?.labels ?? {}) });

function versioned(id: string, meta: Meta | null | undefined): Json {
  return { ID: id, Version: { Index: meta?.version ?? 0 }, CreatedAt: time(meta?.createdAt), UpdatedAt: time(meta?.updatedAt) };
}

function resources(r: Resources | null | undefined): Json | undefined {
  if (!r) return undefined;
  const generic = nonEmpty(r.generic)?.map((g) => (g.named ? { NamedResourceSpec: { Kind: g.kind, Value: g.named } } : { DiscreteResourceSpec: { Kind: g.kind, Value: g.value } }));
  return { NanoCPUs: r.nanoCpus || undefined, MemoryBytes: r.memoryBytes || undefined, Pids: r.pids || undefined, GenericResources: generic };
}

function healthcheck(h: HealthConfig | null | undefined): Json | undefined {
  if (!h) return undefined;
  return { Test: nonEmpty(h.test), Interval: nanos(h.intervalMs), Timeout: nanos(h.timeoutMs), Retries: h.retries || undefined, StartPeriod: nanos(h.startPeriodMs) };
}

function containerSpec(c: ContainerSpec | null | undefined): Json | undefined {
  if (!c) return undefined;
  return {
    Image: c.image,
    Labels: Object.keys(c.labels).length ? { ...c.labels } : undefined,
    Command: nonEmpty(c.command),
    Args: nonEmpty(c.args),
    Hostname: c.hostname || undefined,
    Env: nonEmpty(c.env),
    Dir: c.dir || undefined,
    User: c.user || undefined,
    Mounts: nonEmpty(c.mounts)?.map((m) => ({
      Type: lower(m.type),
      Source: m.source || undefined,
      Target: m.target,
      ReadOnly: m.readOnly || undefined,
      TmpfsOptions: m.tmpfsSizeBytes ? { SizeBytes: m.tmpfsSizeBytes } : undefined,
    })),
    StopGracePeriod: nanos(c.stopGracePeriodMs),
    StopSignal: c.stopSignal || undefined,
    Healthcheck: healthcheck(c.healthcheck),
    ReadOnly: c.readOnly || undefined,
    CapabilityAdd: nonEmpty(c.capAdd),
    CapabilityDrop: nonEmpty(c.capDrop),
    Hosts: nonEmpty(c.hosts),
    TTY: c.tty || undefined,
    Configs: nonEmpty(c.configs)?.map((r) => ({
      File: r.file ? { Name: r.file.name, UID: r.file.uid, GID: r.file.gid, Mode: r.file.mode } : undefined,
      ConfigID: r.configId,
      ConfigName: r.configName,
    })),
  };
}

function restartPolicy(r: RestartPolicy | null | undefined): Json | undefined {
  if (!r) return undefined;
  return { Condition: lower(r.condition), Delay: nanos(r.delayMs), MaxAttempts: r.maxAttempts, Window: nanos(r.windowMs) };
}

function taskTemplate(t: TaskSpec | null | undefined): Json | undefined {
  if (!t) return undefined;
  const res = t.resources;
  const placement = t.placement;
  return {
    ContainerSpec: containerSpec(t.container),
    Resources: res ? { Limits: resources(res.limits), Reservations: resources(res.reservations) } : undefined,
    RestartPolicy: restartPolicy(t.restart),
    Placement: placement
      ? {
          Constraints: nonEmpty(placement.constraints),
          Preferences: nonEmpty(placement.preferences)?.map((p) => ({ Spread: { SpreadDescriptor: p.spreadDescriptor } })),
          MaxReplicas: placement.maxReplicas || undefined,
          Platforms: nonEmpty(placement.platforms)?.map((p) => ({ Architecture: p.architecture, OS: p.os })),
        }
      : undefined,
    Networks: nonEmpty(t.networks)?.map((n) => ({ Target: n.target, Aliases: nonEmpty(n.aliases), DriverOpts: Object.keys(n.driverOpts).length ? { ...n.driverOpts } : undefined })),
    ForceUpdate: t.forceUpdate,
    Runtime: 'container',
  };
}

function updateConfig(u: UpdateConfig | null | undefined): Json | undefined {
  if (!u) return undefined;
  return { Parallelism: u.parallelism, Delay: nanos(u.delayMs), FailureAction: lower(u.failureAction), Monitor: nanos(u.monitorMs), MaxFailureRatio: u.maxFailureRatio, Order: lower(u.order) };
}

function port(p: PortConfig): Json {
  return { Name: p.name || undefined, Protocol: lower(p.protocol), TargetPort: p.targetPort, PublishedPort: p.publishedPort || undefined, PublishMode: lower(p.publishMode) };
}

function endpointSpec(e: EndpointSpec | null | undefined): Json {
  return { Mode: lower(e?.mode) ?? 'vip', Ports: nonEmpty(e?.ports)?.map(port) };
}

function mode(s: ServiceSpec): Json {
  if (s.global) return { Global: {} };
  if (s.replicatedJob) return { ReplicatedJob: { MaxConcurrent: s.replicatedJob.maxConcurrent, TotalCompletions: s.replicatedJob.totalCompletions } };
  if (s.globalJob) return { GlobalJob: {} };
  return { Replicated: { Replicas: s.replicated?.replicas ?? 0 } };
}

function serviceSpec(s: ServiceSpec | null | undefined): Json | undefined {
  if (!s) return undefined;
  return {
    Name: s.annotations?.name ?? '',
    Labels: labels(s.annotations),
    TaskTemplate: taskTemplate(s.task),
    Mode: mode(s),
    UpdateConfig: updateConfig(s.update),
    RollbackConfig: updateConfig(s.rollback),
    EndpointSpec: endpointSpec(s.endpoint),
  };
}

/** `service inspect`: Docker's swarm.Service. */
export function dockerService(s: Service): Json {
  const u = s.updateStatus;
  return {
    ...versioned(s.id, s.meta),
    Spec: serviceSpec(s.spec),
    PreviousSpec: serviceSpec(s.previousSpec),
    Endpoint: {
      Spec: endpointSpec(s.endpoint?.spec ?? s.spec?.endpoint),
      Ports: nonEmpty(s.endpoint?.ports)?.map(port),
      VirtualIPs: nonEmpty(s.endpoint?.virtualIps)?.map((v) => ({ NetworkID: v.networkId, Addr: v.addr })),
    },
    UpdateStatus:
      u && u.state !== 'UNKNOWN'
        ? { State: u.state.toLowerCase(), StartedAt: u.startedAt ? time(u.startedAt) : undefined, CompletedAt: u.completedAt ? time(u.completedAt) : undefined, Message: u.message || undefined }
        : undefined,
  };
}

/** `node inspect`: Docker's swarm.Node. */
export function dockerNode(n: Node): Json {
  const d = n.description;
  const ms = n.managerStatus;
  return {
    ...versioned(n.id, n.meta),
    Spec: { Name: n.spec?.annotations?.name || undefined, Labels: labels(n.spec?.annotations), Role: (n.spec?.desiredRole ?? n.role).toLowerCase(), Availability: (n.spec?.availability ?? 'ACTIVE').toLowerCase() },
    Description: {
      Hostname: d?.hostname ?? '',
      Platform: { Architecture: d?.platform?.architecture ?? '', OS: d?.platform?.os ?? '' },
      Resources: resources(d?.resources) ?? {},
      Engine: { EngineVersion: d?.engineVersion ?? '', Labels: Object.keys(d?.engineLabels ?? {}).length ? { ...d!.engineLabels } : undefined },
    },
    Status: { State: (n.status?.state ?? 'UNKNOWN').toLowerCase(), Message: n.status?.message || undefined, Addr: n.status?.addr ?? '' },
    ManagerStatus: ms && ms.raftId ? { Leader: ms.leader || undefined, Reachability: ms.reachability.toLowerCase(), Addr: ms.addr } : undefined,
  };
}

/** `network inspect`: Docker's types.NetworkResource for a swarm-scoped network. */
export function dockerNetwork(n: Network): Json {
  const spec = n.spec;
  const driver = n.driverState?.name || spec?.driverConfig?.name || 'overlay';
  const ipam = n.ipam ?? spec?.ipam;
  return {
    Name: spec?.annotations?.name ?? '',
    Id: n.id,
    Created: time(n.meta?.createdAt),
    Scope: spec?.scope || 'swarm',
    Driver: driver,
    EnableIPv6: spec?.ipv6 ?? false,
    IPAM: {
      Driver: ipam?.driver?.name || 'default',
      Options: ipam?.driver?.options && Object.keys(ipam.driver.options).length ? { ...ipam.driver.options } : null,
      Config: (ipam?.configs ?? []).map((c) => ({ Subnet: c.subnet, IPRange: c.range || undefined, Gateway: c.gateway || undefined })),
    },
    Internal: spec?.internal ?? false,
    Attachable: spec?.attachable ?? false,
    Ingress: spec?.ingress ?? false,
    Options: { ...(spec?.driverConfig?.options ?? {}), ...(n.driverState?.options ?? {}) },
    Labels: labels(spec?.annotations),
  };
}

/** `config inspect`: Docker's swarm.Config, its data base64-encoded as Docker's JSON has it. */
export function dockerConfig(c: Config): Json {
  return {
    ...versioned(c.id, c.meta),
    Spec: { Name: c.spec?.annotations?.name ?? '', Labels: labels(c.spec?.annotations), Data: Buffer.from(c.spec?.data ?? new Uint8Array(0)).toString('base64') },
  };
}

/**
 * What every `inspect` prints, as Docker does: without a format an indented JSON array; with
 * `json` one object a line; otherwise the template once per object.
 */
export function renderInspect(objects: readonly Json[], format: string | undefined): string {
  if (!format) return JSON.stringify(objects, null, 4) + '\n';
  if (format === 'json') return objects.map((o) => JSON.stringify(o) + '\n').join('');
  return objects.map((o) => renderTemplate(format, o) + '\n').join('');
}
