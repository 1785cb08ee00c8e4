// Checks of a service spec before it is stored, the way swarmkit's controlapi checks them, so a
// mistake is reported by `service create/update` instead of as tasks that never start. Every
// message names the bad value. The checks that need cluster state (names in use, networks,
// published ports other services hold) come last, in `normalizeServiceSpec`.
import {
  Mount_TypeValues,
  PortConfig_ProtocolValues,
  PortConfig_PublishModeValues,
  EndpointSpec_ResolutionModeValues,
  RestartPolicy_ConditionValues,
  ServiceSpec,
  UpdateConfig_FailureActionValues,
  UpdateConfig_OrderValues,
  type ConfigReference,
  type ContainerSpec,
  type EndpointSpec,
  type HealthConfig,
  type Mount,
  type NetworkAttachmentConfig,
  type Resources,
  type ResourceRequirements,
  type RestartPolicy,
  type TaskSpec,
  type UpdateConfig,
} from '../../proto/gen/objects.js';
import { validateServiceEndpoint } from '../allocator/checks.js';
import { contains, parseCidr, parseIp } from '../allocator/ipam/ipv4.js';
import { ConstraintError, validatePlacement } from '../scheduler/constraint.js';
import { copy } from '../store/blank.js';
import type { ReadView } from '../store/memory.js';
import { invalid, notFound, precondition } from './errors.js';
import { label, lookup } from './resolve.js';

export type ServiceModeName = 'replicated' | 'global' | 'replicatedJob' | 'globalJob';
const MODES: readonly ServiceModeName[] = ['replicated', 'global', 'replicatedJob', 'globalJob'];
const MODE_WORDS: Record<ServiceModeName, string> = { replicated: 'replicated', global: 'global', replicatedJob: 'replicated-job', globalJob: 'global-job' };

/** swarmkit's rule: a DNS label (letters, digits, inner '-' or '_'), at most 63 characters. */
const DNS_NAME = /^[a-zA-Z0-9](?:[-_]*[a-zA-Z0-9]+)*$/;
const MAX_NAME = 63;
/** Docker's names for volumes: what `docker volume create` accepts. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const MIN_NANO_CPUS = 1e6; // 0.001 CPU
const MIN_MEMORY = 4 * 1024 * 1024;

const oneOf = <T extends string>(values: readonly T[], v: unknown): v is T => values.includes(v as T);
const words = (values: readonly string[]): string => values.map((v) => v.toLowerCase().replace(/_/g, '-')).join(', ');

export function validateServiceName(name: string): void {
  if (!name) throw invalid('a service needs a name (--name)');
  if (name.length > MAX_NAME) throw invalid(`invalid service name "${name}": it has ${name.length} characters, at most ${MAX_NAME} are allowed`);
  if (!DNS_NAME.test(name)) {
    throw invalid(`invalid service name "${name}": a service name must be valid as a DNS name component: letters, digits and inner '-' or '_', starting and ending with a letter or digit`);
  }
}

/** The one mode a spec sets; none set is Docker's default (replicated, 1 replica). */
export function modeOf(spec: ServiceSpec): ServiceModeName | undefined {
  const set = MODES.filter((m) => spec[m] != null);
  if (set.length > 1) throw invalid(`a service has one mode, but ${set.map((m) => MODE_WORDS[m]).join(' and ')} were given`);
  return set[0] ?? (spec.mode && oneOf(MODES, spec.mode) ? spec.mode : undefined);
}

export const modeWord = (m: ServiceModeName): string => MODE_WORDS[m];

/** The checks that need nothing but the spec. */
export function validateServiceSpec(spec: ServiceSpec): void {
  const name = spec.annotations?.name ?? '';
  validateServiceName(name);
  modeOf(spec);
  validateTaskSpec(spec.task, name);
  validateUpdateConfig(spec.update, 'update', name);
  validateUpdateConfig(spec.rollback, 'rollback', name);
  validateEndpoint(spec.endpoint, name);
}

export function validateTaskSpec(task: TaskSpec | null | undefined, service: string): void {
  const container = task?.container;
  if (!container) throw invalid(`service ${service}: the task has no container spec`);
  validateContainer(container, service);
  validateResources(task.resources, service);
  validateRestartPolicy(task.restart, service);
  try {
    validatePlacement(task.placement);
  } catch (e) {
    throw invalid(`service ${service}: ${e instanceof ConstraintError ? e.message : (e as Error).message}`);
  }
}

function validateContainer(c: ContainerSpec, service: string): void {
  if (!c.image) throw invalid(`service ${service}: an image is required`);
  if (/\s/.test(c.image)) throw invalid(`service ${service}: invalid image reference ${JSON.stringify(c.image)}: it contains white space`);
  for (const e of c.env) {
    if (e === '' || e.startsWith('=')) throw invalid(`service ${service}: invalid environment variable ${JSON.stringify(e)}: expected NAME=VALUE`);
  }
  if (c.stopGracePeriodMs < 0) throw invalid(`service ${service}: the stop grace period cannot be negative (${c.stopGracePeriodMs}ms)`);
  validateMounts(c.mounts, service);
  validateConfigReferences(c.configs, service);
  if (c.healthcheck) validateHealthcheck(c.healthcheck, service);
}

/** A config's file target as stored: `/NAME` when none was given, relative paths under `/`. */
export function configTarget(ref: Pick<ConfigReference, 'configName' | 'file'>): string {
  const target = ref.file?.name || ref.configName;
  return target.startsWith('/') ? target : `/${target}`;
}

function validateConfigReferences(refs: readonly ConfigReference[], service: string): void {
  for (const r of refs) {
    const which = r.configName || r.configId;
    if (!which) throw invalid(`service ${service}: a config reference needs the config's name or id`);
    const f = r.file;
    if (!f) continue;
    if (f.mode > 0o777) throw invalid(`service ${service}: invalid file mode ${f.mode.toString(8)} for config ${which}: at most 0777`);
    for (const [what, v] of [['uid', f.uid], ['gid', f.gid]] as const) {
      if (v !== '' && !/^\d+$/.test(v)) throw invalid(`service ${service}: invalid ${what} ${JSON.stringify(v)} for config ${which}: expected a number`);
    }
  }
}

function validateMounts(mounts: readonly Mount[], service: string): void {
  const targets = new Set<string>();
  for (const m of mounts) {
    if (!oneOf(Mount_TypeValues, m.type)) throw invalid(`service ${service}: invalid mount type ${JSON.stringify(m.type)}: expected ${words(Mount_TypeValues)}`);
    const type = m.type.toLowerCase();
    if (!m.target) throw invalid(`service ${service}: a ${type} mount needs a target (dst=/path in the container)`);
    if (!m.target.startsWith('/')) throw invalid(`service ${service}: invalid mount target ${JSON.stringify(m.target)}: it must be an absolute path`);
    if (m.target === '/') throw invalid(`service ${service}: invalid mount target "/": a mount cannot replace the container's root`);
    if (targets.has(m.target)) throw invalid(`service ${service}: duplicate mount point ${m.target}`);
    targets.add(m.target);
    if (m.type === 'BIND') {
      if (!m.source) throw invalid(`service ${service}: the bind mount at ${m.target} needs a source (src=/path on the node)`);
      if (!m.source.startsWith('/')) throw invalid(`service ${service}: invalid bind mount source ${JSON.stringify(m.source)}: it must be an absolute path`);
    } else if (m.type === 'VOLUME') {
      if (m.source && !VOLUME_NAME.test(m.source)) {
        throw invalid(`service ${service}: invalid volume name ${JSON.stringify(m.source)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      }
    } else if (m.source) {
      throw invalid(`service ${service}: the tmpfs mount at ${m.target} cannot have a source (got ${JSON.stringify(m.source)})`);
    }
    if (m.tmpfsSizeBytes < 0) throw invalid(`service ${service}: invalid tmpfs size ${m.tmpfsSizeBytes} for ${m.target}: it cannot be negative`);
    if (m.tmpfsSizeBytes > 0 && m.type !== 'TMPFS') throw invalid(`service ${service}: a tmpfs size was given for the ${type} mount at ${m.target}`);
  }
}

function validateHealthcheck(h: HealthConfig, service: string): void {
  const first = h.test[0];
  if (first !== undefined && !['NONE', 'CMD', 'CMD-SHELL'].includes(first)) {
    throw invalid(`service ${service}: invalid healthcheck test ${JSON.stringify(h.test)}: it starts with NONE, CMD or CMD-SHELL`);
  }
  if ((first === 'CMD' || first === 'CMD-SHELL') && h.test.length < 2) throw invalid(`service ${service}: the healthcheck ${first} has no command`);
  for (const [what, v] of [['interval', h.intervalMs], ['timeout', h.timeoutMs], ['start period', h.startPeriodMs]] as const) {
    if (v < 0) throw invalid(`service ${service}: the healthcheck ${what} cannot be negative (${v}ms)`);
  }
  if (h.retries < 0) throw invalid(`service ${service}: the healthcheck retries cannot be negative (${h.retries})`);
}

const cpus = (nano: number): string => `${nano / 1e9}`;
const mib = (bytes: number): string => `${Math.round((bytes / (1024 * 1024)) * 100) / 100}MiB`;

function validateResourceSet(r: Resources | null | undefined, which: 'limit' | 'reservation', service: string): void {
  if (!r) return;
  if (r.nanoCpus < 0 || (r.nanoCpus !== 0 && r.nanoCpus < MIN_NANO_CPUS)) {
    throw invalid(`service ${service}: invalid cpu ${which} ${cpus(r.nanoCpus)}: it must be at least ${cpus(MIN_NANO_CPUS)}`);
  }
  if (r.memoryBytes < 0 || (r.memoryBytes !== 0 && r.memoryBytes < MIN_MEMORY)) {
    throw invalid(`service ${service}: invalid memory ${which} ${r.memoryBytes} bytes: it must be at least 4MiB`);
  }
  if (r.pids < 0) throw invalid(`service ${service}: invalid pids ${which} ${r.pids}: it cannot be negative`);
  for (const g of r.generic) {
    if (which === 'limit') throw invalid(`service ${service}: generic resource ${JSON.stringify(g.kind)} can be reserved, not limited`);
    if (!g.kind) throw invalid(`service ${service}: a generic resource reservation needs a kind (e.g. gpu=1)`);
    if (g.value < 0 || (g.value === 0 && !g.named)) throw invalid(`service ${service}: invalid generic resource ${g.kind}=${g.value}: reserve at least 1`);
  }
}

function validateResources(r: ResourceRequirements | null | undefined, service: string): void {
  validateResourceSet(r?.limits, 'limit', service);
  validateResourceSet(r?.reservations, 'reservation', service);
  const limits = r?.limits;
  const reserved = r?.reservations;
  if (!limits || !reserved) return;
  if (limits.nanoCpus > 0 && reserved.nanoCpus > limits.nanoCpus) {
    throw invalid(`service ${service}: the cpu reservation ${cpus(reserved.nanoCpus)} is more than the cpu limit ${cpus(limits.nanoCpus)}`);
  }
  if (limits.memoryBytes > 0 && reserved.memoryBytes > limits.memoryBytes) {
    throw invalid(`service ${service}: the memory reservation ${mib(reserved.memoryBytes)} is more than the memory limit ${mib(limits.memoryBytes)}`);
  }
}

function validateRestartPolicy(r: RestartPolicy | null | undefined, service: string): void {
  if (!r) return;
  if (!oneOf(RestartPolicy_ConditionValues, r.condition)) {
    throw invalid(`service ${service}: invalid restart condition ${JSON.stringify(r.condition)}: expected ${words(RestartPolicy_ConditionValues)}`);
  }
  if (r.delayMs < 0) throw invalid(`service ${service}: the restart delay cannot be negative (${r.delayMs}ms)`);
  if (r.windowMs < 0) throw invalid(`service ${service}: the restart window cannot be negative (${r.windowMs}ms)`);
}

function validateUpdateConfig(u: UpdateConfig | null | undefined, which: 'update' | 'rollback', service: string): void {
  if (!u) return;
  if (u.delayMs < 0) throw invalid(`service ${service}: the ${which} delay cannot be negative (${u.delayMs}ms)`);
  if (u.monitorMs < 0) throw invalid(`service ${service}: the ${which} monitor period cannot be negative (${u.monitorMs}ms)`);
  if (!(u.maxFailureRatio >= 0 && u.maxFailureRatio <= 1)) {
    throw invalid(`service ${service}: invalid ${which} max failure ratio ${u.maxFailureRatio}: it must be between 0 and 1`);
  }
  if (!oneOf(UpdateConfig_FailureActionValues, u.failureAction)) {
    throw invalid(`service ${service}: invalid ${which} failure action ${JSON.stringify(u.failureAction)}: expected ${words(UpdateConfig_FailureActionValues)}`);
  }
  if (which === 'rollback' && u.failureAction === 'ROLLBACK') throw invalid(`service ${service}: the rollback failure action cannot be rollback (pause or continue)`);
  if (!oneOf(UpdateConfig_OrderValues, u.order)) throw invalid(`service ${service}: invalid ${which} order ${JSON.stringify(u.order)}: expected ${words(UpdateConfig_OrderValues)}`);
}

/** Port checks that need no cluster state; the allocator's own checks run as well. */
function validateEndpoint(e: EndpointSpec | null | undefined, service: string): void {
  if (!e) return;
  if (!oneOf(EndpointSpec_ResolutionModeValues, e.mode)) throw invalid(`service ${service}: invalid endpoint mode ${JSON.stringify(e.mode)}: expected vip or dnsrr`);
  const published = new Set<string>();
  for (const p of e.ports) {
    if (!oneOf(PortConfig_ProtocolValues, p.protocol)) throw invalid(`service ${service}: invalid port protocol ${JSON.stringify(p.protocol)}: expected ${words(PortConfig_ProtocolValues)}`);
    if (!oneOf(PortConfig_PublishModeValues, p.publishMode)) {
      throw invalid(`service ${service}: invalid publish mode ${JSON.stringify(p.publishMode)}: expected ${words(PortConfig_PublishModeValues)}`);
    }
    if (p.publishedPort === 0) continue;
    // One listener per port and protocol on a node, whatever the mode: swarmkit refuses both.
    const key = `${p.publishedPort}/${p.protocol.toLowerCase()}`;
    if (published.has(key)) throw invalid(`service ${service}: published port ${key} is given twice`);
    published.add(key);
  }
}

/**
 * Checks a spec against the cluster and returns the spec to store: the mode filled in (Docker's
 * default is one replica), networks resolved from name, id or id prefix to ids, published ports
 * checked against other services. `serviceId` is the service being updated, '' for a new one.
 */
export function normalizeServiceSpec(view: ReadView, given: ServiceSpec, serviceId: string): ServiceSpec {
  validateServiceSpec(given);
  const spec = copy(ServiceSpec, given);
  const name = spec.annotations!.name;
  const mode = modeOf(given);
  if (!mode) spec.replicated = { replicas: 1 };
  else if (spec[mode] == null) (spec as unknown as Record<string, unknown>)[mode] = {};
  spec.mode = mode ?? 'replicated';
  spec.task!.networks = resolveAttachments(view, spec.task!.networks, name);
  const container = spec.task!.container!;
  container.configs = resolveConfigReferences(view, container.configs, container.mounts, name);
  validateServiceEndpoint(spec, serviceId, view.all('services'));
  if ((spec.endpoint?.ports ?? []).some((p) => p.publishMode === 'INGRESS') && !view.all('networks').some((n) => n.spec?.ingress)) {
    throw precondition(`service ${name} publishes ports through the routing mesh, but the cluster has no ingress network: publish them in host mode (mode=host), or create one with "network create --ingress"`);
  }
  // A round trip through the codec gives the spec exactly as the store will hold it.
  return copy(ServiceSpec, spec);
}

function resolveAttachments(view: ReadView, attachments: readonly NetworkAttachmentConfig[], service: string): NetworkAttachmentConfig[] {
  const seen = new Map<string, string>();
  return attachments.map((a) => {
    if (!a.target) throw invalid(`service ${service}: a network attachment needs a network name or id`);
    const network = lookup(view, 'networks', a.target);
    if (!network) throw notFound(`service ${service}: network ${a.target} not found`);
    const name = network.spec?.annotations?.name ?? '';
    if (network.spec?.ingress) throw invalid(`service ${service} cannot be explicitly attached to the ingress network "${name}"`);
    const earlier = seen.get(network.id);
    if (earlier !== undefined) throw invalid(`service ${service}: network ${label(name, network.id)} is attached twice (as ${earlier} and ${a.target})`);
    seen.set(network.id, a.target);
    // Allocated subnets, or the ones asked for while the allocator has not run yet.
    const configs = network.ipam?.configs.length ? network.ipam.configs : (network.spec?.ipam?.configs ?? []);
    const subnets = configs.map((c) => c.subnet).filter((x) => x !== '');
    for (const address of a.addresses) checkStaticAddress(address, subnets, label(name, network.id), service);
    return { ...a, target: network.id };
  });
}

/**
 * Config references as stored: each names an existing config by id and its current name (the user
 * may give either, or an id prefix), targets defaulted and unique (also among the mounts), the file
 * owned by root with mode 0444 unless asked otherwise, and no data (the dispatcher adds it).
 */
function resolveConfigReferences(view: ReadView, refs: readonly ConfigReference[], mounts: readonly Mount[], service: string): ConfigReference[] {
  const targets = new Map<string, string>(mounts.map((m) => [m.target, `a ${m.type.toLowerCase()} mount`]));
  return refs.map((r) => {
    const ref = r.configId || r.configName;
    const config = lookup(view, 'configs', ref);
    if (!config) throw notFound(`service ${service}: config ${ref} not found`);
    const name = config.spec?.annotations?.name ?? '';
    if (r.configId && r.configName && r.configName !== name) {
      throw invalid(`service ${service}: config ${r.configId} is named ${name}, not ${r.configName}`);
    }
    const target = configTarget({ configName: name, file: r.file ?? null });
    if (target === '/') throw invalid(`service ${service}: config ${name} cannot be mounted at "/"`);
    const taken = targets.get(target);
    if (taken) throw invalid(`service ${service}: config ${name} is mounted at ${target}, where ${taken} already is`);
    targets.set(target, `config ${name}`);
    const f = r.file;
    return {
      configId: config.id,
      configName: name,
      file: { name: target, uid: f?.uid || '0', gid: f?.gid || '0', mode: f && f.mode !== 0 ? f.mode : 0o444 },
      data: new Uint8Array(0),
    };
  });
}

function checkStaticAddress(address: string, subnets: readonly string[], network: string, service: string): void {
  const ip = parseIp(address.split('/')[0]!, `address for network ${network} of service ${service}`);
  if (subnets.length > 0 && !subnets.some((s) => contains(parseCidr(s), ip))) {
    throw invalid(`service ${service}: address ${address} is not inside the subnets of network ${network} (${subnets.join(', ')})`);
  }
}
