// `shoal exec [-i] [-t] [-u USER] [-w DIR] [-e K=V] TASK CMD [ARG...]`: a command in the container
// of a task this node runs, like `docker exec` on the task's container. TASK is a task ID, a
// unique ID prefix, or a name (`web.2`). The command's exit status is the CLI's.
//
// -i streams stdin to the command (its end is the command's end of file); -t gives it a
// terminal: output then comes as one stream, and a terminal here is switched to raw mode so keys
// (Ctrl-C included) go to the command, and its size follows this one's.
import * as grpc from '@grpc/grpc-js';
import type { Command, CommandContext } from '../../util/command.js';
import { UserError } from '../../util/command.js';
import type { ExecInput, ExecOutput, ExecStart, TerminalSize } from '../../proto/gen/local.js';
import { engineClient, engineError } from './image.js';

export interface ExecIo {
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  stdout: NodeJS.WritableStream & { isTTY?: boolean; rows?: number; columns?: number };
  stderr: NodeJS.WritableStream;
}

const blank: ExecInput = { start: null, stdin: new Uint8Array(0), closeStdin: false, resize: null };

/** The daemon's start message for these flags and arguments. */
export function execStart(ctx: Pick<CommandContext, 'args' | 'flags'>, size: TerminalSize | null): ExecStart {
  const [task, ...cmd] = ctx.args as [string, ...string[]];
  for (const e of (ctx.flags.env as string[] | undefined) ?? []) {
    if (!/^[^=\s][^=]*=/.test(e)) throw new UserError(`invalid environment variable "${e}" for --env: expected KEY=VALUE`);
  }
  return {
    task,
    cmd,
    tty: Boolean(ctx.flags.tty),
    stdin: Boolean(ctx.flags.interactive),
    user: String(ctx.flags.user ?? ''),
    workdir: String(ctx.flags.workdir ?? ''),
    env: (ctx.flags.env as string[] | undefined) ?? [],
    size,
  };
}

/** Runs the exec and resolves with the command's exit code. */
export async function runExec(ctx: Pick<CommandContext, 'args' | 'flags' | 'global'>, io: ExecIo): Promise<number> {
  const tty = Boolean(ctx.flags.tty);
  const interactive = Boolean(ctx.flags.interactive);
  // Raw mode needs a terminal; a pipe on stdin with -it would be read cooked and echoed twice.
  if (tty && interactive && !io.stdin.isTTY) throw new UserError('the input device is not a TTY: use -i without -t to pipe input');
  const size = (): TerminalSize | null => (tty && io.stdout.isTTY && io.stdout.rows && io.stdout.columns ? { rows: io.stdout.rows, cols: io.stdout.columns } : null);
  const start = execStart(ctx, size());
  const client = engineClient(ctx.global);
  const raw = tty && interactive && io.stdin.isTTY === true && typeof io.stdin.setRawMode === 'function';
  const cleanups: Array<() => void> = [];
  try {
    return await new Promise<number>((resolve, reject) => {
      const call = client.exec();
      let exitCode: number | null = null;
      call.write({ ...blank, start });
      call.on('data', (m: ExecOutput) => {
        if (m.stdout.length > 0) io.stdout.write(m.stdout);
        if (m.stderr.length > 0) io.stderr.write(m.stderr);
        if (m.exited) exitCode = m.exitCode;
      });
      call.on('end', () => (exitCode === null ? reject(new UserError('the daemon ended the exec without an exit code')) : resolve(exitCode)));
      call.on('error', (e: grpc.ServiceError) => reject(engineError(e, client)));
      if (interactive) {
        const onData = (d: Buffer | string) => call.write({ ...blank, stdin: typeof d === 'string' ? Buffer.from(d) : d });
        const onEnd = () => {
          call.write({ ...blank, closeStdin: true });
          call.end();
        };
        io.stdin.on('data', onData);
        io.stdin.on('end', onEnd);
        cleanups.push(() => {
          io.stdin.off('data', onData);
          io.stdin.off('end', onEnd);
          io.stdin.pause();
        });
        if (raw) {
          io.stdin.setRawMode!(true);
          cleanups.push(() => io.stdin.setRawMode!(false));
        }
        io.stdin.resume();
      }
      if (tty && io.stdout.isTTY) {
        const onResize = () => {
          const s = size();
          if (s) call.write({ ...blank, resize: s });
        };
        io.stdout.on('resize', onResize);
        cleanups.push(() => io.stdout.off('resize', onResize));
      }
    });
  } finally {
    for (const c of cleanups.reverse()) c();
    client.close();
  }
}

export const execCommand: Command = {
  name: 'exec',
  summary: "Execute a command in a task's container on this node",
  usage: '[OPTIONS] TASK COMMAND [ARG...]',
  minArgs: 2,
  passThrough: true,
  flags: [
    { name: 'env', short: 'e', kind: 'list', description: 'Set environment variables' },
    { name: 'interactive', short: 'i', kind: 'bool', description: 'Keep STDIN open and send it to the command' },
    { name: 'tty', short: 't', kind: 'bool', description: 'Allocate a pseudo-TTY' },
    { name: 'user', short: 'u', kind: 'string', description: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
    { name: 'workdir', short: 'w', kind: 'string', description: 'Working directory inside the container' },
  ],
  run: (ctx) => runExec(ctx, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }),
};
