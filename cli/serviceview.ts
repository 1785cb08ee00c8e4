// Services and tasks as `docker service ls`, `service ps` and `service inspect --pretty` print
// them: Docker's columns, truncations, state words and the `\_ ` of a slot's older tasks. Pure
// functions of the objects (and of `now`), so the output is tested without a daemon.
import type { PortConfig, Service, ServiceSpec, Task } from '../proto/gen/objects.js';
import type { ServiceStatus } from '../proto/gen/control.js';
import { formatBytes, formatCpus, formatDuration, humanDuration } from './units.js';
import { formatRows } from './format.js';
import type { FlagValues } from '../util/flags.js';

/** Docker's TruncateID: the first 12 characters. */
export const truncateId = (id: string): string => id.slice(0, 12);

/** `RUNNING` → `Running`, as Docker's PrettyPrint of a state. */
export const prettyState = (s: string): string => s.charAt(0) + s.slice(1).toLowerCase();

/** Go's sortorder.NaturalLess as a comparator: `web.2` before `web.10`. */
export function naturalCompare(a: string, b: string): number {
  const re = /\d+|\D+/g;
  const ax = a.match(re) ?? [];
  const bx = b.match(re) ?? [];
  for (let i = 0; i < Math.min(ax.length, bx.length); i++) {
    const x = ax[i]!;
    const y = bx[i]!;
    if (x === y) continue;
    const xd = /^\d/.test(x);
    const yd = /^\d/.test(y);
    if (xd && yd) {
      const d = Number(x) - Number(y);
      if (d) return d;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  return ax.length - bx.length;
}

/** Docker's Ellipsis: at most `max` characters, the last one `…` when cut. */
export function ellipsis(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : chars.slice(0, max - 1).join('') + '…';
}

/** An image as listings show it: the digest dropped when there is a tag, Docker Hub's prefix dropped. */
export function displayImage(image: string): string {
  let ref = image;
  const at = ref.indexOf('@');
  if (at >= 0) {
    const name = ref.slice(0, at);
    if (/:[\w][\w.-]*$/.test(name.slice(name.lastIndexOf('/') + 1))) ref = name;
  }
  return ref.replace(/^docker\.io\/library\//, '').replace(/^docker\.io\//, '');
}

export function modeName(spec: ServiceSpec | null | undefined): string {
  if (spec?.global) return 'global';
  if (spec?.replicated) return 'replicated';
  if (spec?.replicatedJob) return 'replicated job';
  if (spec?.globalJob) return 'global job';
  return '';
}

/** REPLICAS of `service ls`: `2/3`, `2/3 (max 1 per node)`, and a job's completions. */
export function replicasText(service: Service, status: ServiceStatus | undefined): string {
  const spec = service.spec;
  const running = status?.runningTasks ?? 0;
  const desired = status?.desiredTasks ?? spec?.replicated?.replicas ?? 0;
  const completed = status?.completedTasks ?? 0;
  if (spec?.replicatedJob) return `${running}/${desired} (${completed}/${spec.replicatedJob.totalCompletions} completed)`;
  if (spec?.globalJob) return `${running}/${desired} (${completed}/${desired + completed} completed)`;
  const max = spec?.replicated ? (spec.task?.placement?.maxReplicas ?? 0) : 0;
  return max > 0 ? `${running}/${desired} (max ${max} per node)` : `${running}/${desired}`;
}

/** The ports a service publishes: as allocated when the manager has done so, else as asked. */
export const servicePorts = (s: Service): PortConfig[] => (s.endpoint?.ports.length ? s.endpoint.ports : (s.spec?.endpoint?.ports ?? []));

/**
 * PORTS of `service ls`: ingress ports, consecutive ones grouped into ranges
 * (`*:8080-8081->80-81/tcp`), as Docker's formatter does.
 */
export function portsText(ports: readonly PortConfig[]): string {
  const sorted = ports
    .filter((p) => p.publishMode === 'INGRESS')
    .sort((a, b) => (a.protocol === b.protocol ? a.publishedPort - b.publishedPort : a.protocol < b.protocol ? -1 : 1));
  const out: string[] = [];
  let r: { pStart: number; pEnd: number; tStart: number; tEnd: number; protocol: string } | null = null;
  const flush = () => {
    if (!r) return;
    const pub = r.pEnd > r.pStart ? `${r.pStart}-${r.pEnd}` : `${r.pStart}`;
    const tgt = r.tEnd > r.tStart ? `${r.tStart}-${r.tEnd}` : `${r.tStart}`;
    out.push(`*:${pub}->${tgt}/${r.protocol.toLowerCase()}`);
  };
  for (const p of sorted) {
    // Go compares uint32 differences: a step back wraps around and starts a new range too.
    const pStep = r ? p.publishedPort - r.pEnd : -1;
    const tStep = r ? p.targetPort - r.tEnd : -1;
    const isRange = r !== null && r.tEnd !== r.tStart;
    if (!r || p.protocol !== r.protocol || (pStep !== 0 && pStep !== 1) || (tStep !== 0 && tStep !== 1) || (isRange && p.targetPort <= r.tEnd)) {
      flush();
      r = { pStart: p.publishedPort, pEnd: p.publishedPort, tStart: p.targetPort, tEnd: p.targetPort, protocol: p.protocol };
      continue;
    }
    r.pEnd = p.publishedPort;
    r.tEnd = p.targetPort;
  }
  flush();
  return out.join(', ');
}

export const serviceHeaders = { ID: 'ID', Name: 'NAME', Mode: 'MODE', Replicas: 'REPLICAS', Image: 'IMAGE', Ports: 'PORTS' };
export const serviceTable = 'table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}';

export function serviceRows(services: readonly Service[], statuses: readonly ServiceStatus[]): Record<string, string>[] {
  const byId = new Map(statuses.map((s) => [s.serviceId, s]));
  return [...services]
    .sort((a, b) => naturalCompare(a.spec?.annotations?.name ?? '', b.spec?.annotations?.name ?? ''))
    .map((s) => ({
      ID: truncateId(s.id),
      Name: s.spec?.annotations?.name ?? '',
      Mode: modeName(s.spec),
      Replicas: replicasText(s, byId.get(s.id)),
      Image: displayImage(s.spec?.task?.container?.image ?? ''),
      Ports: portsText(servicePorts(s)),
    }));
}

export const taskHeaders = { ID: 'ID', Name: 'NAME', Image: 'IMAGE', Node: 'NODE', DesiredState: 'DESIRED STATE', CurrentState: 'CURRENT STATE', Error: 'ERROR', Ports: 'PORTS' };
export const taskTable = 'table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}';

/** The scheduler's words for a task simply waiting its turn, not a reason worth an ERROR cell. */
const ROUTINE_PENDING = new Set(['', 'pending task scheduling']);

/** Why a task failed, or why a PENDING task cannot be placed. */
export function taskError(t: Task): string {
  const s = t.status;
  if (s?.err) return s.err;
  if (s?.state === 'PENDING' && !ROUTINE_PENDING.has(s.message)) return s.message;
  return '';
}

export interface TaskRowOptions {
  now: number;
  noTrunc?: boolean;
  noResolve?: boolean;
  /** Service id → name. */
  serviceNames?: Record<string, string>;
  /** Node id → hostname. */
  nodeNames?: Record<string, string>;
  /** Table output indents a slot's older tasks with `\_ `. */
  indent?: boolean;
}


/**
 * `service ps` and `stack ps` output from their flags: the ID column alone with `-q`, otherwise
 * the task table (names indented under their slot, as Docker does, unless a custom format).
 */
export function renderTaskList(tasks: readonly Task[], flags: FlagValues, names: Pick<TaskRowOptions, 'serviceNames' | 'nodeNames'>): string {
  const format = String(flags.format ?? '');
  const rows = taskRows(tasks, { now: Date.now(), noTrunc: Boolean(flags['no-trunc']), noResolve: Boolean(flags['no-resolve']), ...names, indent: !format || format.startsWith('table') });
  if (flags.quiet) return rows.map((r) => r.ID + '\n').join('');
  return formatRows(rows, format, taskTable, taskHeaders);
}
/** `service ps` rows: grouped by slot (or node), newest first, older ones indented. */
export function taskRows(tasks: readonly Task[], o: TaskRowOptions): Record<string, string>[] {
  const named = tasks.map((t) => {
    const service = o.noResolve ? t.serviceId : (o.serviceNames?.[t.serviceId] ?? t.serviceName ?? t.serviceId);
    return { t, name: t.slot ? `${service}.${t.slot}` : `${service}.${t.nodeId}` };
  });
  named.sort((a, b) => naturalCompare(a.name, b.name) || (b.t.meta?.createdAt ?? 0) - (a.t.meta?.createdAt ?? 0));
  let prev = '';
  return named.map(({ t, name }) => {
    const shown = o.indent !== false && name === prev ? ` \\_ ${name}` : name;
    prev = name;
    const err = taskError(t);
    const state = t.status?.state ?? 'NEW';
    return {
      ID: o.noTrunc ? t.id : truncateId(t.id),
      Name: shown,
      Image: o.noTrunc ? (t.spec?.container?.image ?? '') : displayImage(t.spec?.container?.image ?? ''),
      Node: o.noResolve ? t.nodeId : (o.nodeNames?.[t.nodeId] ?? t.nodeId),
      DesiredState: prettyState(t.desiredState),
      CurrentState: `${prettyState(state)} ${humanDuration(Math.max(0, o.now - (t.status?.timestamp ?? o.now))).toLowerCase()} ago`,
      Error: err ? `"${o.noTrunc ? err : ellipsis(err, 30)}"` : '',
      Ports: (t.status?.hostPorts ?? []).map((p) => `*:${p.publishedPort}->${p.targetPort}/${p.protocol.toLowerCase()}`).join(','),
    };
  });
}

const lower = (s: string) => s.toLowerCase().replace(/_/g, '-');

/** Go's fmt of a []string: `[a b]`. */
const goList = (xs: readonly string[]) => `[${xs.join(' ')}]`;

/**
 * `service inspect --pretty`: Docker's human-readable template, line for line. `networkNames`
 * maps the network ids of the spec to names; `now` dates the update status.
 */
export function prettyService(s: Service, networkNames: Record<string, string>, now: number): string {
  const spec = s.spec ?? {};
  const task = spec.task;
  const c = task?.container;
  const L: string[] = ['', `ID:\t\t${s.id}`, `Name:\t\t${spec.annotations?.name ?? ''}`];
  const labels = Object.entries(spec.annotations?.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  if (labels.length) L.push('Labels:', ...labels.map(([k, v]) => ` ${k}${v ? `=${v}` : ''}`));
  if (spec.global) L.push('Service Mode:\tGlobal');
  else if (spec.replicated) L.push('Service Mode:\tReplicated', ` Replicas:\t${spec.replicated.replicas}`);
  else if (spec.replicatedJob) L.push('Service Mode:\tReplicated job', ` Max concurrent:\t${spec.replicatedJob.maxConcurrent}`, ` Total completions:\t${spec.replicatedJob.totalCompletions}`);
  else if (spec.globalJob) L.push('Service Mode:\tGlobal job');
  else L.push('Service Mode:');
  const us = s.updateStatus;
  if (us && us.state !== 'UNKNOWN') {
    L.push('UpdateStatus:', ` State:\t\t${us.state.toLowerCase()}`);
    if (us.startedAt) L.push(` Started:\t${humanDuration(now - us.startedAt)} ago`);
    if (us.state === 'COMPLETED' && us.completedAt) L.push(` Completed:\t${humanDuration(now - us.completedAt)} ago`);
    L.push(` Message:\t${us.message}`);
  }
  L.push('Placement:');
  const pl = task?.placement;
  if (pl?.constraints.length) L.push(` Constraints:\t${goList(pl.constraints)}`);
  if (pl?.preferences.length) L.push(` Preferences:   ${goList(pl.preferences.map((p) => `spread=${p.spreadDescriptor}`))}`);
  if (pl?.maxReplicas) L.push(` Max Replicas Per Node:   ${pl.maxReplicas}`);
  for (const [title, cfg, word] of [
    ['UpdateConfig', spec.update, 'Update'],
    ['RollbackConfig', spec.rollback, 'Rollback'],
  ] as const) {
    if (!cfg) continue;
    L.push(`${title}:`, ` Parallelism:\t${cfg.parallelism}`);
    if (cfg.delayMs > 0) L.push(` Delay:\t\t${formatDuration(cfg.delayMs)}`);
    L.push(` On failure:\t${lower(cfg.failureAction)}`);
    if (cfg.monitorMs > 0) L.push(` Monitoring Period: ${formatDuration(cfg.monitorMs)}`);
    L.push(` Max failure ratio: ${Number(cfg.maxFailureRatio.toPrecision(6))}`, ` ${word} order:${word === 'Update' ? '      ' : '    '}${lower(cfg.order)}`);
  }
  L.push('ContainerSpec:', ` Image:\t\t${c?.image ?? ''}`);
  if (c?.command.length) L.push(` Command:\t${c.command.join(' ')}`);
  if (c?.args.length) L.push(` Args:\t\t${c.args.join(' ')}`);
  if (c?.env.length) L.push(` Env:\t\t${c.env.join(' ')}`);
  if (c?.dir) L.push(` Dir:\t\t${c.dir}`);
  if (c?.user) L.push(` User: ${c.user}`);
  if (c?.capAdd.length || c?.capDrop.length) {
    L.push('Capabilities:');
    if (c.capAdd.length) L.push(` Add: ${c.capAdd.join(', ')}`);
    if (c.capDrop.length) L.push(` Drop: ${c.capDrop.join(', ')}`);
  }
  if (c?.mounts.length) {
    L.push('Mounts:');
    for (const m of c.mounts) L.push(` Target:\t${m.target}`, `  Source:\t${m.source}`, `  ReadOnly:\t${m.readOnly}`, `  Type:\t\t${m.type.toLowerCase()}`);
  }
  if (c?.configs.length) {
    L.push('Configs:');
    for (const r of c.configs) L.push(` Target:\t${r.file?.name ?? ''}`, `  Source:\t${r.configName}`);
  }
  if (c?.log && (c.log.maxSize || c.log.maxFile)) {
    L.push('Log Driver:', ' LogOpts:');
    if (c.log.maxFile) L.push(`  max-file:       ${c.log.maxFile}`);
    if (c.log.maxSize) L.push(`  max-size:       ${c.log.maxSize}`);
  }
  const res = task?.resources;
  if (res) {
    L.push('Resources:');
    const r = res.reservations;
    if (r && (r.nanoCpus > 0 || r.memoryBytes > 0)) {
      L.push(' Reservations:');
      if (r.nanoCpus > 0) L.push(`  CPU:\t\t${formatCpus(r.nanoCpus)}`);
      if (r.memoryBytes > 0) L.push(`  Memory:\t${formatBytes(r.memoryBytes)}`);
    }
    const l = res.limits;
    if (l && (l.nanoCpus > 0 || l.memoryBytes > 0 || l.pids > 0)) {
      L.push(' Limits:');
      if (l.nanoCpus > 0) L.push(`  CPU:\t\t${formatCpus(l.nanoCpus)}`);
      if (l.memoryBytes > 0) L.push(`  Memory:\t${formatBytes(l.memoryBytes)}`);
      if (l.pids > 0) L.push(`  PIDs:\t\t${l.pids}`);
    }
  }
  if (task?.networks.length) L.push(`Networks:${task.networks.map((n) => ` ${networkNames[n.target] ?? n.target}`).join('')}`);
  L.push(`Endpoint Mode:\t${(spec.endpoint?.mode ?? 'VIP').toLowerCase()}`);
  const ports = servicePorts(s);
  if (ports.length) {
    L.push('Ports:');
    for (const p of ports) L.push(` PublishedPort = ${p.publishedPort}`, `  Protocol = ${p.protocol.toLowerCase()}`, `  TargetPort = ${p.targetPort}`, `  PublishMode = ${p.publishMode.toLowerCase()}`);
  }
  const h = c?.healthcheck;
  if (h) {
    L.push(' Healthcheck:', `  Interval = ${formatDuration(h.intervalMs)}`, `  Retries = ${h.retries}`, `  StartPeriod =\t${formatDuration(h.startPeriodMs)}`, `  Timeout =\t${formatDuration(h.timeoutMs)}`);
    if (h.test.length) L.push('  Tests:', ...h.test.map((t) => `\t Test = ${t}`));
  }
  return L.join('\n') + '\n';
}
