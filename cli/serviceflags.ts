// The flags of `service create` and `service update`, with Docker's names, and the parsers of their
// values (ports, mounts, networks, env, labels, constraints, log options). Every parser names the
// flag and the bad value in its error, and nothing here talks to a daemon.
import type { FlagSpec, FlagValues } from '../util/flags.js';
import { UserError } from '../util/command.js';
import type { ConfigReference, LogConfig, Mount, Mount_Type, NetworkAttachmentConfig, PlacementPreference, PortConfig, PortConfig_Protocol } from '../proto/gen/objects.js';
import { parseBytes, parseDuration, parseNanoCpus, shellWords, ValueError } from './units.js';

/** `invalid argument "V" for "--flag" flag: why`, Docker's wording for a bad flag value. */
export function invalidFlag(flag: string, value: string, why: string): UserError {
  return new UserError(`invalid argument "${value}" for "--${flag}" flag: ${why}`);
}

/**
 * Typed reads of parsed flags. A flag counts as given when the user wrote it: string flags are
 * undefined otherwise, lists empty, and the booleans declared with `default: ''` (see `tristate`)
 * stay '' — that is how `--read-only=false` is told apart from no flag at all.
 */
export class FlagReader {
  private readonly tristates: Set<string>;

  constructor(
    private readonly flags: FlagValues,
    specs: readonly FlagSpec[] = [],
  ) {
    this.tristates = new Set(specs.filter((s) => s.kind === 'bool' && s.default === '').map((s) => s.name));
  }

  given(name: string): boolean {
    const v = this.flags[name];
    if (Array.isArray(v)) return v.length > 0;
    if (this.tristates.has(name)) return typeof v === 'boolean';
    if (typeof v === 'boolean') return v;
    return v !== undefined;
  }

  /** A tri-state boolean's value: undefined when not given. */
  tristate(name: string): boolean | undefined {
    const v = this.flags[name];
    return v === true ? true : v === false ? false : undefined;
  }

  bool(name: string): boolean {
    return this.flags[name] === true;
  }

  str(name: string): string | undefined {
    const v = this.flags[name];
    return v === undefined || typeof v === 'boolean' || Array.isArray(v) ? undefined : String(v);
  }

  list(name: string): string[] {
    const v = this.flags[name];
    return Array.isArray(v) ? v : [];
  }

  private parsed<T>(name: string, parse: (raw: string) => T): T | undefined {
    const raw = this.str(name);
    if (raw === undefined) return undefined;
    try {
      return parse(raw);
    } catch (e) {
      if (e instanceof ValueError) throw invalidFlag(name, raw, e.message);
      throw e;
    }
  }

  uint(name: string): number | undefined {
    return this.parsed(name, (raw) => {
      if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new ValueError('expected a non-negative integer');
      return Number(raw);
    });
  }

  int(name: string): number | undefined {
    return this.parsed(name, (raw) => {
      if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new ValueError('expected an integer');
      return Number(raw);
    });
  }

  float(name: string): number | undefined {
    return this.parsed(name, (raw) => {
      if (!/^(\d+\.?\d*|\.\d+)$/.test(raw)) throw new ValueError('expected a non-negative number');
      return Number(raw);
    });
  }

  /** A Go duration in milliseconds; negative durations are refused, as swarmkit does. */
  duration(name: string): number | undefined {
    return this.parsed(name, (raw) => {
      const ms = parseDuration(raw);
      if (ms < 0) throw new ValueError('duration cannot be negative');
      return ms;
    });
  }

  bytes(name: string): number | undefined {
    return this.parsed(name, parseBytes);
  }

  cpus(name: string): number | undefined {
    return this.parsed(name, parseNanoCpus);
  }

  /** One of the allowed words (case-insensitive), returned lower-case. */
  choice<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    return this.parsed(name, (raw) => {
      const v = raw.toLowerCase() as T;
      if (!allowed.includes(v)) throw new ValueError(`expected ${orList(allowed)}`);
      return v;
    });
  }

  /** Shell words, for --entrypoint and --args. */
  words(name: string): string[] | undefined {
    return this.parsed(name, shellWords);
  }
}

export function orList(words: readonly string[]): string {
  const q = words.map((w) => `"${w}"`);
  return q.length <= 1 ? q.join('') : `${q.slice(0, -1).join(', ')} or ${q.at(-1)}`;
}

// --- flag specs ----------------------------------------------------------------------------------

const str = (name: string, description: string, valueName?: string, short?: string): FlagSpec => ({ name, kind: 'string', description, ...(valueName ? { valueName } : {}), ...(short ? { short } : {}) });
const list = (name: string, description: string, short?: string): FlagSpec => ({ name, kind: 'list', description, ...(short ? { short } : {}) });
const bool = (name: string, description: string, short?: string): FlagSpec => ({ name, kind: 'bool', description, ...(short ? { short } : {}) });
/** A boolean whose absence is visible (value '' until given): for update, where false is a change. */
const tristate = (name: string, description: string, short?: string): FlagSpec => ({ ...bool(name, description, short), default: '' });

function updateConfigFlags(prefix: 'update' | 'rollback'): FlagSpec[] {
  const what = prefix === 'update' ? 'updated' : 'rolled back';
  const failure = prefix === 'update' ? '"pause", "continue", "rollback"' : '"pause", "continue"';
  return [
    str(`${prefix}-parallelism`, `Maximum number of tasks ${what} simultaneously (0 to ${prefix} all at once) (default 1)`, 'uint'),
    str(`${prefix}-delay`, `Delay between task ${prefix}s (ns|us|ms|s|m|h) (default 0s)`, 'duration'),
    str(`${prefix}-monitor`, `Duration after each task ${prefix} to monitor for failure (ns|us|ms|s|m|h) (default 5s)`, 'duration'),
    str(`${prefix}-failure-action`, `Action on ${prefix} failure (${failure}) (default "pause")`),
    str(`${prefix}-max-failure-ratio`, `Failure rate to tolerate during a ${prefix} (default 0)`, 'float'),
    str(`${prefix}-order`, `${prefix === 'update' ? 'Update' : 'Rollback'} order ("start-first", "stop-first") (default "stop-first")`),
  ];
}

/** Flags `service create` and `service update` share, under the same names. */
function sharedFlags(forUpdate: boolean): FlagSpec[] {
  const b = forUpdate ? tristate : bool;
  return [
    str('hostname', 'Container hostname'),
    str('workdir', 'Working directory inside the container', undefined, 'w'),
    str('user', 'Username or UID (format: <name|uid>[:<group|gid>])', undefined, 'u'),
    str('entrypoint', 'Overwrite the default ENTRYPOINT of the image', 'command'),
    str('replicas', 'Number of tasks', 'uint'),
    str('max-concurrent', 'Number of job tasks to run concurrently (default equal to --replicas)', 'uint'),
    str('replicas-max-per-node', 'Maximum number of tasks per node (default 0 = unlimited)', 'uint'),
    str('reserve-cpu', 'Reserve CPUs', 'decimal'),
    str('reserve-memory', 'Reserve Memory', 'bytes'),
    str('limit-cpu', 'Limit CPUs', 'decimal'),
    str('limit-memory', 'Limit Memory', 'bytes'),
    str('limit-pids', 'Limit maximum number of processes (default 0 = unlimited)', 'int'),
    str('restart-condition', 'Restart when condition is met ("none", "on-failure", "any") (default "any")'),
    str('restart-delay', 'Delay between restart attempts (ns|us|ms|s|m|h) (default 5s)', 'duration'),
    str('restart-max-attempts', 'Maximum number of restarts before giving up', 'uint'),
    str('restart-window', 'Window used to evaluate the restart policy (ns|us|ms|s|m|h)', 'duration'),
    str('health-cmd', 'Command to run to check health'),
    str('health-interval', 'Time between running the check (ms|s|m|h)', 'duration'),
    str('health-timeout', 'Maximum time to allow one check to run (ms|s|m|h)', 'duration'),
    str('health-retries', 'Consecutive failures needed to report unhealthy', 'int'),
    str('health-start-period', 'Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)', 'duration'),
    b('no-healthcheck', 'Disable any container-specified HEALTHCHECK'),
    str('stop-grace-period', 'Time to wait before force killing a container (ns|us|ms|s|m|h) (default 10s)', 'duration'),
    str('stop-signal', 'Signal to stop the container'),
    list('cap-add', 'Add Linux capabilities'),
    list('cap-drop', 'Drop Linux capabilities'),
    b('read-only', "Mount the container's root filesystem as read only"),
    b('tty', 'Allocate a pseudo-TTY', 't'),
    list('log-opt', 'Logging driver options (max-size=SIZE, max-file=N)'),
    str('endpoint-mode', 'Endpoint mode (vip or dnsrr) (default "vip")'),
    ...updateConfigFlags('update'),
    ...updateConfigFlags('rollback'),
    bool('detach', 'Exit immediately instead of waiting for the service to converge', 'd'),
    bool('quiet', 'Suppress progress output', 'q'),
  ];
}

export const createFlags: FlagSpec[] = [
  str('name', 'Service name'),
  str('mode', 'Service mode ("replicated", "global", "replicated-job", "global-job") (default "replicated")'),
  list('env', 'Set environment variables', 'e'),
  list('env-file', 'Read in a file of environment variables'),
  list('label', 'Service labels', 'l'),
  list('container-label', 'Container labels'),
  list('constraint', 'Placement constraints'),
  list('placement-pref', 'Add a placement preference'),
  list('publish', 'Publish a port as a node port', 'p'),
  list('network', 'Network attachments'),
  list('mount', 'Attach a filesystem mount to the service'),
  list('config', 'Specify configurations to expose to the service'),
  ...sharedFlags(false),
];

export const updateFlags: FlagSpec[] = [
  str('image', 'Service image tag'),
  str('args', 'Service command args', 'command'),
  list('env-add', 'Add or update an environment variable'),
  list('env-rm', 'Remove an environment variable'),
  list('label-add', 'Add or update a service label'),
  list('label-rm', 'Remove a label by its key'),
  list('container-label-add', 'Add or update a container label'),
  list('container-label-rm', 'Remove a container label by its key'),
  list('constraint-add', 'Add or update a placement constraint'),
  list('constraint-rm', 'Remove a constraint'),
  list('placement-pref-add', 'Add a placement preference'),
  list('placement-pref-rm', 'Remove a placement preference'),
  list('publish-add', 'Add or update a published port'),
  list('publish-rm', 'Remove a published port by its target port'),
  list('network-add', 'Add a network'),
  list('network-rm', 'Remove a network'),
  list('mount-add', 'Add or update a mount on a service'),
  list('mount-rm', 'Remove a mount by its target path'),
  list('config-add', 'Add or update a config file on a service'),
  list('config-rm', 'Remove a configuration file'),
  bool('force', 'Force update even if no changes require it'),
  bool('rollback', 'Rollback to previous specification'),
  ...sharedFlags(true),
];

// --- value parsers -------------------------------------------------------------------------------

/** `KEY=VALUE` pairs (or a bare `KEY`, meaning an empty value) as a map: labels. */
export function parseKeyValues(flag: string, values: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const key = eq < 0 ? v : v.slice(0, eq);
    if (!key.trim()) throw invalidFlag(flag, v, 'empty name');
    out[key] = eq < 0 ? '' : v.slice(eq + 1);
  }
  return out;
}

type Env = Record<string, string | undefined>;

/** `-e KEY=VALUE`, or `-e KEY` to pass the variable through from this shell (as Docker). */
export function envEntry(flag: string, v: string, env: Env): string | undefined {
  const eq = v.indexOf('=');
  if (eq === 0 || !v.trim()) throw invalidFlag(flag, v, 'invalid environment variable');
  if (eq > 0) return v;
  return env[v] !== undefined ? `${v}=${env[v]}` : v;
}

/** Docker's env-file format: KEY=VALUE lines, `#` comments, a bare KEY passed through if set. */
export function parseEnvFile(path: string, text: string, env: Env): string[] {
  const out: string[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const line = raw.replace(/^\s+/, '');
      if (!line || line.startsWith('#')) return;
      const eq = line.indexOf('=');
      const key = eq < 0 ? line.trimEnd() : line.slice(0, eq);
      if (!key) throw new UserError(`${path}:${i + 1}: no variable name on line '${raw}'`);
      if (/\s/.test(key)) throw new UserError(`${path}:${i + 1}: variable '${key}' contains whitespaces`);
      if (eq >= 0) out.push(`${key}=${line.slice(eq + 1)}`);
      else if (env[key] !== undefined) out.push(`${key}=${env[key]}`);
    });
  return out;
}

export const envKey = (entry: string): string => entry.split('=', 1)[0]!;

/** Later entries replace earlier ones with the same key; the first position is kept. */
export function mergeEnv(base: readonly string[], added: readonly string[]): string[] {
  const out = [...base];
  for (const e of added) {
    const i = out.findIndex((x) => envKey(x) === envKey(e));
    if (i >= 0) out[i] = e;
    else out.push(e);
  }
  return out;
}

/** A placement constraint is `ATTRIBUTE==VALUE` or `ATTRIBUTE!=VALUE` (swarmkit's syntax). */
export function parseConstraint(flag: string, v: string): string {
  if (!/^\s*[^=!\s][^=!]*?\s*(==|!=)\s*[^=!\s].*$/.test(v)) throw invalidFlag(flag, v, 'a constraint is KEY==VALUE or KEY!=VALUE (e.g. node.role==manager)');
  return v;
}

export function parsePlacementPref(flag: string, v: string): PlacementPreference {
  const parts = v.split('=');
  if (parts.length !== 2) throw invalidFlag(flag, v, 'placement preference must be of the format "<strategy>=<arg>"');
  if (parts[0] !== 'spread') throw invalidFlag(flag, v, `unsupported placement preference ${parts[0]} (only spread is supported)`);
  if (!parts[1]) throw invalidFlag(flag, v, 'spread needs a descriptor (e.g. spread=node.labels.zone)');
  return { spreadDescriptor: parts[1] };
}

/** Docker's capability names: upper case with the CAP_ prefix, or ALL. */
export function normalizeCapability(flag: string, c: string): string {
  const up = c.trim().toUpperCase();
  if (up === 'ALL') return up;
  const name = up.startsWith('CAP_') ? up : `CAP_${up}`;
  if (!/^CAP_[A-Z0-9_]+$/.test(name)) throw invalidFlag(flag, c, 'not a capability name (e.g. NET_ADMIN, CAP_SYS_TIME, ALL)');
  return name;
}

const PROTOCOLS = ['tcp', 'udp', 'sctp'] as const;

function portNumber(flag: string, whole: string, text: string, allowZero: boolean): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535 || (!allowZero && n === 0)) throw invalidFlag(flag, whole, `invalid port "${text}": expected 1-65535`);
  return n;
}

function portRange(flag: string, whole: string, text: string, allowZero: boolean): [number, number] {
  const [a, b, ...rest] = text.split('-');
  if (rest.length) throw invalidFlag(flag, whole, `invalid port range "${text}"`);
  const start = portNumber(flag, whole, a!, allowZero);
  const end = b === undefined ? start : portNumber(flag, whole, b, allowZero);
  if (end < start) throw invalidFlag(flag, whole, `invalid port range "${text}": end before start`);
  return [start, end];
}

const port = (target: number, published: number, protocol: PortConfig_Protocol, host: boolean): PortConfig => ({
  name: '',
  protocol,
  targetPort: target,
  publishedPort: published,
  publishMode: host ? 'HOST' : 'INGRESS',
});

/**
 * A published port: short syntax `[PUBLISHED:]TARGET[/PROTOCOL]` with ranges (`8080-8081:80-81`),
 * or the long syntax `published=8080,target=80,protocol=udp,mode=host`.
 */
export function parsePublish(flag: string, v: string): PortConfig[] {
  if (v.includes('=')) {
    let target = 0;
    let published = 0;
    let protocol: PortConfig_Protocol = 'TCP';
    let host = false;
    for (const field of v.split(',')) {
      const eq = field.indexOf('=');
      if (eq < 0) throw invalidFlag(flag, v, `invalid field '${field}' must be a key=value pair`);
      const key = field.slice(0, eq).trim().toLowerCase();
      const value = field.slice(eq + 1).trim();
      if (key === 'target') target = portNumber(flag, v, value, false);
      else if (key === 'published') published = portNumber(flag, v, value, true);
      else if (key === 'protocol') {
        if (!(PROTOCOLS as readonly string[]).includes(value.toLowerCase())) throw invalidFlag(flag, v, `invalid protocol value '${value}': expected ${orList(PROTOCOLS)}`);
        protocol = value.toUpperCase() as PortConfig_Protocol;
      } else if (key === 'mode') {
        if (value !== 'ingress' && value !== 'host') throw invalidFlag(flag, v, `invalid publish mode value (${value}): must be either 'ingress' or 'host'`);
        host = value === 'host';
      } else throw invalidFlag(flag, v, `invalid field key '${key}': expected target, published, protocol or mode`);
    }
    if (!target) throw invalidFlag(flag, v, "missing mandatory field 'target'");
    return [port(target, published, protocol, host)];
  }
  const slash = v.lastIndexOf('/');
  const spec = slash >= 0 ? v.slice(0, slash) : v;
  const proto = slash >= 0 ? v.slice(slash + 1).toLowerCase() : 'tcp';
  if (!(PROTOCOLS as readonly string[]).includes(proto)) throw invalidFlag(flag, v, `invalid proto: ${proto}`);
  const parts = spec.split(':');
  if (parts.length > 2) throw invalidFlag(flag, v, 'hostip is not supported');
  const [tStart, tEnd] = portRange(flag, v, parts.at(-1)!, false);
  const published = parts.length === 2 && parts[0] !== '' ? portRange(flag, v, parts[0]!, true) : undefined;
  if (published && published[1] - published[0] !== tEnd - tStart) throw invalidFlag(flag, v, `invalid ranges specified for container and host Ports: ${parts[1]} and ${parts[0]}`);
  const out: PortConfig[] = [];
  for (let t = tStart; t <= tEnd; t++) out.push(port(t, published ? published[0] + (t - tStart) : 0, proto.toUpperCase() as PortConfig_Protocol, false));
  return out;
}

const MOUNT_TYPES = ['bind', 'volume', 'tmpfs'] as const;

const boolField = (flag: string, whole: string, key: string, value: string | undefined): boolean => {
  if (value === undefined || ['1', 'true'].includes(value.toLowerCase())) return true;
  if (['0', 'false'].includes(value.toLowerCase())) return false;
  throw invalidFlag(flag, whole, `invalid value for ${key}: ${value}`);
};

/** `type=bind|volume|tmpfs,source=SRC,target=DST[,readonly][,tmpfs-size=SIZE]` (Docker's --mount). */
export function parseMount(flag: string, v: string): Mount {
  const m: Mount = { type: 'VOLUME', source: '', target: '', readOnly: false, tmpfsSizeBytes: 0 };
  for (const field of v.split(',')) {
    if (!field) continue;
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).trim().toLowerCase();
    const value = eq < 0 ? undefined : field.slice(eq + 1);
    if (key === 'readonly' || key === 'ro') {
      m.readOnly = boolField(flag, v, key, value);
      continue;
    }
    if (value === undefined) throw invalidFlag(flag, v, `invalid field '${field}' must be a key=value pair`);
    switch (key) {
      case 'type':
        if (!(MOUNT_TYPES as readonly string[]).includes(value.toLowerCase())) throw invalidFlag(flag, v, `invalid mount type "${value}": expected ${orList(MOUNT_TYPES)}`);
        m.type = value.toUpperCase() as Mount_Type;
        break;
      case 'source':
      case 'src':
        m.source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = value;
        break;
      case 'tmpfs-size':
        try {
          m.tmpfsSizeBytes = parseBytes(value);
        } catch (e) {
          throw invalidFlag(flag, v, (e as Error).message);
        }
        break;
      default:
        throw invalidFlag(flag, v, `unexpected key '${key}' (supported: type, source, target, readonly, tmpfs-size)`);
    }
  }
  if (!m.target) throw invalidFlag(flag, v, 'target is required');
  if (m.type === 'BIND' && !m.source) throw invalidFlag(flag, v, 'source is required for a bind mount');
  if (m.type === 'TMPFS' && m.source) throw invalidFlag(flag, v, 'source must not be set for a tmpfs mount');
  if (m.type !== 'TMPFS' && m.tmpfsSizeBytes) throw invalidFlag(flag, v, `tmpfs-size is only for type=tmpfs`);
  return m;
}

/** `--network NAME` or `--network name=NAME,alias=A[,alias=B][,driver-opt=K=V]`. */
export function parseNetworkAttachment(flag: string, v: string): NetworkAttachmentConfig {
  const att: NetworkAttachmentConfig = { target: '', aliases: [], addresses: [], driverOpts: {} };
  if (!v.includes('=')) {
    if (!v.trim()) throw invalidFlag(flag, v, 'network name/id is not specified');
    att.target = v;
    return att;
  }
  for (const field of v.split(',')) {
    const eq = field.indexOf('=');
    if (eq < 0) throw invalidFlag(flag, v, `invalid field '${field}' must be a key=value pair`);
    const key = field.slice(0, eq).trim().toLowerCase();
    const value = field.slice(eq + 1);
    if (key === 'name') att.target = value;
    else if (key === 'alias') att.aliases.push(value);
    else if (key === 'driver-opt') {
      const [k, ...rest] = value.split('=');
      if (!k || !rest.length) throw invalidFlag(flag, v, `invalid driver-opt '${value}': expected KEY=VALUE`);
      att.driverOpts[k] = rest.join('=');
    } else throw invalidFlag(flag, v, `invalid field key '${key}': expected name, alias or driver-opt`);
  }
  if (!att.target) throw invalidFlag(flag, v, 'network name/id is not specified');
  return att;
}

/** `--log-opt max-size=10m --log-opt max-file=3`: the built-in json-file driver's options. */
export function parseLogOpts(flag: string, values: readonly string[]): LogConfig {
  const log: LogConfig = { maxSize: '', maxFile: 0 };
  for (const v of values) {
    const eq = v.indexOf('=');
    const key = eq < 0 ? v : v.slice(0, eq);
    const value = eq < 0 ? '' : v.slice(eq + 1);
    if (key === 'max-size') {
      try {
        if (parseBytes(value) <= 0) throw new ValueError('max-size must be positive');
      } catch (e) {
        throw invalidFlag(flag, v, (e as Error).message);
      }
      log.maxSize = value;
    } else if (key === 'max-file') {
      if (!/^\d+$/.test(value) || Number(value) < 1) throw invalidFlag(flag, v, 'max-file must be a positive integer');
      log.maxFile = Number(value);
    } else throw invalidFlag(flag, v, `unknown log opt '${key}': expected max-size or max-file`);
  }
  return log;
}

/** Go's strconv.ParseUint(s, 0, 32), which Docker uses for a config's mode: 0444 and 0o444 are octal, 292 decimal. */
function parseFileMode(flag: string, whole: string, text: string): number {
  const t = text.trim();
  const m = /^0[oO]?([0-7]+)$/.exec(t);
  const n = m ? parseInt(m[1]!, 8) : /^0[xX][0-9a-fA-F]+$/.test(t) ? parseInt(t.slice(2), 16) : /^(0|[1-9]\d*)$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n)) throw invalidFlag(flag, whole, `invalid mode "${text}": expected an octal mode like 0444`);
  if (n > 0o777) throw invalidFlag(flag, whole, `invalid mode "${text}": at most 0777`);
  return n;
}

/**
 * `--config NAME` (mounted at /NAME) or `--config source=NAME,target=/path,uid=0,gid=0,mode=0444`
 * (Docker's ConfigOpt). A relative target is placed under `/`. The name is resolved by the manager.
 */
export function parseConfigReference(flag: string, v: string): ConfigReference {
  const ref: ConfigReference = { configId: '', configName: '', file: { name: '', uid: '0', gid: '0', mode: 0o444 }, data: new Uint8Array(0) };
  const file = ref.file!;
  if (!v.includes('=')) {
    if (!v.trim()) throw invalidFlag(flag, v, 'source is required');
    ref.configName = v.trim();
  } else {
    for (const field of v.split(',')) {
      const eq = field.indexOf('=');
      if (eq < 0) throw invalidFlag(flag, v, `invalid field '${field}' must be a key=value pair`);
      const key = field.slice(0, eq).trim().toLowerCase();
      const value = field.slice(eq + 1);
      if (key === 'source' || key === 'src') ref.configName = value;
      else if (key === 'target') file.name = value;
      else if (key === 'uid' || key === 'gid') {
        if (!/^\d+$/.test(value)) throw invalidFlag(flag, v, `invalid ${key} "${value}": expected a number`);
        file[key] = value;
      } else if (key === 'mode') file.mode = parseFileMode(flag, v, value);
      else throw invalidFlag(flag, v, `invalid field in config request: ${key} (expected source, target, uid, gid or mode)`);
    }
    if (!ref.configName) throw invalidFlag(flag, v, 'source is required');
  }
  const target = file.name || ref.configName;
  file.name = target.startsWith('/') ? target : `/${target}`;
  return ref;
}
