// One exec'd process: a command run by `runc exec` inside a running container, its stdio
// streamed as it comes (RuncRuntime.exec; `shoal exec` and health checks both use it).
//
// Without a tty, runc gets pipes and copies them to the process. With a tty, `runc exec --tty`
// makes a pseudo-terminal inside the container (so `tty` there names /dev/pts/N of the container)
// and copies it to runc's own terminal. Node cannot open a pty itself (that needs ioctls) nor take
// a pty master over a console socket (SCM_RIGHTS), so runc's own terminal comes from util-linux
// `script`, which allocates a pty and relays it over plain pipes:
//
//   client ⇄ gRPC ⇄ pipes ⇄ script ⇄ host pty ⇄ runc exec --tty ⇄ container pty ⇄ process
//
// A resize sets the host pty's size (`stty -F`), and the kernel's SIGWINCH makes runc copy it
// to the container's pty. The process is killed by the pid runc writes, because killing runc
// would leave the process running in the container.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { ExecSession, TerminalSize } from '../runtime.js';

export interface ExecProcessOptions {
  runcPath: string;
  /** runc's state root (`--root`), where the container is known. */
  runcRoot: string;
  containerId: string;
  /** The container's own process (config.json's `process`): capabilities, rlimits, env, user, cwd. */
  baseProcess: Record<string, unknown>;
  argv: string[];
  tty: boolean;
  /** Keep the process's stdin open for write(); without it the process reads /dev/null (or, with tty, nothing). */
  stdin: boolean;
  env?: string[];
  cwd?: string;
  user?: { uid: number; gid: number; additionalGids: number[] };
  size?: TerminalSize;
  /** A directory of this exec's own (process.json, pid file, the host pty's name); removed when it ends. */
  workDir: string;
  /** Paths of the helpers, for tests; default from PATH. */
  scriptPath?: string;
  sttyPath?: string;
}

/** Quotes a word for /bin/sh: `'…'` with every `'` as `'\''`. */
export function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const DEFAULT_SIZE: TerminalSize = { rows: 24, cols: 80 };

function validSize(size: TerminalSize | undefined): TerminalSize {
  return size && size.rows > 0 && size.cols > 0 ? { rows: Math.min(size.rows, 0xffff), cols: Math.min(size.cols, 0xffff) } : DEFAULT_SIZE;
}

/**
 * The exec'd process for `runc exec --process`: the container's process with this command, the
 * extra env (replacing variables of the same name), user and directory. With a tty, its initial
 * size is part of it: runc sizes the container's pty before the command runs, so the first
 * thing the command sees is the right size (a resize after the start would race with it).
 */
export function execProcessSpec(o: ExecProcessOptions): Record<string, unknown> {
  const spec: Record<string, unknown> = { ...o.baseProcess, args: o.argv, terminal: o.tty };
  delete spec.consoleSize;
  const extra = o.env ?? [];
  const names = new Set(extra.map((e) => e.split('=', 1)[0]));
  const base = Array.isArray(o.baseProcess.env) ? (o.baseProcess.env as string[]) : [];
  spec.env = [...base.filter((e) => !names.has(e.split('=', 1)[0])), ...extra];
  if (o.cwd) spec.cwd = o.cwd;
  if (o.user) spec.user = { uid: o.user.uid, gid: o.user.gid, ...(o.user.additionalGids.length ? { additionalGids: o.user.additionalGids } : {}) };
  if (o.tty) {
    const size = validSize(o.size);
    spec.consoleSize = { height: size.rows, width: size.cols };
  }
  return spec;
}

export class ExecProcess implements ExecSession {
  /** The process's exit status (128+n for signal n), once every byte of its output was delivered. */
  readonly exited: Promise<number>;
  private readonly child: ChildProcess;
  private readonly pidFile: string;
  private readonly ttyFile: string;
  private done = false;

  private constructor(private readonly options: ExecProcessOptions) {
    this.pidFile = join(options.workDir, 'exec.pid');
    this.ttyFile = join(options.workDir, 'tty');
    const runcArgs = ['--root', options.runcRoot, 'exec', '--pid-file', this.pidFile, '--process', join(options.workDir, 'process.json'), options.containerId];
    if (options.tty) {
      const size = validSize(options.size);
      // The shell script runs on script's pty: it records the pty's name (for resizes), sizes it
      // (runc copies its size to the container's after the start), and becomes runc.
      // --echo never: the host pty must not echo (the container's pty does). Newlines: runc keeps
      // output processing on the host pty (LF → CR LF) and turns ONLCR off in the container's,
      // as `runc exec -t` does on a real terminal; but it does so after the command started, so
      // a command that saved its terminal settings before (a shell, at its first prompt) and
      // restores them converts too: CR CR LF, which looks the same on a terminal.
      const line = [
        `tty > ${shellQuote(this.ttyFile)}`,
        `${shellQuote(options.sttyPath ?? 'stty')} rows ${size.rows} cols ${size.cols}`,
        `exec ${[options.runcPath, ...runcArgs].map(shellQuote).join(' ')}`,
      ].join('; ');
      this.child = spawn(options.scriptPath ?? 'script', ['--quiet', '--return', '--echo', 'never', '--command', line, '/dev/null'], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, SHELL: '/bin/sh', TERM: process.env.TERM ?? 'xterm' },
      });
    } else {
      this.child = spawn(options.runcPath, runcArgs, { stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    }
    // A client that goes away mid-write must not crash the daemon.
    this.child.stdin?.on('error', () => undefined);
    this.exited = new Promise<number>((resolve, reject) => {
      this.child.once('error', (e) => reject(new Error(`cannot run ${options.tty ? 'script' : 'runc'} for exec: ${e.message}`)));
      this.child.once('close', (code, signal) => {
        this.done = true;
        resolve(code ?? 128 + (signal ? (osConstants.signals[signal] ?? 9) : 9));
      });
    }).finally(() => rm(options.workDir, { recursive: true, force: true }));
  }

  static async start(options: ExecProcessOptions): Promise<ExecProcess> {
    if (options.argv.length === 0) throw new Error('exec needs a command');
    await mkdir(options.workDir, { recursive: true, mode: 0o700 });
    await writeFile(join(options.workDir, 'process.json'), JSON.stringify(execProcessSpec(options)));
    return new ExecProcess(options);
  }

  /** The process's output; with a tty, stdout carries both streams (as a terminal shows them). */
  get stdout(): Readable {
    return this.child.stdout!;
  }

  get stderr(): Readable {
    return this.child.stderr!;
  }

  private get input(): Writable | null {
    return this.options.stdin ? this.child.stdin : null;
  }

  write(data: Uint8Array): void {
    const input = this.input;
    if (input && !input.writableEnded && data.length > 0) input.write(data);
  }

  /** End of the client's input. With a tty, script passes it on as the terminal's EOF character. */
  closeStdin(): void {
    const input = this.input;
    if (input && !input.writableEnded) input.end();
  }

  /** New terminal size: set on the host pty, whose SIGWINCH makes runc resize the container's. */
  async resize(size: TerminalSize): Promise<void> {
    if (!this.options.tty || this.done) return;
    const { rows, cols } = validSize(size);
    const tty = (await readFile(this.ttyFile, 'utf8').catch(() => '')).trim();
    if (!tty.startsWith('/dev/')) return; // not started yet: the initial size was given already
    await new Promise<void>((resolve) => execFile(this.options.sttyPath ?? 'stty', ['-F', tty, 'rows', String(rows), 'cols', String(cols)], () => resolve()));
  }

  /** Kills the process in the container (then runc, and script, end by themselves). */
  async kill(): Promise<void> {
    if (this.done) return;
    const pid = Number((await readFile(this.pidFile, 'utf8').catch(() => '')).trim());
    try {
      if (pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    // Before runc wrote the pid, or if runc does not end with the process: end the helper itself.
    if (!(pid > 0)) this.child.kill('SIGKILL');
    else setTimeout(() => this.done || this.child.kill('SIGKILL'), 3000).unref();
  }
}
