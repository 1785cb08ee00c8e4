// Starting conmon, the per-container monitor. conmon forks twice and calls setsid, so it belongs to
// no agent process: an agent killed with SIGKILL leaves it (and the container) running. It runs
// `runc create`, holds the container's stdio (writing it to a k8s-file log), and when the
// container exits writes the exit code to <exit-dir>/<id> atomically (write + rename) before it
// quits. We learn the container's pid, or runc's error, over the sync pipe (_OCI_SYNCPIPE).
import { constants, existsSync, open } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { spawner } from '../spawner.js';

const MKFIFO = ['/usr/bin/mkfifo', '/bin/mkfifo'].find((p) => existsSync(p)) ?? 'mkfifo';

export interface ConmonOptions {
  conmonPath: string;
  runcPath: string;
  runcRoot: string;
  id: string;
  name: string;
  bundle: string;
  containerPidFile: string;
  conmonPidFile: string;
  logPath: string;
  exitDir: string;
  socketDir: string;
  timeoutMs?: number;
}

export interface ConmonStarted {
  containerPid: number;
  conmonPid: number;
}

export function conmonArgs(o: ConmonOptions): string[] {
  return [
    '--api-version', '1',
    '--cid', o.id,
    '--cuuid', o.id,
    '--name', o.name,
    '--runtime', o.runcPath,
    '--runtime-arg', `--root=${o.runcRoot}`,
    '--bundle', o.bundle,
    '--container-pidfile', o.containerPidFile,
    '--conmon-pidfile', o.conmonPidFile,
    '--log-path', `k8s-file:${o.logPath}`,
    '--exit-dir', o.exitDir,
    '--socket-dir-path', o.socketDir,
    '--log-level', 'error',
  ];
}

/** Parses conmon's sync pipe message: `{"data": pid}` or `{"data": -1, "message": "..."}`. */
export function parseSyncMessage(text: string): { data: number; message?: string } | undefined {
  const line = text.split('\n').find((l) => l.trim() !== '');
  if (line === undefined) return undefined;
  try {
    const parsed = JSON.parse(line) as { data?: unknown; message?: unknown };
    if (typeof parsed.data !== 'number') return undefined;
    return { data: parsed.data, ...(typeof parsed.message === 'string' ? { message: parsed.message } : {}) };
  } catch {
    return undefined;
  }
}

export async function startConmon(o: ConmonOptions): Promise<ConmonStarted> {
  // The sync pipe is a FIFO in the bundle, so that conmon can be started by the helper shell
  // (agent/runtime/spawner.ts: no fork of the daemon) with the FIFO as its descriptor 3.
  const fifo = join(o.bundle, 'sync.fifo');
  await rm(fifo, { force: true });
  const made = await spawner.run(MKFIFO, ['-m', '600', fifo]);
  if (made.code !== 0) throw new Error(`conmon for ${o.id}: cannot make its sync pipe ${fifo}: ${made.stderr.trim()}`);
  // Opened for reading first (non-blocking), so the shell's open for writing does not wait.
  const fd = await new Promise<number>((resolve, reject) => open(fifo, constants.O_RDONLY | constants.O_NONBLOCK, (err, f) => (err ? reject(err) : resolve(f))));
  const sync = new Socket({ fd, readable: true, writable: false });
  let syncText = '';
  try {
    const ran = spawner.run(o.conmonPath, conmonArgs(o), { cwd: o.bundle, env: { _OCI_SYNCPIPE: '3' }, fds: { 3: fifo } });
    // conmon's stderr (and status) once its first process has gone (it daemonizes at once).
    const failure = async (): Promise<string> => {
      const r = await ran.catch((e: unknown) => ({ code: -1, stdout: '', stderr: (e as Error).message }));
      return r.stderr.trim() || (r.code === 127 ? `cannot run conmon (${o.conmonPath})` : `conmon exited with status ${r.code}`);
    };
    const message = await new Promise<{ data: number; message?: string }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`conmon for ${o.id}: no answer within ${o.timeoutMs ?? 60000} ms`)), o.timeoutMs ?? 60000);
      const done = (fn: () => void): void => {
        clearTimeout(timer);
        fn();
      };
      sync.on('data', (d: Buffer) => {
        syncText += d.toString();
        const m = parseSyncMessage(syncText);
        if (m && syncText.includes('\n')) done(() => resolve(m));
      });
      // The pipe closes without a message when conmon fails before runc ran (bad option, no runc).
      sync.on('close', () => {
        const m = parseSyncMessage(syncText);
        if (m) done(() => resolve(m));
        else void failure().then((why) => done(() => reject(new Error(`conmon for ${o.id} failed: ${why}`))));
      });
      sync.on('error', (err) => done(() => reject(err)));
    });
    if (message.data < 0) {
      throw new Error(`creating container ${o.id} failed: ${cleanRuncMessage(message.message ?? 'unknown error')}`);
    }
    return { containerPid: message.data, conmonPid: await readConmonPid(o.conmonPidFile) };
  } finally {
    sync.destroy();
    await rm(fifo, { force: true });
  }
}

/**
 * conmon's pid from its pidfile. conmon's daemonized child writes the file on its own schedule:
 * on a loaded machine the sync pipe's message (sent once runc created the container) can come
 * first, so a missing file is waited for, briefly, rather than failing the task.
 */
async function readConmonPid(file: string, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const text = (await readFile(file, 'utf8')).trim();
      if (text) return Number(text);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (Date.now() > deadline) throw new Error(`conmon wrote no pid file ${file} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function cleanRuncMessage(message: string): string {
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(message);
  return (m ? m[1].replace(/\\"/g, '"') : message).trim();
}

/**
 * Whether pid is still the conmon watching container id: pids are reused, so a bare kill(pid, 0)
 * could point at anything; zombies (state Z) count as gone.
 */
export async function isConmonAlive(pid: number, id: string): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    const [stat, cmdline] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8'), readFile(`/proc/${pid}/cmdline`, 'utf8')]);
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const args = cmdline.split('\0');
    return (args[0] ?? '').endsWith('conmon') && args.includes(id);
  } catch {
    return false;
  }
}
