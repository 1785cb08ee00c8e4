// A real shoald for the Engine's tests: its own data root and socket, outside any swarm (images
// are node-local and need none), and the real `shoal` CLI against it.
import { spawn, type ChildProcess } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../support/wait.js';

export const repo = join(dirname(fileURLToPath(import.meta.url)), '../../../..');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface TestDaemon {
  dir: string;
  dataRoot: string;
  socket: string;
  /** `shoal ARGS` against this daemon; `stdinFile` is piped in when given. */
  shoal(args: string[], stdinFile?: string): Promise<CliResult>;
  /** Files under the image store's tmp/ and the engine's scratch dir: what an import left behind. */
  leftovers(): string[];
}

export function runShoal(socket: string, args: string[], stdinFile?: string): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(repo, 'bin/shoal'), ['-H', `unix://${socket}`, ...args], { stdio: [stdinFile ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // A file on stdin, as `shoal image load < file` gets it.
    if (stdinFile) createReadStream(stdinFile).pipe(child.stdin!);
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

export async function startTestDaemon(t: { after: (fn: () => void | Promise<void>) => void }): Promise<TestDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-engine-'));
  const dataRoot = join(dir, 'data');
  const socket = join(dir, 'shoal.sock');
  let log = '';
  const proc: ChildProcess = spawn(join(repo, 'bin/shoald'), ['--data-root', dataRoot, '-H', `unix://${socket}`, '--metrics-addr', ''], { stdio: ['ignore', 'ignore', 'pipe'] });
  proc.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-8000)));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(
    () => `shoald to answer on ${socket}: ${log}`,
    async () => proc.exitCode === null && existsSync(socket) && (await runShoal(socket, ['info'])).status === 0,
  );
  const list = (d: string): string[] => (existsSync(d) ? readdirSync(d).map((n) => join(d, n)) : []);
  return {
    dir,
    dataRoot,
    socket,
    shoal: (args, stdinFile) => runShoal(socket, args, stdinFile),
    leftovers: () => [...list(join(dataRoot, 'agent', 'images', 'tmp')), ...list(join(dataRoot, 'engine'))],
  };
}
