// Runs the system tools the lab is made with (ip, unshare, umount). Every failure names the exact
// command line and carries its stderr, so a broken `up` says which step broke and why.
import { spawn } from 'node:child_process';

export class CommandError extends Error {
  /** Printed by the CLI as one line, without a stack trace. */
  readonly userError = true;
  constructor(
    readonly argv: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    const how = code === null ? 'was killed' : `exited ${code}`;
    const detail = stderr.trim() ? `: ${stderr.trim().replace(/\n+/g, ' | ')}` : '';
    super(`\`${argv.join(' ')}\` ${how}${detail}`);
    this.name = 'CommandError';
  }
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion; never throws for a non-zero exit (see run for that). */
export function runQuiet(argv: readonly string[], input?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (e) => reject(new CommandError(argv, null, e.message)));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {}); // a tool that exits without reading its input is not our error
    child.stdin.end(input ?? '');
  });
}

/** Runs argv; throws CommandError unless it exits 0. Resolves to its stdout. */
export async function run(argv: readonly string[], input?: string): Promise<string> {
  const r = await runQuiet(argv, input);
  if (r.code !== 0) throw new CommandError(argv, r.code, r.stderr);
  return r.stdout;
}

/** `ip -n NS -batch -` with one command a line: one process for many changes in one namespace. */
export async function ipBatch(netns: string, commands: readonly string[]): Promise<void> {
  const argv = ['ip', '-n', netns, '-batch', '-'];
  const r = await runQuiet(argv, commands.join('\n') + '\n');
  if (r.code !== 0) {
    // ip names the failing line as "Command failed -:N"; show that line, not just its number.
    const line = /Command failed -:(\d+)/.exec(r.stderr);
    const failed = line ? commands[Number(line[1]) - 1] : undefined;
    throw new CommandError(failed !== undefined ? ['ip', '-n', netns, ...failed.split(' ')] : argv, r.code, r.stderr);
  }
}
