// The lab: N hosts on this machine, each a network namespace (plus a UTS namespace for its
// hostname) with eth0 on a bridge in a namespace of its own. Nothing of it touches the root
// namespace: veth pairs are created straight between the underlay and host namespaces.
//
// `down` is the safety net of everything else: it finds what to clean both from hosts.json and by
// naming convention, so it works after a crash, a killed `up`, a failed `down`, or twice.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { UserError } from '../../util/command.js';
import { DATA_ROOT, DEFAULT_LAB, LAB_CGROUP_ROOT, DEFAULT_SUBNET, HOST_IFACE, isLabNamespace, labLayout, NETNS_DIR, STATE_ROOT, validateLabName, type HostLayout, type LabLayout } from './layout.js';
import { isMountPoint, mountsUnder, unmountAll } from './mounts.js';
import { isNamespaceFile, killProcess, killProcessesIn, namespaceId, processStartTime, type NamespaceId } from './procs.js';
import { startRegistry } from './registry.js';
import { ipBatch, run, type RunResult } from './run.js';
import { readState, STATE_VERSION, writeState, type LabState } from './state.js';

export interface UpOptions {
  hosts: number;
  subnet?: string;
  /** Also a registry host holding the test image (deploy/labkit/registry.ts). */
  registry?: boolean;
}

export interface UpResult {
  /** False when the lab was already up with this shape. */
  created: boolean;
  layout: LabLayout;
}

export interface DownResult {
  /** False when there was nothing of this lab to clean. */
  found: boolean;
  namespaces: string[];
  processes: number[];
  mounts: string[];
}

export interface HostStatus {
  name: string;
  address: string;
  netns: string;
  /** `up` when its namespaces exist, `missing` when something removed them. */
  state: 'up' | 'missing';
}

export interface LabStatus {
  name: string;
  subnet: string;
  status: LabState['status'];
  hosts: HostStatus[];
}

export interface ExecResult extends RunResult {
  signal: NodeJS.Signals | null;
}

export class Lab {
  readonly name: string;

  /** `log` receives one line per step of `up`/`down` (the CLI prints them as progress). */
  constructor(
    name: string = DEFAULT_LAB,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.name = validateLabName(name);
  }

  get stateDir(): string {
    return `${STATE_ROOT}/${this.name}`;
  }

  get stateFile(): string {
    return `${this.stateDir}/hosts.json`;
  }

  get dataDir(): string {
    return `${DATA_ROOT}/${this.name}`;
  }

  state(): LabState | undefined {
    return readState(this.stateFile);
  }

  /** The layout of the lab that is up; a user error when it is not. */
  layout(): LabLayout {
    const s = this.state();
    if (!s) throw new UserError(`lab "${this.name}" is not up (start it with: deploy/lab up --name ${this.name} --hosts N)`);
    return s.layout;
  }

  host(name: string): HostLayout {
    const layout = this.layout();
    const h = layout.hosts.find((x) => x.name === name);
    if (!h) {
      const last = layout.hosts[layout.hosts.length - 1]!.name;
      throw new UserError(`no host "${name}" in lab "${this.name}" (its hosts are h1${last === 'h1' ? '' : ` to ${last}`})`);
    }
    return h;
  }

  async up(opts: UpOptions): Promise<UpResult> {
    const layout = labLayout(this.name, opts.hosts, opts.subnet ?? DEFAULT_SUBNET, opts.registry ?? false);
    const existing = this.state();
    if (existing) {
      const { builder } = existing;
      if (existing.status === 'building' && processStartTime(builder.pid) === builder.startTime && builder.pid !== process.pid) {
        throw new UserError(`lab "${this.name}" is being built right now by process ${builder.pid}`);
      }
      if (existing.status === 'ready') {
        const was = existing.layout;
        if (was.hosts.length !== layout.hosts.length || was.subnet !== layout.subnet || Boolean(was.registry) !== Boolean(layout.registry)) {
          const shape = (l: LabLayout) => `${l.hosts.length} hosts on ${l.subnet}${l.registry ? ' with a registry' : ''}`;
          throw new UserError(
            `lab "${this.name}" is already up with ${shape(was)}, not ${shape(layout)}; ` +
              `take it down first (deploy/lab down --name ${this.name})`,
          );
        }
        const missing = this.missingParts(was);
        if (missing.length) {
          throw new UserError(`lab "${this.name}" is damaged (${missing.join(', ')} missing); take it down and up again`);
        }
        this.log(`lab ${this.name} is already up with ${was.hosts.length} hosts on ${was.subnet}`);
        return { created: false, layout: was };
      }
    }
    if (existing || this.leftovers().length) {
      this.log(`cleaning up what an unfinished lab ${this.name} left behind`);
      await this.down();
    }

    mkdirSync(STATE_ROOT, { recursive: true });
    try {
      // Not recursive: if it exists now, another `up` of this lab started in the meantime.
      mkdirSync(this.stateDir);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new UserError(`lab "${this.name}" is being built right now by another process`);
      throw e;
    }
    const state: LabState = {
      version: STATE_VERSION,
      status: 'building',
      builder: { pid: process.pid, startTime: processStartTime(process.pid) },
      createdAt: new Date().toISOString(),
      namespaces: {},
      layout,
    };
    writeState(this.stateFile, state);
    try {
      await this.build(layout, state);
    } catch (e) {
      this.log(`up failed, removing what it made: ${(e as Error).message}`);
      try {
        await this.down();
      } catch (cleanup) {
        (e as Error).message += ` (and cleaning up failed too: ${(cleanup as Error).message}; run deploy/lab down --name ${this.name})`;
      }
      throw e;
    }
    state.status = 'ready';
    writeState(this.stateFile, state);
    this.log(`lab ${this.name} is up: ${layout.hosts.length} hosts on ${layout.subnet}`);
    return { created: true, layout };
  }

  private async build(layout: LabLayout, state: LabState): Promise<void> {
    mkdirSync(NETNS_DIR, { recursive: true });
    const made = (path: string, id: NamespaceId): void => {
      state.namespaces[path] = id;
      writeState(this.stateFile, state);
    };
    const u = layout.underlay;
    made(u.netnsPath, await createNamespace('net', u.netnsPath));
    // No STP: ports forward at once, and nothing loops in a star of veths.
    await ipBatch(u.netns, ['link set lo up', `link add ${u.bridge} type bridge stp_state 0`, `link set ${u.bridge} up`]);
    this.log(`underlay ${u.netns}: bridge ${u.bridge}`);
    for (const h of layout.hosts) {
      made(h.netnsPath, await createNamespace('net', h.netnsPath));
      mkdirSync(h.runDir, { recursive: true });
      made(h.utsPath, await createNamespace('uts', h.utsPath, h.name));
      await ipBatch(u.netns, [
        `link add ${h.underlayPort} type veth peer name ${HOST_IFACE} address ${h.mac} netns ${h.netns}`,
        `link set ${h.underlayPort} master ${u.bridge} up`,
      ]);
      await ipBatch(h.netns, ['link set lo up', `addr add ${h.cidr} dev ${HOST_IFACE}`, `link set ${HOST_IFACE} up`]);
      mkdirSync(h.dataDir, { recursive: true });
      this.log(`${h.name}: ${h.cidr} in ${h.netns}`);
    }
    const r = layout.registry;
    if (r) {
      made(r.netnsPath, await createNamespace('net', r.netnsPath));
      await ipBatch(u.netns, [`link add ${r.underlayPort} type veth peer name ${HOST_IFACE} address ${r.mac} netns ${r.netns}`, `link set ${r.underlayPort} master ${u.bridge} up`]);
      await ipBatch(r.netns, ['link set lo up', `addr add ${r.cidr} dev ${HOST_IFACE}`, `link set ${HOST_IFACE} up`]);
      await startRegistry(layout, this.log);
    }
  }

  /** Names of the parts of a ready lab that are gone. */
  private missingParts(layout: LabLayout): string[] {
    const missing: string[] = [];
    for (const path of [layout.underlay.netnsPath, ...layout.hosts.flatMap((h) => [h.netnsPath, h.utsPath]), ...(layout.registry ? [layout.registry.netnsPath] : [])]) {
      if (!isNamespaceFile(path)) missing.push(path);
    }
    return missing;
  }

  /** Anything of this lab that exists without a state file: namespaces, mounts, directories. */
  private leftovers(): string[] {
    return [...this.namespacesByName().map((n) => `${NETNS_DIR}/${n}`), ...[this.stateDir, this.dataDir].filter((p) => existsSync(p))];
  }

  private namespacesByName(): string[] {
    let names: string[];
    try {
      names = readdirSync(NETNS_DIR);
    } catch {
      return [];
    }
    return names.filter((n) => isLabNamespace(this.name, n)).sort();
  }

  async down(): Promise<DownResult> {
    const state = this.state();
    // What to clean: the state's record, then everything the naming convention says is ours.
    const ids = new Set<NamespaceId>(Object.values(state?.namespaces ?? {}));
    const netnsPaths = new Set<string>(this.namespacesByName().map((n) => `${NETNS_DIR}/${n}`));
    if (state) {
      netnsPaths.add(state.layout.underlay.netnsPath);
      for (const h of state.layout.hosts) netnsPaths.add(h.netnsPath);
      if (state.layout.registry) netnsPaths.add(state.layout.registry.netnsPath);
    }
    const labMounts = mountsUnder(this.stateDir);
    for (const path of [...netnsPaths, ...labMounts]) {
      if (isNamespaceFile(path)) ids.add(namespaceId(path)!);
    }
    const found = state !== undefined || ids.size > 0 || [...netnsPaths].some((p) => existsSync(p)) || existsSync(this.stateDir) || existsSync(this.dataDir);

    // An `up` of this lab still running would go on building behind our back: down wins.
    const builder = state?.status === 'building' ? state.builder : undefined;
    if (builder && builder.pid !== process.pid && processStartTime(builder.pid) === builder.startTime) {
      this.log(`stopping the unfinished up of lab ${this.name} (process ${builder.pid})`);
      await killProcess(builder.pid, builder.startTime);
    }
    // Processes first: while one lives in a namespace, the namespace (and its links) lives too.
    const processes = await killProcessesIn(ids);
    // A daemon may have made a namespace between the listing above and its death: list again.
    for (const n of this.namespacesByName()) netnsPaths.add(`${NETNS_DIR}/${n}`);
    if (processes.length) this.log(`killed ${processes.length} process${processes.length === 1 ? '' : 'es'} left in the lab: ${processes.join(' ')}`);

    const namespaces: string[] = [];
    const mounts: string[] = [];
    for (const path of [...netnsPaths].sort()) {
      if (!existsSync(path) && !isMountPoint(path)) continue;
      await removeMounted([path], () => rmSync(path, { force: true }), mounts);
      namespaces.push(path.slice(NETNS_DIR.length + 1));
    }
    // Containers live in namespaces of their own, not the hosts': their cgroups name them.
    const containerProcs = await killLabContainers(this.name);
    if (containerProcs.length) this.log(`killed ${containerProcs.length} container process${containerProcs.length === 1 ? '' : 'es'}`);
    // Containers' root filesystems (overlay mounts) under the hosts' data, then their cgroups.
    await removeMounted(
      () => mountsUnder(this.dataDir),
      () => rmSync(this.dataDir, { recursive: true, force: true }),
      mounts,
    );
    removeLabCgroups(this.name);
    // Last, so a `down` that fails above can be run again and still find the record.
    await removeMounted(
      () => mountsUnder(this.stateDir),
      () => rmSync(this.stateDir, { recursive: true, force: true }),
      mounts,
    );
    if (found) this.log(`lab ${this.name} is down (removed ${namespaces.length} namespaces, ${mounts.length} mounts)`);
    return { found, namespaces, processes, mounts };
  }

  /** Starts argv on `host`, in its network and UTS namespaces (not a mount namespace: cgroups stay visible). */
  spawn(host: string, argv: readonly string[], opts: { stdio?: StdioOptions; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
    if (argv.length === 0) throw new UserError('no command given to run on the host');
    const h = this.host(host);
    for (const path of [h.netnsPath, h.utsPath]) {
      if (!isNamespaceFile(path)) throw new UserError(`host ${host} of lab "${this.name}" has lost ${path}; take the lab down and up again`);
    }
    return spawn('nsenter', [`--net=${h.netnsPath}`, `--uts=${h.utsPath}`, '--', ...argv], { stdio: opts.stdio ?? 'pipe', env: opts.env ?? process.env });
  }

  /** Runs argv on `host` to completion, capturing its output. */
  exec(host: string, argv: readonly string[], input?: string): Promise<ExecResult> {
    const child = this.spawn(host, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    return new Promise((resolve, reject) => {
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
      child.stdin!.on('error', () => {});
      child.stdin!.end(input ?? '');
    });
  }

  status(): LabStatus | undefined {
    const s = this.state();
    if (!s) return undefined;
    return {
      name: this.name,
      subnet: s.layout.subnet,
      status: s.status,
      hosts: s.layout.hosts.map((h) => ({
        name: h.name,
        address: h.address,
        netns: h.netns,
        state: isNamespaceFile(h.netnsPath) && isNamespaceFile(h.utsPath) ? 'up' : 'missing',
      })),
    };
  }
}

/** SIGKILLs every process in the lab's container cgroups and waits until they are gone. */
async function killLabContainers(lab: string): Promise<number[]> {
  const killed = new Set<number>();
  for (let round = 0; round < 50; round++) {
    const pids = labCgroupPids(lab);
    if (pids.length === 0) return [...killed];
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new UserError(`processes in the cgroups of lab ${lab} would not die: ${labCgroupPids(lab).join(' ')}`);
}

function labCgroupPids(lab: string): number[] {
  const pids = new Set<number>();
  const walk = (dir: string): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const line of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n')) if (line) pids.add(Number(line));
    } catch {
      // not a cgroup directory
    }
    for (const e of entries) if (e.isDirectory()) walk(`${dir}/${e.name}`);
  };
  let controllers: string[] = [];
  try {
    controllers = readdirSync(CGROUP_FS);
  } catch {
    return [];
  }
  for (const c of controllers) walk(`${CGROUP_FS}/${c}${LAB_CGROUP_ROOT}/${lab}`);
  return [...pids];
}

/** Removes the (now empty: their processes are dead) cgroups of the lab's containers, deepest first. */
function removeLabCgroups(lab: string): void {
  let controllers: string[];
  try {
    controllers = readdirSync(CGROUP_FS);
  } catch {
    return;
  }
  const rmTree = (dir: string): void => {
    let entries: string[];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    } catch {
      return;
    }
    for (const e of entries) rmTree(`${dir}/${e}`);
    try {
      rmdirSync(dir);
    } catch {
      // busy (a process outlived the kill) or already gone: nothing more to do here
    }
  };
  for (const c of controllers) rmTree(`${CGROUP_FS}/${c}${LAB_CGROUP_ROOT}/${lab}`);
}

const CGROUP_FS = '/sys/fs/cgroup';

/**
 * Unmounts, then removes. Retried: a tool that `up` started just before it was killed may still
 * be mounting a namespace file (the mount lands between our unmount and our unlink: EBUSY).
 */
async function removeMounted(paths: string[] | (() => string[]), remove: () => void, unmounted: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    for (const p of typeof paths === 'function' ? paths() : paths.filter(isMountPoint)) {
      await unmountAll(p);
      unmounted.push(p);
    }
    try {
      remove();
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EBUSY' || attempt === 5) throw e;
    }
  }
}

/**
 * A persistent namespace of `kind` bind-mounted on `path` (what `ip netns add` does, without its
 * side effect of turning /run/netns into a shared mount that `down` could not take back). For a
 * UTS namespace, `hostname` is set inside it.
 */
async function createNamespace(kind: 'net' | 'uts', path: string, hostname?: string): Promise<NamespaceId> {
  try {
    writeFileSync(path, '', { flag: 'wx' });
  } catch (e) {
    throw new UserError(`cannot create namespace file ${path}: ${(e as Error).message}`);
  }
  await run(['unshare', `--${kind}=${path}`, ...(hostname !== undefined ? ['hostname', hostname] : ['true'])]);
  const id = namespaceId(path);
  if (id === undefined || !isNamespaceFile(path)) throw new UserError(`unshare did not mount a namespace on ${path}`);
  return id;
}
