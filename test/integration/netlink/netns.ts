// Test helpers: throwaway network namespaces (deleted in t.after even when the test fails) and
// `ip`/`bridge` JSON output, the independent witness of what the client did.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';

const run = promisify(execFile);
let counter = 0;

/** Creates `ip netns add shnl-…`, removed when the test ends. */
export async function tempNetns(t: TestContext): Promise<string> {
  const name = `shnl-${process.pid.toString(36)}-${(counter++).toString(36)}`;
  await run('ip', ['netns', 'add', name]);
  t.after(async () => {
    await run('ip', ['netns', 'del', name]);
  });
  return name;
}

/** `ip -n NS -j ARGS…` parsed. */
export async function ipJson<T = Record<string, unknown>>(netns: string, ...args: string[]): Promise<T[]> {
  const { stdout } = await run('ip', ['-n', netns, '-j', ...args]);
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as T[]);
}

/** `bridge -n NS -j ARGS…` parsed. */
export async function bridgeJson<T = Record<string, unknown>>(netns: string, ...args: string[]): Promise<T[]> {
  const { stdout } = await run('bridge', ['-n', netns, '-j', ...args]);
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as T[]);
}

/** Runs a command inside the namespace; resolves with its exit code and output. */
export async function inNetns(netns: string, cmd: string, ...args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('ip', ['netns', 'exec', netns, cmd, ...args]);
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
