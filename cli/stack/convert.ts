// The merged compose model as shoal objects, as Docker's CLI converts it (cli/compose/convert):
// every resource (networks, configs) named STACK_NAME and labelled com.docker.stack.namespace=STACK, services without
// networks on STACK_default (overlay), the service's own name an alias on each of its networks,
// `deploy:` onto the service's mode, placement, resources, restart and update policies. Value
// syntaxes (ports, durations, sizes, constraints) go through the same parsers as `service create`.
// A key shoal does not support is named in a warning, never silently dropped. Pure: files
// (env_file, configs' files) come in through `readFile` / `readBinary`.
import { isAbsolute, resolve } from 'node:path';
import {
  ServiceSpec,
  type ConfigReference,
  type ConfigSpec,
  type ContainerSpec,
  type HealthConfig,
  type Mount,
  type NetworkAttachmentConfig,
  type NetworkSpec,
  type PortConfig,
  type Resources,
  type RestartPolicy,
  type TaskSpec,
  type UpdateConfig,
} from '../../proto/gen/objects.js';
import { UserError } from '../../util/command.js';
import { mergeEnv, normalizeCapability, parseConstraint, parseEnvFile, parseLogOpts, parseMount, parsePublish } from '../serviceflags.js';
import { DEFAULT_RESTART, DEFAULT_UPDATE, normalizeSpec } from '../servicespec.js';
import { parseBytes, parseDuration, parseNanoCpus, shellWords } from '../units.js';
import { ipamConfigs, DRIVERS } from '../commands/network.js';
import type { Env } from './interpolate.js';
import { isObj, listOrMap, type Obj } from './load.js';

/** The label Docker puts on a stack's services and networks (users' scripts rely on it). */
export const NAMESPACE_LABEL = 'com.docker.stack.namespace';

export interface StackNetwork {
  /** The key under `networks:` (`default` for the implicit one). */
  key: string;
  /** The network's name in the cluster: STACK_KEY, or the `name:` given, or the external name. */
  name: string;
  /** External networks must exist already; nothing is created for them. */
  external: boolean;
  spec: NetworkSpec | null;
}

export interface Dependency {
  service: string;
  /** `condition: service_healthy`: the dependency's tasks must run and be healthy first. */
  healthy: boolean;
}

export interface StackConfig {
  /** The key under `configs:`. */
  key: string;
  /** The config's name in the cluster: STACK_KEY, or the `name:` given, or the external name. */
  name: string;
  /** External configs must exist already; nothing is created for them. */
  external: boolean;
  spec: ConfigSpec | null;
}

export interface StackService {
  /** The key under `services:`. */
  key: string;
  /** STACK_KEY. */
  name: string;
  /** Network attachments name networks by their cluster name; the deploy resolves them to ids. */
  spec: ServiceSpec;
  dependsOn: Dependency[];
}

export interface StackModel {
  namespace: string;
  /** Only the networks some service uses, as Docker creates only those. */
  networks: StackNetwork[];
  /** Only the configs some service uses, as Docker creates only those. */
  configs: StackConfig[];
  /** In dependency order: every service after the services it depends on. */
  services: StackService[];
  warnings: string[];
}

export interface ConvertOptions {
  env: Env;
  /** Reads an env_file (paths are resolved against workingDir first). */
  readFile: (path: string) => string;
  /** Reads a config's `file:` as bytes (default: readFile's text as UTF-8). */
  readBinary?: (path: string) => Uint8Array;
  /** The first compose file's directory: relative env_file and bind paths start there. */
  workingDir: string;
}

/** Service keys converted; any other key gets a warning. */
const SERVICE_KEYS = new Set([
  'image', 'command', 'entrypoint', 'environment', 'env_file', 'ports', 'networks', 'volumes', 'healthcheck', 'hostname', 'user', 'working_dir',
  'stop_grace_period', 'stop_signal', 'labels', 'deploy', 'depends_on', 'cap_add', 'cap_drop', 'read_only', 'tty', 'extra_hosts', 'logging',
  'configs',
]);
const DEPLOY_KEYS = new Set(['mode', 'replicas', 'placement', 'resources', 'restart_policy', 'update_config', 'rollback_config', 'endpoint_mode', 'labels']);
const NETWORK_KEYS = new Set(['driver', 'driver_opts', 'ipam', 'attachable', 'external', 'name', 'labels', 'internal', 'enable_ipv6']);

/** Docker's rule for a stack name: it prefixes every resource, so it must be a valid name itself. */
export function checkStackName(name: string): void {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name) || name.length > 63) {
    throw new UserError(`invalid stack name "${name}": letters, digits, '_', '.' and '-', starting with a letter or digit`);
  }
}

class Ctx {
  readonly warnings: string[] = [];
  constructor(
    readonly stack: string,
    readonly opts: ConvertOptions,
  ) {}

  /** `Ignoring unsupported options for service web: build, privileged`. */
  unsupported(what: string, keys: readonly string[]): void {
    if (keys.length) this.warnings.push(`Ignoring unsupported options for ${what}: ${keys.join(', ')}`);
  }

  scoped(name: string): string {
    return `${this.stack}_${name}`;
  }
}

/** Runs a parser and puts the compose path in front of its error (dropping the flag wording). */
function at<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Error && ((e as { userError?: boolean }).userError || e.name === 'ValueError')) {
      throw new UserError(`${where}: ${e.message.replace(/ for "--[^"]*" flag/, '')}`);
    }
    throw e;
  }
}

const str = (v: unknown, where: string): string => {
  if (v === null || v === undefined || typeof v === 'object') throw new UserError(`${where}: expected a string, got ${JSON.stringify(v)}`);
  return String(v);
};

function uint(v: unknown, where: string): number {
  const s = str(v, where);
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s))) throw new UserError(`${where}: expected a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(s);
}

function bool(v: unknown, where: string): boolean {
  if (typeof v === 'boolean') return v;
  const s = str(v, where).toLowerCase();
  if (['true', 'yes', 'y', 'on', '1'].includes(s)) return true;
  if (['false', 'no', 'n', 'off', '0'].includes(s)) return false;
  throw new UserError(`${where}: expected a boolean, got ${JSON.stringify(v)}`);
}

const duration = (v: unknown, where: string): number =>
  at(where, () => {
    const ms = parseDuration(str(v, where));
    if (ms < 0) throw new UserError(`duration cannot be negative: ${String(v)}`);
    return ms;
  });

const bytes = (v: unknown, where: string): number => at(where, () => parseBytes(str(v, where)));

function strings(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) return [str(v, where)];
  return v.map((e, i) => str(e, `${where}[${i}]`));
}

/** A command as a string (split like a shell) or a list. */
function command(v: unknown, where: string): string[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'string') return at(where, () => shellWords(v));
  return strings(v, where);
}

function obj(v: unknown, where: string): Obj {
  if (v === undefined || v === null) return {};
  if (!isObj(v)) throw new UserError(`${where}: expected a mapping, got ${JSON.stringify(v)}`);
  return v;
}

function stringMap(v: unknown, where: string): Record<string, string> {
  return Object.fromEntries(Object.entries(listOrMap(v, where)).map(([k, val]) => [k, val ?? '']));
}

const extraKeys = (o: Obj, known: ReadonlySet<string>): string[] => Object.keys(o).filter((k) => !known.has(k) && !k.startsWith('x-'));

/** The compose model as the specs of a stack called `stack`. */
export function convertStack(stack: string, model: Obj, opts: ConvertOptions): StackModel {
  checkStackName(stack);
  const ctx = new Ctx(stack, opts);
  ctx.unsupported('the stack', Object.keys(model).filter((k) => !['version', 'name', 'services', 'networks', 'volumes', 'configs'].includes(k) && !k.startsWith('x-')));
  const services = obj(model.services, 'services');
  if (!Object.keys(services).length) throw new UserError('no services to deploy: the compose file has no services');
  const networkDefs = obj(model.networks, 'networks');
  const volumeDefs = obj(model.volumes, 'volumes');
  convertVolumeDefs(ctx, volumeDefs);
  const configDefs = obj(model.configs, 'configs');

  const used = new Set<string>();
  const usedConfigs = new Set<string>();
  const converted: StackService[] = [];
  for (const [key, raw] of Object.entries(services)) {
    const svc = obj(raw, `services.${key}`);
    const name = ctx.scoped(key);
    ctx.unsupported(`service ${key}`, extraKeys(svc, SERVICE_KEYS));
    const nets = serviceNetworks(ctx, key, svc, networkDefs);
    for (const n of nets) used.add(n.key);
    const spec = convertService(ctx, key, svc, volumeDefs);
    spec.task!.networks = nets.map((n) => n.attachment);
    const refs = serviceConfigs(ctx, key, svc, configDefs);
    for (const r of refs) usedConfigs.add(r.key);
    spec.task!.container!.configs = refs.map((r) => r.ref);
    converted.push({ key, name, spec: normalizeSpec(spec), dependsOn: dependencies(ctx, key, svc, services) });
  }
  const networks = [...used].sort().map((k) => convertNetwork(ctx, k, networkDefs[k]));
  const configs = [...usedConfigs].sort().map((k) => convertConfig(ctx, k, configDefs[k]));
  return { namespace: stack, networks, configs, services: deployOrder(converted), warnings: ctx.warnings };
}

/** A mode as Compose reads it: a number as written (YAML's 0440 is octal), a string in octal ("0440", "440"). */
function fileMode(v: unknown, where: string): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) throw new UserError(`${where}: expected a file mode like 0440, got ${v}`);
    return v;
  }
  const m = /^(?:0o?)?([0-7]+)$/i.exec(str(v, where).trim());
  if (!m) throw new UserError(`${where}: expected an octal file mode like 0440, got ${JSON.stringify(v)}`);
  return parseInt(m[1]!, 8);
}

/** A config's name in the cluster: STACK_KEY, its `name:`, or the external name. */
function configName(ctx: Ctx, key: string, raw: unknown): string {
  const c = obj(raw, `configs.${key}`);
  const ext = c.external;
  if (isObj(ext) && ext.name !== undefined) return str(ext.name, `configs.${key}.external.name`);
  if (c.name !== undefined) return str(c.name, `configs.${key}.name`);
  if (ext !== undefined && !isObj(ext) && bool(ext, `configs.${key}.external`)) return key;
  return ctx.scoped(key);
}

/** A top-level config: `file:` (read now, relative to the first file's directory) or `content:`, or `external`. */
function convertConfig(ctx: Ctx, key: string, raw: unknown): StackConfig {
  const where = `configs.${key}`;
  const c = obj(raw, where);
  ctx.unsupported(`config ${key}`, extraKeys(c, new Set(['file', 'content', 'external', 'name', 'labels'])));
  const name = configName(ctx, key, raw);
  const ext = c.external;
  if (isObj(ext) || (ext !== undefined && bool(ext, `${where}.external`))) return { key, name, external: true, spec: null };
  let data: Uint8Array;
  if (c.file !== undefined) {
    const path = str(c.file, `${where}.file`);
    const full = isAbsolute(path) ? path : resolve(ctx.opts.workingDir, path);
    try {
      data = ctx.opts.readBinary ? ctx.opts.readBinary(full) : Buffer.from(ctx.opts.readFile(full), 'utf8');
    } catch (e) {
      throw new UserError(`${where}.file: open ${full}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
  } else if (c.content !== undefined) {
    data = Buffer.from(str(c.content, `${where}.content`), 'utf8');
  } else {
    throw new UserError(`${where}: a config needs a file, content, or external: true`);
  }
  const labels = stringMap(c.labels, `${where}.labels`);
  return { key, name, external: false, spec: { annotations: { name, labels: { ...labels, [NAMESPACE_LABEL]: ctx.stack } }, data } };
}

/**
 * A service's `configs:`: short syntax `- KEY` (mounted at /KEY) or the long one
 * `{source, target, uid, gid, mode}`. The reference names the config by its cluster name; the
 * deploy fills in its id.
 */
function serviceConfigs(ctx: Ctx, key: string, svc: Obj, defs: Obj): { key: string; ref: ConfigReference }[] {
  const where = `services.${key}.configs`;
  const v = svc.configs;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new UserError(`${where}: expected a list`);
  return v.map((entry, i) => {
    const w = `${where}[${i}]`;
    const long = isObj(entry) ? entry : { source: str(entry, w) };
    ctx.unsupported(`service ${key} config ${i}`, extraKeys(long, new Set(['source', 'target', 'uid', 'gid', 'mode'])));
    const source = str(long.source, `${w}.source`);
    if (!(source in defs)) throw new UserError(`service ${key} refers to undefined config ${source}: invalid compose file`);
    const target = long.target === undefined ? source : str(long.target, `${w}.target`);
    const id = (k: 'uid' | 'gid') => {
      if (long[k] === undefined) return '0';
      const val = str(long[k], `${w}.${k}`);
      if (!/^\d+$/.test(val)) throw new UserError(`${w}.${k}: expected a number, got ${JSON.stringify(long[k])}`);
      return val;
    };
    const mode = long.mode === undefined ? 0o444 : fileMode(long.mode, `${w}.mode`);
    if (mode > 0o777) throw new UserError(`${w}.mode: invalid mode ${mode.toString(8)}: at most 0777`);
    const file = { name: target.startsWith('/') ? target : `/${target}`, uid: id('uid'), gid: id('gid'), mode };
    return { key: source, ref: { configId: '', configName: configName(ctx, source, defs[source]), file, data: new Uint8Array(0) } };
  });
}

function convertVolumeDefs(ctx: Ctx, defs: Obj): void {
  for (const [key, raw] of Object.entries(defs)) {
    const v = obj(raw, `volumes.${key}`);
    const driver = v.driver === undefined ? 'local' : str(v.driver, `volumes.${key}.driver`);
    const keys = extraKeys(v, new Set(['external', 'name', 'driver']));
    if (driver !== 'local') keys.unshift(`driver (${driver}: only local volumes)`);
    ctx.unsupported(`volume ${key}`, keys);
  }
}

/** A named volume's name in the cluster: STACK_KEY, its `name:`, or the external name. */
function volumeName(ctx: Ctx, key: string, defs: Obj, where: string): string {
  if (!(key in defs)) throw new UserError(`${where}: undefined volume "${key}" (declare it under the top-level volumes)`);
  const v = obj(defs[key], `volumes.${key}`);
  if (v.name !== undefined) return str(v.name, `volumes.${key}.name`);
  const ext = v.external;
  if (isObj(ext) && ext.name !== undefined) return str(ext.name, `volumes.${key}.external.name`);
  if (ext !== undefined && bool(isObj(ext) ? true : ext, `volumes.${key}.external`)) return key;
  return ctx.scoped(key);
}

function convertNetwork(ctx: Ctx, key: string, raw: unknown): StackNetwork {
  const where = `networks.${key}`;
  if (key === 'default' && raw === undefined) {
    const name = ctx.scoped('default');
    return { key, name, external: false, spec: networkSpec(name, 'overlay', {}, {}, ctx.stack, false, false, false, []) };
  }
  const n = obj(raw, where);
  ctx.unsupported(`network ${key}`, extraKeys(n, NETWORK_KEYS));
  const ext = n.external;
  const external = isObj(ext) ? true : ext !== undefined && bool(ext, `${where}.external`);
  if (external) {
    const name = isObj(ext) && ext.name !== undefined ? str(ext.name, `${where}.external.name`) : n.name !== undefined ? str(n.name, `${where}.name`) : key;
    return { key, name, external: true, spec: null };
  }
  const name = n.name !== undefined ? str(n.name, `${where}.name`) : ctx.scoped(key);
  const driver = n.driver === undefined ? 'overlay' : str(n.driver, `${where}.driver`);
  if (!(DRIVERS as readonly string[]).includes(driver)) throw new UserError(`${where}.driver: unknown network driver "${driver}": expected ${DRIVERS.join(', ')}`);
  const ipam = obj(n.ipam, `${where}.ipam`);
  if (ipam.driver !== undefined && str(ipam.driver, `${where}.ipam.driver`) !== 'default') ctx.unsupported(`network ${key}`, [`ipam.driver (${String(ipam.driver)})`]);
  ctx.unsupported(`network ${key}`, extraKeys(ipam, new Set(['driver', 'config'])).map((k) => `ipam.${k}`));
  const configs = (Array.isArray(ipam.config) ? ipam.config : ipam.config === undefined ? [] : [ipam.config]).map((c, i) => obj(c, `${where}.ipam.config[${i}]`));
  const pick = (k: string) => configs.filter((c) => c[k] !== undefined).map((c) => str(c[k], `${where}.ipam.config.${k}`));
  for (const c of configs) ctx.unsupported(`network ${key}`, extraKeys(c, new Set(['subnet', 'gateway', 'ip_range'])).map((k) => `ipam.config.${k}`));
  const ipamConfs = at(`${where}.ipam`, () => ipamConfigs(pick('subnet'), pick('gateway'), pick('ip_range')));
  const labels = stringMap(n.labels, `${where}.labels`);
  const bools = (k: string) => (n[k] === undefined ? false : bool(n[k], `${where}.${k}`));
  return {
    key,
    name,
    external: false,
    spec: networkSpec(name, driver, stringMap(n.driver_opts, `${where}.driver_opts`), labels, ctx.stack, bools('attachable'), bools('internal'), bools('enable_ipv6'), ipamConfs),
  };
}

function networkSpec(name: string, driver: string, options: Record<string, string>, labels: Record<string, string>, stack: string, attachable: boolean, internal: boolean, ipv6: boolean, configs: ReturnType<typeof ipamConfigs>): NetworkSpec {
  return {
    annotations: { name, labels: { ...labels, [NAMESPACE_LABEL]: stack } },
    driverConfig: { name: driver, options },
    ipv6,
    internal,
    attachable,
    ingress: false,
    ipam: configs.length ? { driver: { name: 'default', options: {} }, configs } : null,
    scope: driver === 'overlay' ? 'swarm' : 'local',
  };
}

/** The service's networks (`default` when none), each with the service's name as an alias. */
function serviceNetworks(ctx: Ctx, key: string, svc: Obj, defs: Obj): { key: string; attachment: NetworkAttachmentConfig }[] {
  const where = `services.${key}.networks`;
  const given = svc.networks === undefined || svc.networks === null ? { default: null } : obj(svc.networks, where);
  return Object.entries(given).map(([net, raw]) => {
    if (net !== 'default' && !(net in defs)) throw new UserError(`service ${key} refers to undefined network ${net}: invalid compose file`);
    const cfg = obj(raw, `${where}.${net}`);
    ctx.unsupported(`service ${key} network ${net}`, extraKeys(cfg, new Set(['aliases', 'ipv4_address', 'ipv6_address'])));
    const target = net === 'default' && !(net in defs) ? ctx.scoped('default') : networkName(ctx, net, defs[net]);
    const aliases = [key, ...strings(cfg.aliases, `${where}.${net}.aliases`).filter((a) => a !== key)];
    const addresses = [cfg.ipv4_address, cfg.ipv6_address].filter((a) => a !== undefined && a !== null).map((a) => str(a, `${where}.${net}`));
    return { key: net, attachment: { target, aliases, addresses, driverOpts: {} } };
  });
}

function networkName(ctx: Ctx, key: string, raw: unknown): string {
  const n = obj(raw, `networks.${key}`);
  const ext = n.external;
  if (isObj(ext) && ext.name !== undefined) return str(ext.name, `networks.${key}.external.name`);
  if (n.name !== undefined) return str(n.name, `networks.${key}.name`);
  if (ext !== undefined && !isObj(ext) && bool(ext, `networks.${key}.external`)) return key;
  return ctx.scoped(key);
}

function convertService(ctx: Ctx, key: string, svc: Obj, volumeDefs: Obj): ServiceSpec {
  const where = `services.${key}`;
  if (svc.image === undefined) throw new UserError(`service ${key} has no image${svc.build !== undefined ? ' (build is not supported: build and push the image first)' : ''}`);
  const labels = stringMap(svc.labels, `${where}.labels`);
  const container: ContainerSpec = {
    image: str(svc.image, `${where}.image`),
    labels: { ...labels, [NAMESPACE_LABEL]: ctx.stack },
    command: command(svc.entrypoint, `${where}.entrypoint`),
    args: command(svc.command, `${where}.command`),
    hostname: svc.hostname === undefined ? '' : str(svc.hostname, `${where}.hostname`),
    env: environment(ctx, svc, where),
    dir: svc.working_dir === undefined ? '' : str(svc.working_dir, `${where}.working_dir`),
    user: svc.user === undefined ? '' : str(svc.user, `${where}.user`),
    mounts: (Array.isArray(svc.volumes) ? svc.volumes : svc.volumes === undefined ? [] : [svc.volumes]).map((v, i) => mount(ctx, v, volumeDefs, `${where}.volumes[${i}]`)),
    stopGracePeriodMs: svc.stop_grace_period === undefined ? 0 : duration(svc.stop_grace_period, `${where}.stop_grace_period`),
    stopSignal: svc.stop_signal === undefined ? '' : str(svc.stop_signal, `${where}.stop_signal`),
    healthcheck: svc.healthcheck === undefined ? null : healthcheck(ctx, key, obj(svc.healthcheck, `${where}.healthcheck`)),
    readOnly: svc.read_only === undefined ? false : bool(svc.read_only, `${where}.read_only`),
    capAdd: strings(svc.cap_add, `${where}.cap_add`).map((c) => at(`${where}.cap_add`, () => normalizeCapability('cap-add', c))),
    capDrop: strings(svc.cap_drop, `${where}.cap_drop`).map((c) => at(`${where}.cap_drop`, () => normalizeCapability('cap-drop', c))),
    hosts: extraHosts(svc.extra_hosts, `${where}.extra_hosts`),
    log: logging(ctx, key, svc.logging),
    tty: svc.tty === undefined ? false : bool(svc.tty, `${where}.tty`),
    configs: [],
  };
  const task: TaskSpec = { container, resources: null, restart: null, placement: null, networks: [], forceUpdate: 0 };
  const deploy = obj(svc.deploy, `${where}.deploy`);
  ctx.unsupported(`service ${key}`, extraKeys(deploy, DEPLOY_KEYS).map((k) => `deploy.${k}`));
  const spec: ServiceSpec = {
    annotations: { name: ctx.scoped(key), labels: { ...stringMap(deploy.labels, `${where}.deploy.labels`), [NAMESPACE_LABEL]: ctx.stack } },
    task,
    update: deploy.update_config === undefined ? null : updateConfig(ctx, key, 'update_config', deploy.update_config),
    rollback: deploy.rollback_config === undefined ? null : updateConfig(ctx, key, 'rollback_config', deploy.rollback_config),
    endpoint: { mode: endpointMode(deploy.endpoint_mode, `${where}.deploy.endpoint_mode`), ports: ports(svc.ports, `${where}.ports`) },
  };
  setMode(spec, deploy, `${where}.deploy`);
  task.placement = placement(ctx, key, deploy.placement);
  task.resources = resources(ctx, key, deploy.resources);
  task.restart = restartPolicy(ctx, key, deploy.restart_policy);
  return spec;
}

/** env_file first (in order), then environment; `KEY` without a value comes from this shell. Sorted, as Docker sorts it. */
function environment(ctx: Ctx, svc: Obj, where: string): string[] {
  let env: string[] = [];
  for (const [i, f] of (svc.env_file === undefined ? [] : (svc.env_file as unknown[])).entries()) {
    const entry = isObj(f) ? f : { path: f };
    const path = str(entry.path, `${where}.env_file[${i}]`);
    const full = isAbsolute(path) ? path : resolve(ctx.opts.workingDir, path);
    let text: string;
    try {
      text = ctx.opts.readFile(full);
    } catch (e) {
      if (entry.required !== undefined && !bool(entry.required, `${where}.env_file[${i}].required`)) continue;
      throw new UserError(`${where}.env_file: open ${full}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`);
    }
    env = mergeEnv(env, parseEnvFile(full, text, ctx.opts.env));
  }
  const given = Object.entries((svc.environment ?? {}) as Record<string, string | null>).flatMap(([k, v]) => {
    if (v !== null) return [`${k}=${v}`];
    const fromShell = ctx.opts.env[k];
    return fromShell === undefined ? [] : [`${k}=${fromShell}`];
  });
  return mergeEnv(env, given).sort();
}

function extraHosts(v: unknown, where: string): string[] {
  // Compose writes `host:ip` (or `host=ip`); the container's /etc/hosts line is `ip host`.
  const entries = isObj(v) ? Object.entries(v).map(([h, ip]) => [h, str(ip, `${where}.${h}`)]) : strings(v, where).map((e) => {
    const m = /^([^:=]+)[:=](.+)$/.exec(e);
    if (!m) throw new UserError(`${where}: invalid extra host "${e}": expected HOST:IP`);
    return [m[1]!, m[2]!];
  });
  return entries.map(([h, ip]) => `${ip} ${h}`);
}

function logging(ctx: Ctx, key: string, v: unknown) {
  if (v === undefined) return null;
  const l = obj(v, `services.${key}.logging`);
  const driver = l.driver === undefined ? 'json-file' : str(l.driver, `services.${key}.logging.driver`);
  if (driver !== 'json-file') {
    ctx.unsupported(`service ${key}`, [`logging.driver (${driver}: only json-file)`]);
    return null;
  }
  const opts = stringMap(l.options, `services.${key}.logging.options`);
  return at(`services.${key}.logging.options`, () => parseLogOpts('log-opt', Object.entries(opts).map(([k, val]) => `${k}=${val}`)));
}

/** Short syntax `[SOURCE:]TARGET[:MODE]` or the long mapping; named volumes get the stack's prefix. */
function mount(ctx: Ctx, v: unknown, defs: Obj, where: string): Mount {
  if (isObj(v)) {
    const type = v.type === undefined ? 'volume' : str(v.type, `${where}.type`);
    ctx.unsupported(`${where}`, extraKeys(v, new Set(['type', 'source', 'target', 'read_only', 'tmpfs', 'volume', 'bind'])));
    const fields = [`type=${type}`, `target=${str(v.target, `${where}.target`)}`];
    if (v.source !== undefined && v.source !== '') {
      const src = str(v.source, `${where}.source`);
      fields.push(`source=${type === 'volume' ? volumeName(ctx, src, defs, where) : type === 'bind' ? resolve(ctx.opts.workingDir, src) : src}`);
    }
    if (v.read_only !== undefined && bool(v.read_only, `${where}.read_only`)) fields.push('readonly');
    const tmpfs = obj(v.tmpfs, `${where}.tmpfs`);
    if (tmpfs.size !== undefined) fields.push(`tmpfs-size=${str(tmpfs.size, `${where}.tmpfs.size`)}`);
    return at(where, () => parseMount('mount', fields.join(',')));
  }
  const parts = str(v, where).split(':');
  if (parts.length > 3) throw new UserError(`${where}: invalid volume spec "${String(v)}": expected [SOURCE:]TARGET[:MODE]`);
  if (parts.length === 1) return at(where, () => parseMount('mount', `type=volume,target=${parts[0]}`));
  const [src, target, mode = 'rw'] = parts as [string, string, string?];
  const modes = mode.split(',');
  for (const m of modes) if (!['ro', 'rw', 'z', 'Z', 'nocopy'].includes(m)) throw new UserError(`${where}: invalid mode "${m}" in "${String(v)}": expected ro or rw`);
  const readonly = modes.includes('ro') ? ',readonly' : '';
  const isPath = src.startsWith('/') || src.startsWith('.') || src.startsWith('~');
  if (isPath) return at(where, () => parseMount('mount', `type=bind,source=${resolve(ctx.opts.workingDir, src)},target=${target}${readonly}`));
  return at(where, () => parseMount('mount', `type=volume,source=${volumeName(ctx, src, defs, where)},target=${target}${readonly}`));
}

function healthcheck(ctx: Ctx, key: string, h: Obj): HealthConfig {
  const where = `services.${key}.healthcheck`;
  ctx.unsupported(`service ${key}`, extraKeys(h, new Set(['test', 'interval', 'timeout', 'retries', 'start_period', 'disable'])).map((k) => `healthcheck.${k}`));
  if (h.disable !== undefined && bool(h.disable, `${where}.disable`)) return { test: ['NONE'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0 };
  const test = typeof h.test === 'string' ? ['CMD-SHELL', h.test] : strings(h.test, `${where}.test`);
  if (test.length && !['NONE', 'CMD', 'CMD-SHELL'].includes(test[0]!)) throw new UserError(`${where}.test: the first word must be NONE, CMD or CMD-SHELL, got "${test[0]}"`);
  return {
    test,
    intervalMs: h.interval === undefined ? 0 : duration(h.interval, `${where}.interval`),
    timeoutMs: h.timeout === undefined ? 0 : duration(h.timeout, `${where}.timeout`),
    retries: h.retries === undefined ? 0 : uint(h.retries, `${where}.retries`),
    startPeriodMs: h.start_period === undefined ? 0 : duration(h.start_period, `${where}.start_period`),
  };
}

function ports(v: unknown, where: string): PortConfig[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new UserError(`${where}: expected a list`);
  return v.flatMap((p, i) => {
    const w = `${where}[${i}]`;
    if (typeof p === 'number' || typeof p === 'string') return at(w, () => parsePublish('publish', String(p)));
    const o = obj(p, w);
    const fields = [`target=${str(o.target, `${w}.target`)}`];
    if (o.published !== undefined && o.published !== '') fields.push(`published=${str(o.published, `${w}.published`)}`);
    if (o.protocol !== undefined) fields.push(`protocol=${str(o.protocol, `${w}.protocol`)}`);
    if (o.mode !== undefined) fields.push(`mode=${str(o.mode, `${w}.mode`)}`);
    const out = at(w, () => parsePublish('publish', fields.join(',')));
    if (o.name !== undefined) out[0]!.name = str(o.name, `${w}.name`);
    return out;
  });
}

function endpointMode(v: unknown, where: string): 'VIP' | 'DNSRR' {
  if (v === undefined) return 'VIP';
  const m = str(v, where).toLowerCase();
  if (m !== 'vip' && m !== 'dnsrr') throw new UserError(`${where}: unknown endpoint mode "${String(v)}": expected vip or dnsrr`);
  return m === 'vip' ? 'VIP' : 'DNSRR';
}

function setMode(spec: ServiceSpec, deploy: Obj, where: string): void {
  const mode = deploy.mode === undefined ? 'replicated' : str(deploy.mode, `${where}.mode`);
  const replicas = deploy.replicas === undefined || deploy.replicas === null ? undefined : uint(deploy.replicas, `${where}.replicas`);
  if (mode === 'replicated') spec.replicated = { replicas: replicas ?? 1 };
  else if (mode === 'global') {
    if (replicas !== undefined) throw new UserError(`${where}.replicas: replicas can only be used with replicated or replicated-job mode`);
    spec.global = {};
  } else if (mode === 'replicated-job') spec.replicatedJob = { totalCompletions: replicas ?? 1, maxConcurrent: replicas ?? 1 };
  else if (mode === 'global-job') spec.globalJob = {};
  else throw new UserError(`${where}.mode: unknown mode "${mode}": expected replicated, global, replicated-job or global-job`);
}

function placement(ctx: Ctx, key: string, v: unknown): TaskSpec['placement'] {
  if (v === undefined) return null;
  const where = `services.${key}.deploy.placement`;
  const p = obj(v, where);
  ctx.unsupported(`service ${key}`, extraKeys(p, new Set(['constraints', 'preferences', 'max_replicas_per_node'])).map((k) => `deploy.placement.${k}`));
  const constraints = strings(p.constraints, `${where}.constraints`).map((c) => at(`${where}.constraints`, () => parseConstraint('constraint', c)));
  const preferences = (Array.isArray(p.preferences) ? p.preferences : []).map((pref, i) => {
    const o = obj(pref, `${where}.preferences[${i}]`);
    if (o.spread === undefined) throw new UserError(`${where}.preferences[${i}]: only spread preferences are supported (spread: node.labels.zone)`);
    return { spreadDescriptor: str(o.spread, `${where}.preferences[${i}].spread`) };
  });
  const maxReplicas = p.max_replicas_per_node === undefined ? 0 : uint(p.max_replicas_per_node, `${where}.max_replicas_per_node`);
  return { constraints, preferences, maxReplicas, platforms: [] };
}

function resourcesOf(ctx: Ctx, key: string, v: unknown, which: 'limits' | 'reservations'): Resources | null {
  if (v === undefined || v === null) return null;
  const where = `services.${key}.deploy.resources.${which}`;
  const r = obj(v, where);
  const known = new Set(which === 'limits' ? ['cpus', 'memory', 'pids'] : ['cpus', 'memory']);
  ctx.unsupported(`service ${key}`, extraKeys(r, known).map((k) => `deploy.resources.${which}.${k}`));
  return {
    nanoCpus: r.cpus === undefined ? 0 : at(`${where}.cpus`, () => parseNanoCpus(str(r.cpus, `${where}.cpus`))),
    memoryBytes: r.memory === undefined ? 0 : bytes(r.memory, `${where}.memory`),
    generic: [],
    pids: r.pids === undefined ? 0 : uint(r.pids, `${where}.pids`),
  };
}

function resources(ctx: Ctx, key: string, v: unknown): TaskSpec['resources'] {
  if (v === undefined) return null;
  const r = obj(v, `services.${key}.deploy.resources`);
  ctx.unsupported(`service ${key}`, extraKeys(r, new Set(['limits', 'reservations'])).map((k) => `deploy.resources.${k}`));
  return { limits: resourcesOf(ctx, key, r.limits, 'limits'), reservations: resourcesOf(ctx, key, r.reservations, 'reservations') };
}

function restartPolicy(ctx: Ctx, key: string, v: unknown): RestartPolicy | null {
  if (v === undefined) return null;
  const where = `services.${key}.deploy.restart_policy`;
  const r = obj(v, where);
  ctx.unsupported(`service ${key}`, extraKeys(r, new Set(['condition', 'delay', 'max_attempts', 'window'])).map((k) => `deploy.restart_policy.${k}`));
  const p = { ...DEFAULT_RESTART };
  if (r.condition !== undefined) {
    const c = str(r.condition, `${where}.condition`);
    if (c === 'none') p.condition = 'NONE';
    else if (c === 'on-failure') p.condition = 'ON_FAILURE';
    else if (c === 'any') p.condition = 'ANY';
    else throw new UserError(`${where}.condition: unknown condition "${c}": expected none, on-failure or any`);
  }
  if (r.delay !== undefined) p.delayMs = duration(r.delay, `${where}.delay`);
  if (r.max_attempts !== undefined) p.maxAttempts = uint(r.max_attempts, `${where}.max_attempts`);
  if (r.window !== undefined) p.windowMs = duration(r.window, `${where}.window`);
  return p;
}

function updateConfig(ctx: Ctx, key: string, which: 'update_config' | 'rollback_config', v: unknown): UpdateConfig {
  const where = `services.${key}.deploy.${which}`;
  const u = obj(v, where);
  ctx.unsupported(`service ${key}`, extraKeys(u, new Set(['parallelism', 'delay', 'failure_action', 'monitor', 'max_failure_ratio', 'order'])).map((k) => `deploy.${which}.${k}`));
  const c = { ...DEFAULT_UPDATE };
  if (u.parallelism !== undefined) c.parallelism = uint(u.parallelism, `${where}.parallelism`);
  if (u.delay !== undefined) c.delayMs = duration(u.delay, `${where}.delay`);
  if (u.monitor !== undefined) c.monitorMs = duration(u.monitor, `${where}.monitor`);
  if (u.failure_action !== undefined) {
    const a = str(u.failure_action, `${where}.failure_action`);
    const allowed = which === 'update_config' ? ['pause', 'continue', 'rollback'] : ['pause', 'continue'];
    if (!allowed.includes(a)) throw new UserError(`${where}.failure_action: unknown action "${a}": expected ${allowed.join(', ')}`);
    c.failureAction = a.toUpperCase() as UpdateConfig['failureAction'];
  }
  if (u.max_failure_ratio !== undefined) {
    const r = Number(str(u.max_failure_ratio, `${where}.max_failure_ratio`));
    if (!(r >= 0 && r <= 1)) throw new UserError(`${where}.max_failure_ratio: expected a number between 0 and 1, got ${String(u.max_failure_ratio)}`);
    c.maxFailureRatio = r;
  }
  if (u.order !== undefined) {
    const o = str(u.order, `${where}.order`);
    if (o !== 'start-first' && o !== 'stop-first') throw new UserError(`${where}.order: unknown order "${o}": expected start-first or stop-first`);
    c.order = o === 'start-first' ? 'START_FIRST' : 'STOP_FIRST';
  }
  return c;
}

/** `depends_on: [db]` or `depends_on: {db: {condition: service_healthy}}`. */
function dependencies(ctx: Ctx, key: string, svc: Obj, services: Obj): Dependency[] {
  const where = `services.${key}.depends_on`;
  const v = svc.depends_on;
  if (v === undefined || v === null) return [];
  const entries: [string, Obj][] = Array.isArray(v) ? v.map((d, i) => [str(d, `${where}[${i}]`), {}]) : Object.entries(obj(v, where)).map(([d, c]) => [d, obj(c, `${where}.${d}`)]);
  return entries.map(([dep, cfg]) => {
    if (!(dep in services)) throw new UserError(`service ${key} depends on undefined service ${dep}`);
    if (dep === key) throw new UserError(`service ${key} depends on itself`);
    ctx.unsupported(`service ${key}`, extraKeys(cfg, new Set(['condition'])).map((k) => `depends_on.${dep}.${k}`));
    const condition = cfg.condition === undefined ? 'service_started' : str(cfg.condition, `${where}.${dep}.condition`);
    if (condition === 'service_completed_successfully') ctx.unsupported(`service ${key}`, [`depends_on.${dep}.condition (service_completed_successfully: treated as service_started)`]);
    else if (condition !== 'service_started' && condition !== 'service_healthy') throw new UserError(`${where}.${dep}.condition: unknown condition "${condition}": expected service_started, service_healthy or service_completed_successfully`);
    return { service: dep, healthy: condition === 'service_healthy' };
  });
}

/** Services after the ones they depend on (file order otherwise); a cycle is named in full. */
export function deployOrder(services: readonly StackService[]): StackService[] {
  const byKey = new Map(services.map((s) => [s.key, s]));
  const out: StackService[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (s: StackService, path: string[]) => {
    const st = state.get(s.key);
    if (st === 'done') return;
    if (st === 'visiting') {
      const cycle = [...path.slice(path.indexOf(s.key)), s.key];
      throw new UserError(`dependency cycle between services: ${cycle.join(' -> ')}`);
    }
    state.set(s.key, 'visiting');
    for (const d of s.dependsOn) {
      const dep = byKey.get(d.service);
      if (dep) visit(dep, [...path, s.key]);
    }
    state.set(s.key, 'done');
    out.push(s);
  };
  for (const s of services) visit(s, []);
  return out;
}
