// A thin typed wrapper over the runc command line. Every call names the state root, so several
// runtimes (tests, the lab's many hosts) never see each other's containers.
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawner } from '../spawner.js';

export interface RuncState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  bundle: string;
  created: string;
}

export class RuncError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(`runc ${args.join(' ')}: ${runcMessage(stderr) || `exit status ${exitCode}`}`);
    this.name = 'RuncError';
  }
}

/** runc logs `time="…" level=error msg="…"`; the msg is what a user needs. */
export function runcMessage(stderr: string): string {
  const msgs = [...stderr.matchAll(/msg="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\"/g, '"'));
  return msgs.length > 0 ? msgs.join('; ') : stderr.trim();
}

export class Runc {
  constructor(
    readonly binary: string,
    readonly root: string,
  ) {}

  /** Runs runc through the helper shell (agent/runtime/spawner.ts), not by forking the daemon. */
  async run(args: string[]): Promise<string> {
    const r = await spawner.run(this.binary, ['--root', this.root, ...args]);
    if (r.code !== 0) throw new RuncError(args, r.stderr, r.code);
    return r.stdout;
  }

  /** undefined when runc does not know the container. */
  async state(id: string): Promise<RuncState | undefined> {
    try {
      return JSON.parse(await this.run(['state', id])) as RuncState;
    } catch (err) {
      if (err instanceof RuncError && /does not exist/.test(err.stderr)) return undefined;
      throw err;
    }
  }

  /**
   * What `runc state` says, read from runc's own files instead of running runc: its state.json
   * (init pid and start time), /proc (is that process still the init: same start time, not a
   * zombie), the exec fifo (present until `runc start`) and the cgroup's freeze flag. This is
   * runc's own status logic (libcontainer refreshState); answering without a fork+exec matters
   * because the worker asks for every task several times while it starts. Falls back to runc
   * when the files are not what runc 1.x writes.
   */
  async quickState(id: string): Promise<RuncState | undefined> {
    const dir = join(this.root, id);
    let raw: string;
    try {
      raw = await readFile(join(dir, 'state.json'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      return this.state(id);
    }
    let st: { id?: unknown; init_process_pid?: unknown; init_process_start?: unknown; created?: unknown; config?: { rootfs?: unknown; labels?: unknown }; cgroup_paths?: Record<string, string> };
    try {
      st = JSON.parse(raw) as typeof st;
    } catch {
      return this.state(id); // runc is rewriting it: ask runc, which locks
    }
    const pid = Number(st.init_process_pid);
    const start = st.init_process_start;
    if (!Number.isInteger(pid) || pid <= 0 || (typeof start !== 'number' && typeof start !== 'string')) return this.state(id);
    const labels = Array.isArray(st.config?.labels) ? (st.config.labels as unknown[]).map(String) : [];
    const bundle = labels.find((l) => l.startsWith('bundle='))?.slice('bundle='.length) ?? '';
    const base = { id, bundle, created: typeof st.created === 'string' ? st.created : '' };
    const [proc, frozen, created] = await Promise.all([
      readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined),
      this.frozen(st.cgroup_paths),
      access(join(dir, 'exec.fifo')).then(
        () => true,
        () => false,
      ),
    ]);
    // Fields after the command name: state is the 3rd field of the file, starttime the 22nd.
    const fields = proc?.slice(proc.lastIndexOf(')') + 2).split(' ') ?? [];
    const alive = proc !== undefined && fields[19] === String(start) && fields[0] !== 'Z' && fields[0] !== 'X';
    if (frozen) return { ...base, pid: alive ? pid : 0, status: 'paused' };
    if (!alive) return { ...base, pid: 0, status: 'stopped' };
    return { ...base, pid, status: created ? 'created' : 'running' };
  }

  private async frozen(paths: Record<string, string> | undefined): Promise<boolean> {
    // cgroup v1 (or hybrid, where '' is the unified hierarchy beside v1's freezer): runc freezes
    // through the v1 freezer; pure v2 through cgroup.freeze.
    const freezer = paths?.freezer;
    if (freezer) return (await readFile(join(freezer, 'freezer.state'), 'utf8').catch(() => 'THAWED')).trim() === 'FROZEN';
    const unified = paths?.[''];
    if (unified) return (await readFile(join(unified, 'cgroup.freeze'), 'utf8').catch(() => '0')).trim() === '1';
    return false;
  }

  async list(): Promise<RuncState[]> {
    const out = await this.run(['list', '--format', 'json']);
    return (JSON.parse(out.trim() === '' ? 'null' : out) as RuncState[] | null) ?? [];
  }

  async start(id: string): Promise<void> {
    await this.run(['start', id]);
  }

  async kill(id: string, signal: string): Promise<void> {
    await this.run(['kill', id, signal]);
  }

  async delete(id: string, force: boolean): Promise<void> {
    try {
      await this.run(['delete', ...(force ? ['--force'] : []), id]);
    } catch (err) {
      if (err instanceof RuncError && /does not exist/.test(err.stderr)) return;
      throw err;
    }
  }
}
