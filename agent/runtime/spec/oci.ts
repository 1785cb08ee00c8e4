// OCI runtime config (config.json) for one container: Docker's defaults (capabilities, masked and
// read-only paths, /dev /proc /sys mounts, device rules) with the image config and the task's
// container spec layered on top. Pure: the caller resolves the user and decides where files live.
import { isAbsolute, join } from 'node:path';
import type { ContainerSpec, ImageConfig } from '../runtime.js';
import { resolveCapabilities } from './capabilities.js';
import type { ResolvedUser } from './user.js';

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export interface OciConfig {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[]; inheritable: string[]; ambient: string[] };
    rlimits?: { type: string; hard: number; soft: number }[];
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: OciMount[];
  linux: {
    namespaces: { type: string; path?: string }[];
    cgroupsPath: string;
    resources: {
      devices: { allow: boolean; type?: string; major?: number; minor?: number; access: string }[];
      memory?: { limit: number };
      cpu?: { quota: number; period: number };
      pids?: { limit: number };
    };
    maskedPaths: string[];
    readonlyPaths: string[];
    sysctl?: Record<string, string>;
  };
  annotations?: Record<string, string>;
}

/** moby's defaults (oci/defaults.go). */
export const DEFAULT_MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const CPU_PERIOD_US = 100_000;

export interface BuildInput {
  spec: ContainerSpec;
  user: ResolvedUser;
  /** Where the per-container /etc/hosts, /etc/hostname, /etc/resolv.conf files are. */
  hostFiles: { hosts: string; hostname: string; resolvConf: string };
  /** Directory holding named volumes: volume `x` is `<volumesDir>/x/_data`. */
  volumesDir: string;
  cgroupsPath: string;
}

/** The process's argv: swarm semantics for Command (entrypoint) and Args (cmd). */
export function resolveArgs(spec: ContainerSpec): string[] {
  const image: ImageConfig = spec.image ?? {};
  const argv =
    spec.command !== undefined && spec.command.length > 0
      ? [...spec.command, ...(spec.args ?? [])]
      : [...(image.Entrypoint ?? []), ...(spec.args ?? image.Cmd ?? [])];
  if (argv.length === 0) throw new Error(`container ${spec.id}: no command specified (neither the spec nor the image gives one)`);
  return argv;
}

/** Image env, then spec env (a later KEY replaces an earlier one), then PATH/HOSTNAME/HOME defaults. */
export function mergeEnv(imageEnv: string[], specEnv: string[], defaults: Record<string, string>): string[] {
  const order: string[] = [];
  const values = new Map<string, string>();
  const put = (entry: string): void => {
    const eq = entry.indexOf('=');
    const key = eq === -1 ? entry : entry.slice(0, eq);
    if (key === '') throw new Error(`invalid environment entry "${entry}": expected KEY=VALUE`);
    if (!values.has(key)) order.push(key);
    values.set(key, entry);
  };
  for (const [k, v] of Object.entries(defaults)) put(`${k}=${v}`);
  for (const e of imageEnv) put(e);
  for (const e of specEnv) put(e);
  return order.map((k) => values.get(k) as string);
}

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function containerMounts(spec: ContainerSpec, volumesDir: string): OciMount[] {
  return (spec.mounts ?? []).map((m) => {
    if (!isAbsolute(m.target)) throw new Error(`mount target "${m.target}" must be an absolute path`);
    const ro = m.readOnly ? ['ro'] : ['rw'];
    switch (m.type) {
      case 'bind':
        if (!isAbsolute(m.source)) throw new Error(`bind mount source "${m.source}" must be an absolute host path`);
        return { destination: m.target, type: 'bind', source: m.source, options: ['rbind', 'rprivate', ...ro] };
      case 'volume':
        if (!VOLUME_NAME.test(m.source)) throw new Error(`invalid volume name "${m.source}": use letters, digits, '_', '.', '-'`);
        return { destination: m.target, type: 'bind', source: join(volumesDir, m.source, '_data'), options: ['rbind', 'rprivate', ...ro] };
      case 'tmpfs': {
        const options = ['nosuid', 'nodev', ...ro];
        if (m.sizeBytes !== undefined) options.push(`size=${m.sizeBytes}`);
        options.push(`mode=${(m.mode ?? 0o1777).toString(8)}`);
        return { destination: m.target, type: 'tmpfs', source: 'tmpfs', options };
      }
      default:
        throw new Error(`unknown mount type "${(m as { type: string }).type}" (expected bind, volume or tmpfs)`);
    }
  });
}

export function buildOciConfig(input: BuildInput): OciConfig {
  const { spec, user } = input;
  const image = spec.image ?? {};
  const hostname = spec.hostname ?? spec.id.slice(0, 12);
  const caps = resolveCapabilities(spec.capAdd, spec.capDrop);
  const cwd = spec.cwd ?? (image.WorkingDir || '/');
  if (!isAbsolute(cwd)) throw new Error(`working directory "${cwd}" must be an absolute path`);
  const env = mergeEnv(image.Env ?? [], spec.env ?? [], { PATH: DEFAULT_PATH, HOSTNAME: hostname, HOME: user.home || '/' });

  const resources: OciConfig['linux']['resources'] = { devices: [{ allow: false, access: 'rwm' }] };
  const r = spec.resources ?? {};
  if (r.memoryBytes !== undefined) {
    if (!Number.isInteger(r.memoryBytes) || r.memoryBytes < 6 * 1024 * 1024) {
      throw new Error(`memory limit ${r.memoryBytes} is too small: at least 6 MiB (6291456 bytes)`);
    }
    resources.memory = { limit: r.memoryBytes };
  }
  if (r.nanoCpus !== undefined && r.nanoCpus > 0) {
    const quota = Math.round((r.nanoCpus * CPU_PERIOD_US) / 1e9);
    if (quota < 1000) throw new Error(`CPU limit ${r.nanoCpus / 1e9} is too small: at least 0.01 CPUs`);
    resources.cpu = { quota, period: CPU_PERIOD_US };
  }
  if (r.pidsLimit !== undefined && r.pidsLimit > 0) resources.pids = { limit: r.pidsLimit };

  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864'] },
    { destination: '/etc/hosts', type: 'bind', source: input.hostFiles.hosts, options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/etc/hostname', type: 'bind', source: input.hostFiles.hostname, options: ['rbind', 'rprivate', 'rw'] },
    { destination: '/etc/resolv.conf', type: 'bind', source: input.hostFiles.resolvConf, options: ['rbind', 'rprivate', 'rw'] },
    ...containerMounts(spec, input.volumesDir),
  ];

  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length > 0 ? { additionalGids: user.additionalGids } : {}) },
      args: resolveArgs(spec),
      env,
      cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: false,
    },
    root: { path: spec.rootfs, readonly: spec.readOnlyRootfs === true },
    hostname,
    mounts,
    linux: {
      namespaces: [
        { type: 'pid' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        spec.netns !== undefined ? { type: 'network', path: spec.netns } : { type: 'network' },
      ],
      cgroupsPath: input.cgroupsPath,
      resources,
      maskedPaths: DEFAULT_MASKED_PATHS,
      readonlyPaths: DEFAULT_READONLY_PATHS,
      // Docker's default: any user may ping (ICMP sockets), not only root with NET_RAW.
      sysctl: { 'net.ipv4.ping_group_range': '0 2147483647' },
    },
    ...(spec.labels && Object.keys(spec.labels).length > 0 ? { annotations: spec.labels } : {}),
  };
}
