// The runc + conmon backend of Runtime. Stateless in memory: every answer comes from the files
// under the root dir, runc's state and conmon's exit files, so a new instance over the same root
// (after the agent was killed, say) sees exactly what the old one saw, including exit codes of
// containers that died while no agent ran.
import { randomBytes } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat, writeFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readLogs } from '../logs/reader.js';
import { rotateIfNeeded } from '../logs/rotate.js';
import {
  ExecUserError,
  NoSuchContainerError,
  type ContainerInfo,
  type ContainerSpec,
  type ExecOptions,
  type ExecSession,
  type ExitStatus,
  type LogEntry,
  type LogOptions,
  type Runtime,
  type StopOptions,
} from '../runtime.js';
import { writeHostFiles } from '../spec/hostfiles.js';
import { buildOciConfig } from '../spec/oci.js';
import { normalizeSignal } from '../spec/signals.js';
import { resolveUser } from '../spec/user.js';
import { isConmonAlive, startConmon } from './conmon.js';
import { ExecProcess } from './exec.js';
import { Layout, validateId, type ContainerPaths } from './layout.js';
import { Runc, RuncError, type RuncState } from './runc.js';

export interface RuncRuntimeOptions {
  /** State root, e.g. <data-root>/runtime. */
  root: string;
  runcPath?: string;
  conmonPath?: string;
  /** cgroup parent for every container (cgroupfs driver): /shoal → /sys/fs/cgroup/<ctrl>/shoal/<id>. */
  cgroupParent?: string;
  /** How often the agent checks log sizes for rotation; 0 disables the timer. Default 1 s. */
  logRotateIntervalMs?: number;
  /** How often wait() and follow() look for an exit. Default 100 ms. */
  pollMs?: number;
  /** How often wait() looks anyway while inotify watches the exit directory. Default 1 s. */
  watchPollMs?: number;
}

/** What we store beside the bundle: the spec as given, and times runc does not keep. */
interface Meta {
  id: string;
  name: string;
  spec: ContainerSpec;
  createdAt: string;
  startedAt?: string;
  conmonPid?: number;
}

const DEFAULT_GRACE_MS = 10_000;

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify(value, null, 2));
  await rename(tmp, path);
}

export class RuncRuntime implements Runtime {
  readonly layout: Layout;
  readonly runc: Runc;
  private readonly conmonPath: string;
  private readonly runcPath: string;
  private readonly cgroupParent: string;
  private readonly pollMs: number;
  private readonly watchPollMs: number;
  private rotateTimer: NodeJS.Timeout | undefined;
  private rotating = false;
  private dirsMade: Promise<void> | undefined;

  constructor(options: RuncRuntimeOptions) {
    this.layout = new Layout(options.root);
    this.runcPath = options.runcPath ?? '/usr/sbin/runc';
    this.conmonPath = options.conmonPath ?? '/usr/bin/conmon';
    this.runc = new Runc(this.runcPath, this.layout.runcRoot);
    this.cgroupParent = (options.cgroupParent ?? '/shoal').replace(/\/+$/, '');
    this.pollMs = options.pollMs ?? 100;
    this.watchPollMs = options.watchPollMs ?? 1000;
    const every = options.logRotateIntervalMs ?? 1000;
    if (every > 0) {
      this.rotateTimer = setInterval(() => void this.rotateAllLogs().catch(() => undefined), every);
      this.rotateTimer.unref();
    }
  }

  /** Stops background work. Containers and their monitors keep running. */
  async close(): Promise<void> {
    if (this.rotateTimer) clearInterval(this.rotateTimer);
    this.rotateTimer = undefined;
  }

  cgroupPath(id: string): string {
    return `${this.cgroupParent}/${id}`;
  }

  // ---- create / start ----

  async create(spec: ContainerSpec): Promise<ContainerInfo> {
    validateId(spec.id);
    const paths = this.layout.container(spec.id);
    this.dirsMade ??= Promise.all([
      mkdir(this.layout.containersDir, { recursive: true }),
      mkdir(this.layout.runcRoot, { recursive: true }),
      mkdir(this.layout.socketDir, { recursive: true }),
    ]).then(() => undefined);
    await this.dirsMade.catch((err: unknown) => {
      this.dirsMade = undefined;
      throw err;
    });
    let meta: Meta;
    let containerPid: number;
    try {
      await mkdir(paths.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new Error(`container ${spec.id} already exists`);
      throw err;
    }
    try {
      const rootStat = await stat(spec.rootfs).catch(() => undefined);
      if (!rootStat?.isDirectory()) throw new Error(`rootfs "${spec.rootfs}" of container ${spec.id} is not a directory`);
      await mkdir(paths.exitDir);
      const user = await resolveUser(spec.rootfs, spec.user ?? spec.image?.User ?? '');
      const hostname = spec.hostname ?? spec.id.slice(0, 12);
      for (const m of spec.mounts ?? []) {
        if (m.type === 'volume') await mkdir(join(this.layout.volumesDir, m.source, '_data'), { recursive: true });
      }
      await writeHostFiles(spec, hostname, paths);
      const config = buildOciConfig({
        spec: { ...spec, hostname },
        user,
        hostFiles: paths,
        volumesDir: this.layout.volumesDir,
        cgroupsPath: this.cgroupPath(spec.id),
      });
      await writeFile(paths.config, JSON.stringify(config, null, 2));
      meta = { id: spec.id, name: spec.name ?? spec.id, spec, createdAt: new Date().toISOString() };
      await writeJsonAtomic(paths.meta, meta);
      const started = await startConmon({
        conmonPath: this.conmonPath,
        runcPath: this.runcPath,
        runcRoot: this.layout.runcRoot,
        id: spec.id,
        name: meta.name,
        bundle: paths.dir,
        containerPidFile: paths.containerPid,
        conmonPidFile: paths.conmonPid,
        logPath: paths.log,
        exitDir: paths.exitDir,
        socketDir: this.layout.socketDir,
      });
      meta = { ...meta, conmonPid: started.conmonPid };
      await writeJsonAtomic(paths.meta, meta);
      containerPid = started.containerPid;
    } catch (err) {
      await this.runc.delete(spec.id, true).catch(() => undefined);
      await rm(paths.dir, { recursive: true, force: true });
      throw err;
    }
    // conmon answered with runc's pid: the container is created (no need to ask runc again).
    return { id: spec.id, name: meta.name, status: 'created', pid: containerPid, createdAt: new Date(meta.createdAt), labels: spec.labels ?? {}, rootfs: spec.rootfs };
  }

  async start(id: string): Promise<void> {
    const { paths, meta } = await this.load(id);
    await this.runc.start(id);
    await writeJsonAtomic(paths.meta, { ...meta, startedAt: new Date().toISOString() });
  }

  // ---- state ----

  private async load(id: string): Promise<{ paths: ContainerPaths; meta: Meta }> {
    validateId(id);
    const paths = this.layout.container(id);
    let text: string;
    try {
      text = await readFile(paths.meta, 'utf8');
    } catch {
      throw new NoSuchContainerError(id);
    }
    return { paths, meta: JSON.parse(text) as Meta };
  }

  private async readExit(paths: ContainerPaths): Promise<ExitStatus | undefined> {
    try {
      const [text, st] = await Promise.all([readFile(paths.exitFile, 'utf8'), stat(paths.exitFile)]);
      const code = Number(text.trim());
      if (!Number.isInteger(code)) return undefined;
      return { exitCode: code, finishedAt: st.mtime };
    } catch {
      return undefined;
    }
  }

  /** From meta.json, or conmon's own pid file when the agent died before recording it. */
  private async conmonPid(paths: ContainerPaths, meta: Meta): Promise<number> {
    return meta.conmonPid ?? Number((await readFile(paths.conmonPid, 'utf8').catch(() => '')).trim());
  }

  private async conmonAlive(paths: ContainerPaths, meta: Meta): Promise<boolean> {
    return isConmonAlive(await this.conmonPid(paths, meta), meta.id);
  }

  async inspect(id: string): Promise<ContainerInfo> {
    return this.describe(id, (cid) => this.runc.quickState(cid).catch(() => undefined));
  }

  /** inspect() with the runc state lookup supplied, so list() can ask runc once for all. */
  private async describe(id: string, runcState: (id: string) => Promise<RuncState | undefined>): Promise<ContainerInfo> {
    const { paths, meta } = await this.load(id);
    const base: ContainerInfo = {
      id,
      name: meta.name,
      status: 'unknown',
      createdAt: new Date(meta.createdAt),
      labels: meta.spec.labels ?? {},
      rootfs: meta.spec.rootfs,
      ...(meta.startedAt ? { startedAt: new Date(meta.startedAt) } : {}),
    };
    // Every source at once (the worker asks this for each task as it starts): the late re-read
    // of the exit file below covers conmon writing it between these looks.
    const [oom, exit, state, monitored] = await Promise.all([exists(paths.oom), this.readExit(paths), runcState(id), this.conmonAlive(paths, meta)]);
    if (oom) base.oomKilled = true;
    if (exit) return { ...base, status: 'exited', exitCode: exit.exitCode, finishedAt: exit.finishedAt };
    if (state && (state.status === 'created' || state.status === 'running' || state.status === 'paused')) {
      return { ...base, status: state.status, pid: state.pid };
    }
    if (monitored) {
      // runc already reports the process gone, conmon has not written the exit file yet.
      return { ...base, status: 'running' };
    }
    // Re-read: conmon may have written the file and exited between our two looks.
    const late = await this.readExit(paths);
    if (late) return { ...base, status: 'exited', exitCode: late.exitCode, finishedAt: late.finishedAt };
    return {
      ...base,
      status: state ? 'exited' : 'unknown',
      error: state
        ? 'the container stopped but its monitor (conmon) died without recording an exit code'
        : 'runc has no state for this container and no monitor is running',
    };
  }

  async list(): Promise<ContainerInfo[]> {
    let ids: string[];
    try {
      ids = await readdir(this.layout.containersDir);
    } catch {
      return [];
    }
    const states = new Map((await this.runc.list().catch(() => [] as RuncState[])).map((s) => [s.id, s]));
    const out: ContainerInfo[] = [];
    for (const id of ids.sort()) {
      try {
        out.push(await this.describe(id, async (cid) => states.get(cid)));
      } catch (err) {
        if (!(err instanceof NoSuchContainerError)) throw err; // half-created or being removed
      }
    }
    return out;
  }

  async wait(id: string, options: { signal?: AbortSignal } = {}): Promise<ExitStatus> {
    const { paths, meta } = await this.load(id);
    // conmon renames the exit file into exits/ when the container ends: inotify on that directory
    // says so at once. A slow poll stays as the safety net (conmon killed before writing it);
    // without a watch, the fast poll. Fifty running tasks polled ten times a second each were
    // the agent's main idle cost.
    let wake: (() => void) | undefined;
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(paths.exitDir, () => wake?.());
      watcher.on('error', () => undefined);
    } catch {
      watcher = undefined;
    }
    try {
      for (;;) {
        options.signal?.throwIfAborted();
        const exit = await this.readExit(paths);
        if (exit) return exit;
        if (!(await this.conmonAlive(paths, meta))) {
          const late = await this.readExit(paths);
          if (late) return late;
          const info = await this.inspect(id);
          if (info.status !== 'running' && info.status !== 'created' && info.status !== 'paused') {
            throw new Error(`container ${id}: ${info.error ?? 'exit code unavailable'}`);
          }
        }
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            options.signal?.removeEventListener('abort', done);
            wake = undefined;
            resolve();
          };
          const timer = setTimeout(done, watcher ? this.watchPollMs : this.pollMs);
          options.signal?.addEventListener('abort', done, { once: true });
          wake = done;
        });
      }
    } finally {
      watcher?.close();
    }
  }

  // ---- signals ----

  async kill(id: string, signal = 'SIGKILL'): Promise<void> {
    await this.load(id);
    try {
      await this.runc.kill(id, normalizeSignal(signal));
    } catch (err) {
      // Exited already (runc says "container not running"): nothing left to signal.
      if (err instanceof RuncError && /not running|does not exist/.test(err.stderr)) return;
      throw err;
    }
  }

  async stop(id: string, options: StopOptions = {}): Promise<ExitStatus> {
    const { meta } = await this.load(id);
    const info = await this.inspect(id);
    if (info.status === 'exited' && info.exitCode !== undefined) {
      return { exitCode: info.exitCode, finishedAt: info.finishedAt as Date };
    }
    // A created container's init is runc's, waiting for start: only SIGKILL ends it promptly.
    const signal = info.status === 'created' ? 'SIGKILL' : normalizeSignal(options.signal ?? meta.spec.stopSignal ?? meta.spec.image?.StopSignal ?? 'SIGTERM');
    const graceMs = options.graceMs ?? meta.spec.stopGraceMs ?? DEFAULT_GRACE_MS;
    await this.kill(id, signal);
    if (signal !== 'SIGKILL') {
      const graceOver = new AbortController();
      const timer = setTimeout(() => graceOver.abort(), graceMs);
      try {
        return await this.wait(id, { signal: graceOver.signal });
      } catch (err) {
        if (!graceOver.signal.aborted) throw err;
      } finally {
        clearTimeout(timer);
      }
      await this.kill(id, 'SIGKILL');
    }
    return this.wait(id);
  }

  async remove(id: string, options: { force?: boolean } = {}): Promise<void> {
    const { paths, meta } = await this.load(id);
    const info = await this.inspect(id);
    if ((info.status === 'running' || info.status === 'paused') && !options.force) {
      throw new Error(`container ${id} is ${info.status}: stop it first, or remove with force`);
    }
    if (info.status !== 'exited') {
      await this.kill(id, 'SIGKILL');
      await this.wait(id).catch(() => undefined);
    }
    await this.runc.delete(id, true);
    // Let conmon finish (it writes the exit file and closes the log) before its dir goes.
    for (let i = 0; i < 100 && (await this.conmonAlive(paths, meta)); i++) await sleep(this.pollMs);
    if (await this.conmonAlive(paths, meta)) process.kill(await this.conmonPid(paths, meta), 'SIGKILL');
    await rm(paths.dir, { recursive: true, force: true });
    // conmon's attach-socket link; it removes it itself unless it had to be killed.
    await rm(join(this.layout.socketDir, id), { force: true });
  }

  // ---- logs ----

  logs(id: string, options: LogOptions = {}): AsyncIterable<LogEntry> {
    const paths = this.layout.container(id);
    const finished = async (): Promise<boolean> => (await this.readExit(paths)) !== undefined || !(await exists(paths.meta));
    const load = (): Promise<unknown> => this.load(id);
    const pollMs = this.pollMs;
    return {
      async *[Symbol.asyncIterator]() {
        await load(); // inside the iterator: an unknown id rejects the first next(), not an unobserved promise
        yield* readLogs(paths.log, { ...options, isFinished: finished, pollMs });
      },
    };
  }

  /** Rotates the container's log if it has passed its max size (the timer calls this for all). */
  async rotateLogs(id: string): Promise<boolean> {
    const { paths, meta } = await this.load(id);
    const max = meta.spec.log?.maxSizeBytes ?? 0;
    if (max <= 0 || !(await this.conmonAlive(paths, meta))) return false;
    return rotateIfNeeded(paths.log, paths.ctl, max, meta.spec.log?.maxFiles ?? 1);
  }

  private async rotateAllLogs(): Promise<void> {
    if (this.rotating) return;
    this.rotating = true;
    try {
      const ids = await readdir(this.layout.containersDir).catch(() => [] as string[]);
      for (const id of ids) await this.rotateLogs(id).catch(() => false);
    } finally {
      this.rotating = false;
    }
  }

  // ---- exec ----

  /**
   * Starts argv inside the running container as `runc exec` does, with the container's own
   * process settings (capabilities, rlimits, env, user, cwd) and the options' changes; stdio
   * streams through the returned session (agent/runtime/runc/exec.ts has how a tty works).
   */
  async exec(id: string, argv: string[], options: ExecOptions = {}): Promise<ExecSession> {
    if (argv.length === 0) throw new Error('exec needs a command');
    const { paths, meta } = await this.load(id);
    const info = await this.inspect(id);
    if (info.status !== 'running') throw new Error(`cannot exec in container ${id}: it is ${info.status}, not running`);
    const wanted = options.user;
    const user = wanted
      ? await resolveUser(meta.spec.rootfs, wanted).catch((err: unknown) => {
          throw new ExecUserError(wanted, (err as Error).message);
        })
      : undefined;
    const bundle = JSON.parse(await readFile(paths.config, 'utf8')) as { process?: Record<string, unknown> };
    return ExecProcess.start({
      runcPath: this.runcPath,
      runcRoot: this.layout.runcRoot,
      containerId: id,
      baseProcess: bundle.process ?? {},
      argv,
      tty: options.tty ?? false,
      stdin: options.stdin ?? false,
      ...(options.env ? { env: options.env } : {}),
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(user ? { user } : {}),
      ...(options.size ? { size: options.size } : {}),
      // Inside the container's directory: removed with the container if the agent dies mid-exec.
      workDir: join(paths.dir, `exec-${randomBytes(6).toString('hex')}`),
    });
  }
}
