// Live restore: containers belong to their conmon, not to the agent. An agent process killed with
// SIGKILL leaves its containers running; a new runtime over the same root re-attaches, and exit
// codes of containers that ended while no agent ran are read from conmon's exit files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { runExec, type ContainerSpec } from '../../../agent/runtime/runtime.js';
import { logLines, setupRuntime, type RuntimeFixture } from './harness.js';

const AGENT = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'agent-process.js');

/** Runs a separate agent process that starts `spec`, then SIGKILLs that process. */
async function startInDoomedAgent(f: RuntimeFixture, spec: ContainerSpec): Promise<number> {
  const child = spawn(process.execPath, [AGENT, JSON.stringify({ root: f.root, cgroupParent: f.cgroupParent, spec })], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, sig) => resolve(sig ?? code)));
  try {
    while (!out.includes('\n')) {
      if (child.exitCode !== null) throw new Error(`agent process failed: ${err}`);
      await sleep(20);
    }
  } finally {
    child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL');
  const m = /^started (\d+)/.exec(out);
  assert.ok(m, `unexpected agent output: ${out}`);
  return Number(m[1]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('containers survive SIGKILL of the agent that started them; a fresh runtime re-attaches', async (t) => {
  const f = await setupRuntime(t);
  await f.runtime.create({ id: 'long', rootfs: f.rootfs, command: ['sleep', '1000'] });
  await f.runtime.start('long');
  const pid = await startInDoomedAgent(f, {
    id: 'orphan',
    rootfs: f.rootfs,
    command: ['sh', '-c', 'trap "exit 7" TERM; echo up; while true; do sleep 0.1; done'],
  });
  assert.ok(alive(pid), 'the container process outlived its agent');

  const fresh = f.newRuntime();
  const list = await fresh.list();
  assert.deepEqual(
    list.map((c) => [c.id, c.status]),
    [
      ['long', 'running'],
      ['orphan', 'running'],
    ],
  );
  assert.equal(list[1].pid, pid);
  // The re-attached runtime fully controls it: exec, logs, stop with its exit code.
  assert.equal((await runExec(fresh, 'orphan', ['echo', 'still here'])).stdout, 'still here\n');
  assert.equal((await fresh.stop('orphan')).exitCode, 7);
  assert.deepEqual(await logLines(fresh, 'orphan'), ['up']);
  assert.equal((await fresh.stop('long', { graceMs: 100 })).exitCode, 137);
});

test('a container that exits while no agent runs has its exit code collected afterwards', async (t) => {
  const f = await setupRuntime(t);
  await f.runtime.close();
  const shared = join(f.dir, 'shared');
  await mkdir(shared);
  await startInDoomedAgent(f, {
    id: 'lonely',
    rootfs: f.rootfs,
    mounts: [{ type: 'bind', source: shared, target: '/shared' }],
    command: ['sh', '-c', 'while [ ! -e /shared/go ]; do sleep 0.05; done; echo bye; exit 42'],
  });
  // No runtime instance exists now. Let the container finish, and wait (through runc and /proc
  // only) until it and its conmon are gone.
  await writeFile(join(shared, 'go'), '');
  const conmonPid = Number((await readFile(join(f.root, 'containers', 'lonely', 'conmon.pid'), 'utf8')).trim());
  for (;;) {
    const state = JSON.parse(execFileSync('runc', ['--root', join(f.root, 'runc'), 'state', 'lonely'], { encoding: 'utf8' })) as { status: string };
    const conmonGone = !(await readFile(`/proc/${conmonPid}/cmdline`, 'utf8').catch(() => '')).includes('conmon');
    if (state.status === 'stopped' && conmonGone) break;
    await sleep(50);
  }
  const fresh = f.newRuntime();
  const info = await fresh.inspect('lonely');
  assert.equal(info.status, 'exited');
  assert.equal(info.exitCode, 42);
  assert.equal((await fresh.wait('lonely')).exitCode, 42);
  assert.deepEqual(await logLines(fresh, 'lonely'), ['bye']);
  await fresh.remove('lonely');
});
