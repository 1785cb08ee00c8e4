// Per-test runtime setup with cleanup that runs even when the test fails: every container made
// under the test's root is force-deleted through runc, every conmon it started is killed by pid,
// the test's cgroup parent is removed from every controller, mounts under the root are unmounted.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { RuncRuntime, type RuncRuntimeOptions } from '../../../agent/runtime/runc/runtime.js';
import { makeBusyboxRootfs } from './busybox-rootfs.js';

export interface RuntimeFixture {
  dir: string;
  root: string;
  rootfs: string;
  cgroupParent: string;
  runtime: RuncRuntime;
  newRuntime(options?: Partial<RuncRuntimeOptions>): RuncRuntime;
}

const CGROUP_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'systemd', 'unified'];

export async function cleanupRoot(root: string, cgroupParent: string): Promise<void> {
  const runcRoot = join(root, 'runc');
  let ids: string[] = [];
  try {
    const out = execFileSync('runc', ['--root', runcRoot, 'list', '-q'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    ids = out.split('\n').filter((l) => l !== '');
  } catch {
    // no runc root: nothing was created
  }
  for (const id of ids) {
    try {
      execFileSync('runc', ['--root', runcRoot, 'delete', '--force', id], { stdio: 'ignore' });
    } catch {
      // already gone
    }
  }
  const containers = await readdir(join(root, 'containers')).catch(() => [] as string[]);
  for (const id of containers) {
    const pid = Number((await readFile(join(root, 'containers', id, 'conmon.pid'), 'utf8').catch(() => '')).trim());
    if (pid > 0) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmdline.includes('conmon') && cmdline.includes(root)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
    }
  }
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
  for (const m of mounts.filter((m) => m.startsWith(root)).reverse()) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      // raced with an unmount
    }
  }
  for (const c of CGROUP_CONTROLLERS) {
    const parent = join('/sys/fs/cgroup', c, cgroupParent);
    for (const child of await readdir(parent, { withFileTypes: true }).catch(() => [])) {
      if (child.isDirectory()) await rmdir(join(parent, child.name)).catch(() => undefined);
    }
    await rmdir(parent).catch(() => undefined);
  }
}

export async function setupRuntime(t: TestContext, options: Partial<RuncRuntimeOptions> = {}): Promise<RuntimeFixture> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-rt-'));
  const root = join(dir, 'root');
  const cgroupParent = `/shoal-test-${dir.slice(-6)}`;
  const runtimes: RuncRuntime[] = [];
  const newRuntime = (o: Partial<RuncRuntimeOptions> = {}): RuncRuntime => {
    const r = new RuncRuntime({ root, cgroupParent, pollMs: 50, ...options, ...o });
    runtimes.push(r);
    return r;
  };
  t.after(async () => {
    for (const r of runtimes) await r.close();
    await cleanupRoot(root, cgroupParent);
    await rm(dir, { recursive: true, force: true });
  });
  const rootfs = await makeBusyboxRootfs(join(dir, 'rootfs'));
  return { dir, root, rootfs, cgroupParent, runtime: newRuntime(), newRuntime };
}

/** Collects every log line of a container that has finished. */
export async function logLines(runtime: RuncRuntime, id: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of runtime.logs(id)) out.push(e.line);
  return out;
}
