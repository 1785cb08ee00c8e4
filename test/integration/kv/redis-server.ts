// Starts a real redis-server (the Debian package) for a test: loopback only, a free port, no
// persistence, a temp dir; killed by pid and its dir removed when the test ends, even on failure.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export const REDIS_SERVER = '/usr/bin/redis-server';

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port from the kernel');
  return address.port;
}

export interface RedisServer {
  url: string;
  port: number;
  pid: number;
}

/** Starts redis-server; retries on a new port if another process grabbed the one picked. */
export async function startRedisServer(t: TestContext): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-kv-redis-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(REDIS_SERVER, ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no', '--dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    if (pid === undefined) throw new Error(`cannot start ${REDIS_SERVER}`);
    const exited = once(child, 'exit');
    t.after(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(pid, 'SIGKILL');
        await exited;
      }
    });
    let output = '';
    const ready = await new Promise<boolean>((resolve) => {
      const deadline = setTimeout(() => resolve(false), 15_000);
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(deadline);
          resolve(true);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', () => {
        clearTimeout(deadline);
        resolve(false);
      });
    });
    if (ready) return { url: `redis://127.0.0.1:${port}/0`, port, pid };
    lastError = new Error(`redis-server on port ${port} did not become ready:\n${output}`);
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(pid, 'SIGKILL');
      await exited;
    }
  }
  throw lastError!;
}
