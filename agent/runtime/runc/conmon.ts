// Starting conmon, the per-container monitor. conmon forks twice and calls setsid, so it belongs to
// no agent process: an agent killed with SIGKILL leaves it (and the container) running. It runs
// `runc create`, holds the container's stdio (writing it to a k8s-file log), and when the
// container exits writes the exit code to <exit-dir>/<id> atomically (write + rename) before it
// quits. We learn the container's pid, or runc's error, over the sync pipe (_OCI_SYNCPIPE).
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';

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
  const child = spawn(o.conmonPath, conmonArgs(o), {
    cwd: o.bundle,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    env: { ...process.env, _OCI_SYNCPIPE: '3' },
  });
  const sync = child.stdio[3] as Socket;
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  let syncText = '';
  try {
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
        else done(() => reject(new Error(`conmon for ${o.id} failed: ${stderr.trim() || 'no message on the sync pipe'}`)));
      });
      sync.on('error', (err) => done(() => reject(err)));
      child.on('error', (err) => done(() => reject(new Error(`cannot run conmon (${o.conmonPath}): ${err.message}`))));
    });
    if (message.data < 0) {
      throw new Error(`creating container ${o.id} failed: ${cleanRuncMessage(message.message ?? 'unknown error')}`);
    }
    const conmonPid = Number((await readFile(o.conmonPidFile, 'utf8')).trim());
    return { containerPid: message.data, conmonPid };
  } finally {
    sync.destroy();
    child.stderr?.destroy();
    child.unref();
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
