// From flags to a ServiceSpec, as Docker's CLI builds one: `serviceSpecFromFlags` for
// `service create`, `applyServiceUpdate` for `service update` (flags applied to the current spec).
// Both are pure: files (--env-file) and the environment (`-e KEY`) come in through `SpecIO`, and
// network names are resolved to ids by the caller. Messages the user did not ask for stay unset
// (null) so the manager applies swarmkit's defaults; a message the user touches is filled with
// those same defaults first (restart delay 5s, update parallelism 1, monitor 5s...).
import {
  ServiceSpec,
  type ConfigReference,
  type ContainerSpec,
  type HealthConfig,
  type Mount,
  type NetworkAttachmentConfig,
  type PortConfig,
  type Resources,
  type RestartPolicy,
  type RestartPolicy_Condition,
  type TaskSpec,
  type UpdateConfig,
  type UpdateConfig_FailureAction,
  type UpdateConfig_Order,
} from '../proto/gen/objects.js';
import type { FlagValues } from '../util/flags.js';
import { UserError } from '../util/command.js';
import {
  createFlags,
  envEntry,
  envKey,
  FlagReader,
  invalidFlag,
  mergeEnv,
  normalizeCapability,
  parseConfigReference,
  parseConstraint,
  parseEnvFile,
  parseKeyValues,
  parseLogOpts,
  parseMount,
  parseNetworkAttachment,
  parsePlacementPref,
  parsePublish,
  updateFlags,
} from './serviceflags.js';

export interface SpecIO {
  /** Reads an --env-file. */
  readFile?: (path: string) => string;
  /** Where `-e KEY` finds KEY's value (the CLI's own environment). */
  env?: Record<string, string | undefined>;
}

export const DEFAULT_RESTART: RestartPolicy = { condition: 'ANY', delayMs: 5000, maxAttempts: 0, windowMs: 0 };
export const DEFAULT_UPDATE: UpdateConfig = { parallelism: 1, delayMs: 0, failureAction: 'PAUSE', monitorMs: 5000, maxFailureRatio: 0, order: 'STOP_FIRST' };

/** A deep copy with every field present (protobuf defaults filled in). */
export function normalizeSpec(spec: ServiceSpec): ServiceSpec {
  return ServiceSpec.decode(ServiceSpec.encode(spec));
}

/** swarmkit's rule for names: a DNS label of letters, digits, '-' and '_'. */
function checkServiceName(name: string): void {
  if (name.length > 63 || !/^[a-zA-Z0-9](?:[-_]*[A-Za-z0-9]+)*$/.test(name)) {
    throw new UserError(`invalid name "${name}": a service name is at most 63 letters, digits, '-' or '_', starting and ending with a letter or digit`);
  }
}

const emptyContainer = (image: string): ContainerSpec => ({
  image,
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
  tty: false,
  configs: [],
});

const emptyResources = (): Resources => ({ nanoCpus: 0, memoryBytes: 0, generic: [], pids: 0 });

const RESTART_CONDITIONS = ['none', 'on-failure', 'any'] as const;
const toRestartCondition = (c: (typeof RESTART_CONDITIONS)[number]): RestartPolicy_Condition => (c === 'on-failure' ? 'ON_FAILURE' : c === 'none' ? 'NONE' : 'ANY');

/** Restart flags over `base` (the current policy, or swarmkit's default when there is none). */
function applyRestart(f: FlagReader, base: RestartPolicy | null | undefined): RestartPolicy | null | undefined {
  if (!['restart-condition', 'restart-delay', 'restart-max-attempts', 'restart-window'].some((n) => f.given(n))) return base;
  const p = { ...(base ?? DEFAULT_RESTART) };
  const cond = f.choice('restart-condition', RESTART_CONDITIONS);
  if (cond) p.condition = toRestartCondition(cond);
  p.delayMs = f.duration('restart-delay') ?? p.delayMs;
  p.maxAttempts = f.uint('restart-max-attempts') ?? p.maxAttempts;
  p.windowMs = f.duration('restart-window') ?? p.windowMs;
  return p;
}

/** --update-* or --rollback-* over the current config (or the default one). */
function applyUpdateConfig(f: FlagReader, prefix: 'update' | 'rollback', base: UpdateConfig | null | undefined): UpdateConfig | null | undefined {
  const names = ['parallelism', 'delay', 'monitor', 'failure-action', 'max-failure-ratio', 'order'].map((n) => `${prefix}-${n}`);
  if (!names.some((n) => f.given(n))) return base;
  const c = { ...(base ?? DEFAULT_UPDATE) };
  c.parallelism = f.uint(`${prefix}-parallelism`) ?? c.parallelism;
  c.delayMs = f.duration(`${prefix}-delay`) ?? c.delayMs;
  c.monitorMs = f.duration(`${prefix}-monitor`) ?? c.monitorMs;
  const actions = prefix === 'update' ? (['pause', 'continue', 'rollback'] as const) : (['pause', 'continue'] as const);
  const action = f.choice(`${prefix}-failure-action`, actions);
  if (action) c.failureAction = action.toUpperCase() as UpdateConfig_FailureAction;
  const ratio = f.float(`${prefix}-max-failure-ratio`);
  if (ratio !== undefined) {
    if (ratio > 1) throw invalidFlag(`${prefix}-max-failure-ratio`, f.str(`${prefix}-max-failure-ratio`)!, 'expected a number between 0 and 1');
    c.maxFailureRatio = ratio;
  }
  const order = f.choice(`${prefix}-order`, ['start-first', 'stop-first'] as const);
  if (order) c.order = order.replace('-', '_').toUpperCase() as UpdateConfig_Order;
  return c;
}

const HEALTH_FLAGS = ['health-cmd', 'health-interval', 'health-timeout', 'health-retries', 'health-start-period'];

/** Docker's health flags: --no-healthcheck alone, or any --health-* over the current check. */
function applyHealth(f: FlagReader, base: HealthConfig | null | undefined): HealthConfig | null | undefined {
  const noCheck = f.given('no-healthcheck') && f.bool('no-healthcheck');
  const settings = HEALTH_FLAGS.some((n) => f.given(n));
  if (noCheck && settings) throw new UserError('--no-healthcheck conflicts with --health-* options');
  if (noCheck) return { test: ['NONE'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0 };
  if (!settings) return f.given('no-healthcheck') && base?.test[0] === 'NONE' ? null : base;
  const h: HealthConfig = base ? { ...base, test: base.test[0] === 'NONE' ? [] : [...base.test] } : { test: [], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0 };
  const cmd = f.str('health-cmd');
  if (cmd !== undefined) h.test = cmd ? ['CMD-SHELL', cmd] : [];
  h.intervalMs = f.duration('health-interval') ?? h.intervalMs;
  h.timeoutMs = f.duration('health-timeout') ?? h.timeoutMs;
  h.startPeriodMs = f.duration('health-start-period') ?? h.startPeriodMs;
  const retries = f.int('health-retries');
  if (retries !== undefined) {
    if (retries < 0) throw invalidFlag('health-retries', String(retries), '--health-retries cannot be negative');
    h.retries = retries;
  }
  return h;
}

/** --limit-* and --reserve-*: only the values given change. */
function applyResources(f: FlagReader, task: TaskSpec): void {
  const limits = { cpu: f.cpus('limit-cpu'), mem: f.bytes('limit-memory'), pids: f.int('limit-pids') };
  const reserve = { cpu: f.cpus('reserve-cpu'), mem: f.bytes('reserve-memory') };
  if (limits.pids !== undefined && limits.pids < 0) throw invalidFlag('limit-pids', String(limits.pids), 'expected 0 (unlimited) or more');
  if (Object.values(limits).every((v) => v === undefined) && Object.values(reserve).every((v) => v === undefined)) return;
  task.resources ??= { limits: null, reservations: null };
  if (Object.values(limits).some((v) => v !== undefined)) {
    const l = (task.resources.limits ??= emptyResources());
    l.nanoCpus = limits.cpu ?? l.nanoCpus;
    l.memoryBytes = limits.mem ?? l.memoryBytes;
    l.pids = limits.pids ?? l.pids;
  }
  if (Object.values(reserve).some((v) => v !== undefined)) {
    const r = (task.resources.reservations ??= emptyResources());
    r.nanoCpus = reserve.cpu ?? r.nanoCpus;
    r.memoryBytes = reserve.mem ?? r.memoryBytes;
  }
}

/** Container settings that create and update set the same way (a given flag replaces the value). */
function applyContainerScalars(f: FlagReader, c: ContainerSpec): void {
  c.hostname = f.str('hostname') ?? c.hostname;
  c.dir = f.str('workdir') ?? c.dir;
  c.user = f.str('user') ?? c.user;
  c.stopSignal = f.str('stop-signal') ?? c.stopSignal;
  c.stopGracePeriodMs = f.duration('stop-grace-period') ?? c.stopGracePeriodMs;
  c.command = f.words('entrypoint') ?? c.command;
  if (f.given('read-only')) c.readOnly = f.bool('read-only');
  if (f.given('tty')) c.tty = f.bool('tty');
  if (f.given('log-opt')) c.log = parseLogOpts('log-opt', f.list('log-opt'));
  c.healthcheck = applyHealth(f, c.healthcheck);
}

function applyEndpointMode(f: FlagReader, spec: ServiceSpec): void {
  const mode = f.choice('endpoint-mode', ['vip', 'dnsrr'] as const);
  if (mode) (spec.endpoint ??= { mode: 'VIP', ports: [] }).mode = mode === 'dnsrr' ? 'DNSRR' : 'VIP';
}

const placementOf = (task: TaskSpec) => (task.placement ??= { constraints: [], preferences: [], maxReplicas: 0, platforms: [] });

const MODES = ['replicated', 'global', 'replicated-job', 'global-job'] as const;

/** The ServiceSpec `service create [OPTIONS] IMAGE [COMMAND] [ARG...]` asks for. */
export function serviceSpecFromFlags(flags: FlagValues, args: readonly string[], io: SpecIO = {}): ServiceSpec {
  const f = new FlagReader(flags, createFlags);
  const env = io.env ?? {};
  const [image, ...cmdArgs] = args;
  if (!image) throw new UserError('"service create" requires an IMAGE: shoal service create [OPTIONS] IMAGE [COMMAND] [ARG...]');
  const name = f.str('name') ?? '';
  if (name) checkServiceName(name);

  let envList: string[] = [];
  for (const path of f.list('env-file')) {
    let text: string;
    try {
      text = (io.readFile ?? (() => { throw new Error('no file reader'); }))(path);
    } catch (e) {
      throw new UserError(`open ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
    envList = mergeEnv(envList, parseEnvFile(path, text, env));
  }
  envList = mergeEnv(envList, f.list('env').map((v) => envEntry('env', v, env)).filter((v): v is string => v !== undefined));

  const container: ContainerSpec = {
    ...emptyContainer(image),
    labels: parseKeyValues('container-label', f.list('container-label')),
    args: [...cmdArgs],
    env: envList,
    mounts: f.list('mount').map((m) => parseMount('mount', m)),
    capAdd: f.list('cap-add').map((c) => normalizeCapability('cap-add', c)),
    capDrop: f.list('cap-drop').map((c) => normalizeCapability('cap-drop', c)),
  };
  applyContainerScalars(f, container);
  checkDuplicateMounts(container.mounts);
  container.configs = updateConfigs([], f.list('config').map((c) => parseConfigReference('config', c)), [], 'config');

  const task: TaskSpec = { container, resources: null, restart: null, placement: null, networks: [], forceUpdate: 0 };
  applyResources(f, task);
  task.restart = applyRestart(f, null);
  const constraints = f.list('constraint').map((c) => parseConstraint('constraint', c));
  const prefs = f.list('placement-pref').map((p) => parsePlacementPref('placement-pref', p));
  const maxPerNode = f.uint('replicas-max-per-node');
  if (constraints.length || prefs.length || maxPerNode !== undefined) {
    task.placement = { constraints, preferences: prefs, maxReplicas: maxPerNode ?? 0, platforms: [] };
  }
  task.networks = f.list('network').map((n) => parseNetworkAttachment('network', n));
  const dupNet = task.networks.find((n, i) => task.networks.findIndex((m) => m.target === n.target) !== i);
  if (dupNet) throw invalidFlag('network', dupNet.target, 'network given twice');

  const spec: ServiceSpec = {
    annotations: { name, labels: parseKeyValues('label', f.list('label')) },
    task,
    update: applyUpdateConfig(f, 'update', null),
    rollback: applyUpdateConfig(f, 'rollback', null),
    endpoint: { mode: 'VIP', ports: checkPortConflicts(f.list('publish').flatMap((p) => parsePublish('publish', p))) },
  };
  applyEndpointMode(f, spec);
  setMode(f, spec);
  return normalizeSpec(spec);
}

function setMode(f: FlagReader, spec: ServiceSpec): void {
  const mode = f.choice('mode', MODES) ?? 'replicated';
  const replicas = f.uint('replicas');
  const maxConcurrent = f.uint('max-concurrent');
  if (replicas !== undefined && (mode === 'global' || mode === 'global-job')) throw new UserError(`replicas can only be used with replicated or replicated-job mode (not with --mode ${mode})`);
  if (maxConcurrent !== undefined && mode !== 'replicated-job') throw new UserError(`max-concurrent can only be used with replicated-job mode (not with --mode ${mode})`);
  if (f.given('replicas-max-per-node') && mode !== 'replicated' && mode !== 'replicated-job') throw new UserError(`replicas-max-per-node can only be used with replicated mode (not with --mode ${mode})`);
  if (mode === 'replicated') spec.replicated = { replicas: replicas ?? 1 };
  else if (mode === 'global') spec.global = {};
  else if (mode === 'global-job') spec.globalJob = {};
  else spec.replicatedJob = { totalCompletions: replicas ?? maxConcurrent ?? 1, maxConcurrent: maxConcurrent ?? replicas ?? 1 };
}

function checkDuplicateMounts(mounts: readonly Mount[]): void {
  const dup = mounts.find((m, i) => mounts.findIndex((n) => n.target === m.target) !== i);
  if (dup) throw new UserError(`duplicate mount target "${dup.target}"`);
}

const portKey = (p: PortConfig) => `${p.publishedPort}/${p.protocol}/${p.publishMode}`;

/** Two ports published on the same node port and protocol cannot both exist. */
function checkPortConflicts(ports: PortConfig[]): PortConfig[] {
  const seen = new Map<string, PortConfig>();
  for (const p of ports) {
    if (!p.publishedPort) continue;
    const other = seen.get(portKey(p));
    if (other && other.targetPort !== p.targetPort) {
      throw new UserError(`port ${p.publishedPort}/${p.protocol.toLowerCase()} is published twice (to ${other.targetPort} and ${p.targetPort})`);
    }
    seen.set(portKey(p), p);
  }
  return ports;
}

export interface UpdateContext extends SpecIO {
  /** What --network-add/--network-rm name, resolved to network ids by the caller. */
  networkIds?: Record<string, string>;
}

/** The flags of `service update` that may not accompany --rollback. */
const ROLLBACK_ALONE = new Set(['rollback', 'detach', 'quiet']);

/** The names of update flags the user gave (for "--rollback may not be combined" and no-op checks). */
export function givenUpdateFlags(flags: FlagValues): string[] {
  const f = new FlagReader(flags, updateFlags);
  return updateFlags.filter((s) => f.given(s.name)).map((s) => s.name);
}

/** `service update`: the current spec with the flags applied (a new object; `current` is untouched). */
export function applyServiceUpdate(current: ServiceSpec, flags: FlagValues, ctx: UpdateContext = {}): ServiceSpec {
  const f = new FlagReader(flags, updateFlags);
  if (f.bool('rollback')) {
    const others = givenUpdateFlags(flags).filter((n) => !ROLLBACK_ALONE.has(n));
    if (others.length) throw new UserError(`other flags may not be combined with --rollback (got --${others.join(', --')})`);
    return normalizeSpec(current);
  }
  const spec = normalizeSpec(current);
  const env = ctx.env ?? {};
  spec.annotations ??= { name: '', labels: {} };
  const task = (spec.task ??= { container: null, resources: null, restart: null, placement: null, networks: [], forceUpdate: 0 });
  const c = (task.container ??= emptyContainer(''));

  // labels
  spec.annotations.labels = updateMap(spec.annotations.labels, parseKeyValues('label-add', f.list('label-add')), f.list('label-rm'));
  c.labels = updateMap(c.labels, parseKeyValues('container-label-add', f.list('container-label-add')), f.list('container-label-rm'));

  // container
  const image = f.str('image');
  if (image !== undefined) {
    if (!image.trim()) throw invalidFlag('image', image, 'an image reference is required');
    c.image = image;
  }
  c.args = f.words('args') ?? c.args;
  applyContainerScalars(f, c);
  const added = f.list('env-add').map((v) => envEntry('env-add', v, env)).filter((v): v is string => v !== undefined);
  const removed = new Set(f.list('env-rm').map(envKey));
  c.env = mergeEnv(c.env, added).filter((e) => !removed.has(envKey(e)));
  c.mounts = updateMounts(c.mounts, f);
  c.configs = updateConfigs(c.configs, f.list('config-add').map((x) => parseConfigReference('config-add', x)), f.list('config-rm'), 'config-add');
  const capAdd = f.list('cap-add').map((x) => normalizeCapability('cap-add', x));
  const capDrop = f.list('cap-drop').map((x) => normalizeCapability('cap-drop', x));
  if (capAdd.length || capDrop.length) {
    c.capAdd = [...new Set([...c.capAdd, ...capAdd])].filter((x) => !capDrop.includes(x)).sort();
    c.capDrop = [...new Set([...c.capDrop, ...capDrop])].filter((x) => !capAdd.includes(x)).sort();
  }

  // task
  applyResources(f, task);
  task.restart = applyRestart(f, task.restart);
  updatePlacement(f, task);
  task.networks = updateNetworks(task.networks, f, ctx.networkIds ?? {});
  if (f.bool('force')) task.forceUpdate += 1;

  // service
  updateReplicas(f, spec);
  spec.update = applyUpdateConfig(f, 'update', spec.update);
  spec.rollback = applyUpdateConfig(f, 'rollback', spec.rollback);
  applyEndpointMode(f, spec);
  if (f.given('publish-add') || f.given('publish-rm')) {
    const ep = (spec.endpoint ??= { mode: 'VIP', ports: [] });
    ep.ports = updatePorts(ep.ports, f);
  }
  return normalizeSpec(spec);
}

function updateMap(base: Record<string, string>, add: Record<string, string>, rm: readonly string[]): Record<string, string> {
  const out = { ...base, ...add };
  for (const k of rm) delete out[k];
  return out;
}

/** --mount-add replaces a mount with the same target; --mount-rm removes by target. */
function updateMounts(mounts: Mount[], f: FlagReader): Mount[] {
  const adds = f.list('mount-add').map((m) => parseMount('mount-add', m));
  checkDuplicateMounts(adds);
  const rm = new Set(f.list('mount-rm'));
  if (!adds.length && !rm.size) return mounts;
  const byTarget = new Map<string, Mount>(mounts.map((m) => [m.target, m]));
  for (const m of adds) byTarget.set(m.target, m);
  return [...byTarget.values()].filter((m) => !rm.has(m.target)).sort((a, b) => (a.source === b.source ? cmp(a.target, b.target) : cmp(a.source, b.source)));
}

/**
 * --config-rm removes the references to a config (by name or id); --config-add adds one, replacing
 * one at the same target. Two of the added at one target are refused, naming the target.
 */
function updateConfigs(refs: readonly ConfigReference[], adds: readonly ConfigReference[], rm: readonly string[], flag: string): ConfigReference[] {
  const gone = new Set(rm);
  const out = refs.filter((r) => !gone.has(r.configName) && !gone.has(r.configId));
  const added = new Set<string>();
  for (const a of adds) {
    const target = a.file?.name ?? '';
    if (added.has(target)) throw invalidFlag(flag, a.configName, `duplicate config target ${target}`);
    added.add(target);
    const i = out.findIndex((r) => r.file?.name === target);
    if (i >= 0) out[i] = a;
    else out.push(a);
  }
  return out;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function updatePlacement(f: FlagReader, task: TaskSpec): void {
  const addC = f.list('constraint-add').map((c) => parseConstraint('constraint-add', c));
  const rmC = new Set(f.list('constraint-rm'));
  const addP = f.list('placement-pref-add').map((p) => parsePlacementPref('placement-pref-add', p));
  const rmP = new Set(f.list('placement-pref-rm').map((p) => parsePlacementPref('placement-pref-rm', p).spreadDescriptor));
  const maxPerNode = f.uint('replicas-max-per-node');
  if (!addC.length && !rmC.size && !addP.length && !rmP.size && maxPerNode === undefined) return;
  const p = placementOf(task);
  if (addC.length || rmC.size) p.constraints = [...new Set([...p.constraints, ...addC])].filter((c) => !rmC.has(c)).sort();
  if (addP.length || rmP.size) p.preferences = [...p.preferences.filter((x) => !rmP.has(x.spreadDescriptor)), ...addP];
  if (maxPerNode !== undefined) p.maxReplicas = maxPerNode;
}

/** --network-rm by name or id, --network-add refusing a network the service is already on. */
function updateNetworks(networks: NetworkAttachmentConfig[], f: FlagReader, ids: Record<string, string>): NetworkAttachmentConfig[] {
  const adds = f.list('network-add').map((n) => parseNetworkAttachment('network-add', n));
  const rm = f.list('network-rm');
  if (!adds.length && !rm.length) return networks;
  const idOf = (ref: string) => ids[ref] ?? ref;
  const gone = new Set(rm.flatMap((r) => [r, idOf(r)]));
  const out = networks.filter((n) => !gone.has(n.target) && !gone.has(idOf(n.target)));
  for (const a of adds) {
    const id = idOf(a.target);
    if (out.some((n) => idOf(n.target) === id)) throw new UserError(`service is already attached to network ${a.target}`);
    out.push({ ...a, target: id });
  }
  return out.sort((a, b) => cmp(a.target, b.target));
}

function updateReplicas(f: FlagReader, spec: ServiceSpec): void {
  const replicas = f.uint('replicas');
  const maxConcurrent = f.uint('max-concurrent');
  if (replicas !== undefined) {
    if (spec.replicated) spec.replicated.replicas = replicas;
    else if (spec.replicatedJob) spec.replicatedJob.totalCompletions = replicas;
    else throw new UserError('replicas can only be used with replicated or replicated-job mode');
  }
  if (maxConcurrent !== undefined) {
    if (!spec.replicatedJob) throw new UserError('max-concurrent can only be used with replicated-job mode');
    spec.replicatedJob.maxConcurrent = maxConcurrent;
  }
}

/** Ports as Docker updates them: removals by target port, protocol and mode; additions replace a port published on the same node port. */
function updatePorts(ports: PortConfig[], f: FlagReader): PortConfig[] {
  const rm = f.list('publish-rm').flatMap((p) => parsePublish('publish-rm', p));
  const adds = checkPortConflicts(f.list('publish-add').flatMap((p) => parsePublish('publish-add', p)));
  let out = ports.filter((p) => !rm.some((r) => r.targetPort === p.targetPort && r.protocol === p.protocol && r.publishMode === p.publishMode));
  for (const a of adds) {
    out = out.filter((p) => !(a.publishedPort ? p.publishedPort === a.publishedPort && p.protocol === a.protocol && p.publishMode === a.publishMode : p.targetPort === a.targetPort && p.protocol === a.protocol && p.publishMode === a.publishMode && !p.publishedPort));
    out.push(a);
  }
  const key = (p: PortConfig) => `${p.publishedPort}:${p.targetPort}/${p.protocol.toLowerCase()}/${p.publishMode.toLowerCase()}`;
  return out.sort((a, b) => cmp(key(a), key(b)));
}
