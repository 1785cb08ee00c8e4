// Runs short commands (mount, runc start/kill/delete…) through a small long-lived shell instead
// of spawning them from the daemon itself. Spawning from Node forks the whole daemon: the kernel
// copies the page tables of a process of a few hundred MB, and libuv blocks the event loop until
// the child has exec'd — tens of milliseconds a command on a busy host, during which nothing else
// in the daemon (other tasks, the manager, the dispatcher stream) moves. A static busybox shell
// forks in well under a millisecond, and the event loop only writes a line to a pipe.
//
// Protocol: a few shells, each running one command at a time in the foreground (a background
// job would stay a zombie: ash reaps only when it waits), one line a command:
//   (cd DIR && exec ARGV) </dev/null >OUT 2>ERR; echo "ID $?"
// The shell echoes `ID STATUS` on its stdout when the command ends; the output files are read,
// then deleted. Commands beyond the pool's size wait for a free shell. If no shell can be started
// or one dies, commands run through Node's own spawn, as they would without it.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface RunResult {
  /** The exit status; 128+n when signal n ended the command. */
  code: number;
  stdout: string;
  stderr: string;
}

/** Quotes a word for /bin/sh: `'…'` with every `'` as `'\''`. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const SHELLS = ['/bin/busybox', '/usr/bin/busybox'];

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  fds?: Record<number, string>;
}

interface Request {
  line: (id: number, out: string, err: string) => string;
  resolve(r: RunResult): void;
  reject(err: Error): void;
}

interface Shell {
  child: ChildProcess;
  /** What it runs now, with the files its output goes to. */
  current?: { id: number; request: Request; out: string; err: string };
}

export class Spawner {
  private readonly shells: Shell[] = [];
  private readonly queue: Request[] = [];
  private dir: string | undefined;
  private broken = false;
  private nextId = 0;

  constructor(private readonly size = 8) {}

  /**
   * Runs file with args; resolves with its status and output whatever the status. `env` adds
   * variables; `fds` opens more descriptors for writing onto paths (a FIFO, say), as `3>path`.
   */
  run(file: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (!this.usable()) {
      if (options.fds && Object.keys(options.fds).length > 0) return Promise.reject(new Error(`cannot run ${file}: no helper shell (busybox) to open its extra descriptors`));
      return runDirect(file, args, options);
    }
    const cd = options.cwd ? `cd ${shellQuote(options.cwd)} && ` : '';
    const env = Object.entries(options.env ?? {})
      .map(([k, v]) => `${k}=${shellQuote(v)} `)
      .join('');
    const fds = Object.entries(options.fds ?? {})
      .map(([fd, path]) => ` ${Number(fd)}>${shellQuote(path)}`)
      .join('');
    const argv = [file, ...args].map(shellQuote).join(' ');
    return new Promise<RunResult>((resolve, reject) => {
      this.queue.push({ line: (id, out, err) => `(${cd}${env}exec ${argv}${fds}) </dev/null >${shellQuote(out)} 2>${shellQuote(err)}; echo "${id} $?"\n`, resolve, reject });
      this.dispatch();
    });
  }

  /** Ends the helper shells (a command under way finishes on its own; its result is lost). */
  close(): void {
    for (const shell of this.shells.splice(0)) {
      shell.child.stdin?.end();
      shell.current?.request.reject(new Error('the command runner was closed'));
    }
    for (const r of this.queue.splice(0)) r.reject(new Error('the command runner was closed'));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  /** The helper shells' pids (for tests). */
  get shellPids(): number[] {
    return this.shells.map((s) => s.child.pid ?? 0);
  }

  private usable(): boolean {
    if (this.broken) return false;
    if (!SHELLS.some((p) => existsSync(p))) this.broken = true;
    return !this.broken;
  }

  private dispatch(): void {
    while (this.queue.length > 0) {
      let shell = this.shells.find((s) => !s.current);
      if (!shell && this.shells.length < this.size) shell = this.startShell();
      if (!shell) return;
      const request = this.queue.shift()!;
      const id = ++this.nextId;
      // Made again if it went away (a /tmp cleaner, a careless sweep): every redirect into it
      // would fail, and with it every command.
      if (this.dir === undefined || !existsSync(this.dir)) this.dir = outputDir();
      const out = join(this.dir, `${id}.out`);
      const err = join(this.dir, `${id}.err`);
      shell.current = { id, request, out, err };
      holdOpen(shell, true);
      shell.child.stdin!.write(request.line(id, out, err));
    }
  }

  private startShell(): Shell {
    const path = SHELLS.find((p) => existsSync(p))!;
    const child = spawn(path, ['sh'], { stdio: ['pipe', 'pipe', 'ignore'] });
    const shell: Shell = { child };
    child.unref();
    holdOpen(shell, false);
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    child.stdin!.on('error', () => undefined);
    createInterface({ input: child.stdout! }).on('line', (l) => void this.onLine(shell, l));
    child.on('error', () => this.onShellGone(shell));
    child.on('exit', () => this.onShellGone(shell));
    this.shells.push(shell);
    return shell;
  }

  private async onLine(shell: Shell, line: string): Promise<void> {
    const m = /^(\d+) (\d+)$/.exec(line.trim());
    const current = shell.current;
    if (!m || !current || Number(m[1]) !== current.id) return;
    shell.current = undefined;
    holdOpen(shell, false);
    this.dispatch();
    try {
      const [stdout, stderr] = await Promise.all([readFile(current.out, 'utf8').catch(() => ''), readFile(current.err, 'utf8').catch(() => '')]);
      current.request.resolve({ code: Number(m[2]), stdout, stderr });
    } finally {
      await Promise.all([rm(current.out, { force: true }), rm(current.err, { force: true })]);
    }
  }

  private onShellGone(shell: Shell): void {
    const i = this.shells.indexOf(shell);
    if (i < 0) return;
    this.shells.splice(i, 1);
    // Its command may have run or not: say so rather than guess (the next ones get a new shell).
    shell.current?.request.reject(new Error('the command runner (busybox sh) exited while running a command'));
    shell.current = undefined;
    this.dispatch();
  }
}

/** The process stays alive while a shell's answer is awaited, not because the shell exists. */
function holdOpen(shell: Shell, busy: boolean): void {
  const out = shell.child.stdout as unknown as { ref?: () => void; unref?: () => void } | null;
  if (busy) out?.ref?.();
  else out?.unref?.();
}

/** Node's own spawn: the fallback, and what a missing shell leaves. */
function runDirect(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const env = options.env ? { env: { ...process.env, ...options.env } } : {};
    execFile(file, [...args], { maxBuffer: 64 * 1024 * 1024, ...env, ...(options.cwd ? { cwd: options.cwd } : {}) }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number' && !err.signal) return reject(err); // could not run it at all
      const code = err ? (typeof err.code === 'number' ? err.code : 128 + 9) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The process's runner: one helper shell per daemon. */
export const spawner = new Spawner();

const DIR_PREFIX = 'shoal-spawner-';

/**
 * A fresh directory for the shells' output files, named after this process. A daemon killed with
 * SIGKILL cannot remove its own, so each new one first removes those whose process is gone.
 */
function outputDir(): string {
  for (const name of readdirSync(tmpdir())) {
    const pid = name.startsWith(DIR_PREFIX) ? Number(name.slice(DIR_PREFIX.length).split('-')[0]) : NaN;
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
  return mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
