// The runc + conmon runtime against real runc, real conmon and the kernel: what a container sees
// (argv, env, cwd, user, hostname, capabilities, cgroup limits, read-only root, mounts, netns),
// how it ends (exit codes, stop with grace then SIGKILL) and exec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { capabilityBit } from '../../../agent/runtime/spec/capabilities.js';
import type { RuncRuntime } from '../../../agent/runtime/runc/runtime.js';
import { logLines, setupRuntime } from './harness.js';
import { runExec } from '../../../agent/runtime/runtime.js';

async function run(runtime: RuncRuntime, spec: Parameters<RuncRuntime['create']>[0]): Promise<{ exitCode: number; lines: string[] }> {
  await runtime.create(spec);
  await runtime.start(spec.id);
  const { exitCode } = await runtime.wait(spec.id);
  return { exitCode, lines: await logLines(runtime, spec.id) };
}

async function waitForLine(runtime: RuncRuntime, id: string, line: string): Promise<void> {
  for await (const e of runtime.logs(id, { follow: true })) if (e.line === line) return;
  throw new Error(`container ${id} ended without printing ${line}`);
}

function capEff(lines: string[]): bigint {
  const line = lines.find((l) => l.startsWith('CapEff:'));
  assert.ok(line, `no CapEff line in ${JSON.stringify(lines)}`);
  return BigInt('0x' + line.split(/\s+/)[1]);
}

test('a container that prints and exits 3: its logs hold the output, its exit code is 3', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  const r = await run(runtime, { id: 'echo', rootfs, command: ['sh', '-c', 'echo hi; echo oops >&2; exit 3'] });
  assert.equal(r.exitCode, 3);
  const entries = [];
  for await (const e of runtime.logs('echo')) entries.push(e);
  assert.deepEqual(
    entries.map((e) => [e.stream, e.line]),
    [
      ['stdout', 'hi'],
      ['stderr', 'oops'],
    ],
  );
  assert.ok(entries.every((e) => !Number.isNaN(e.time.getTime())));
  const info = await runtime.inspect('echo');
  assert.equal(info.status, 'exited');
  assert.equal(info.exitCode, 3);
  await runtime.remove('echo');
  assert.deepEqual(await runtime.list(), []);
});

test('image config and spec overrides: argv, env, cwd, user by name, hostname', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  const script = 'id -u; id -g; id -G; pwd; hostname; cat /etc/hostname; echo "$OVER $FROM_IMAGE $HOME"; echo "$@"';
  const r = await run(runtime, {
    id: 'cfg',
    rootfs,
    image: { Entrypoint: ['sh', '-c', script, 'sh'], Cmd: ['from', 'image'], Env: ['FROM_IMAGE=img', 'OVER=image'], WorkingDir: '/tmp', User: 'nobody' },
    args: ['from', 'spec'],
    env: ['OVER=spec'],
    cwd: '/home/app',
    user: 'app',
    hostname: 'web-1',
  });
  assert.equal(r.exitCode, 0, r.lines.join('\n'));
  assert.deepEqual(r.lines, ['1000', '1000', '1000 50', '/home/app', 'web-1', 'web-1', 'spec img /home/app', 'from spec']);
});

test('image defaults apply when the spec says nothing; numeric uid:gid is taken as is', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  const r = await run(runtime, {
    id: 'defaults',
    rootfs,
    image: { Cmd: ['sh', '-c', 'id -u; id -g; pwd'], WorkingDir: '/tmp', User: '4242:4343' },
  });
  assert.equal(r.exitCode, 0, r.lines.join('\n'));
  assert.deepEqual(r.lines, ['4242', '4343', '/tmp']);
  await assert.rejects(runtime.create({ id: 'nouser', rootfs, command: ['true'], user: 'ghost' }), /unable to find user "ghost"/);
  assert.deepEqual((await runtime.list()).map((c) => c.id), ['defaults']);
});

test('memory, CPU and pids limits land in the container cgroup', async (t) => {
  const { runtime, rootfs, cgroupParent } = await setupRuntime(t);
  await runtime.create({
    id: 'limited',
    rootfs,
    command: ['sleep', '1000'],
    resources: { memoryBytes: 64 * 1024 * 1024, nanoCpus: 500_000_000, pidsLimit: 50 },
  });
  await runtime.start('limited');
  const cg = (ctrl: string, file: string): Promise<string> => readFile(join('/sys/fs/cgroup', ctrl, cgroupParent, 'limited', file), 'utf8');
  assert.equal((await cg('memory', 'memory.limit_in_bytes')).trim(), String(64 * 1024 * 1024));
  assert.equal((await cg('cpu', 'cpu.cfs_quota_us')).trim(), '50000');
  assert.equal((await cg('cpu', 'cpu.cfs_period_us')).trim(), '100000');
  assert.equal((await cg('pids', 'pids.max')).trim(), '50');
  const pid = (await runtime.inspect('limited')).pid;
  assert.ok((await cg('memory', 'cgroup.procs')).split('\n').includes(String(pid)));
  // sleep as pid 1 ignores SIGTERM (no handler): the stop ends in SIGKILL.
  assert.equal((await runtime.stop('limited', { graceMs: 100 })).exitCode, 137);
});

test('capabilities: NET_RAW is in the default set, capDrop removes it, capAdd adds, bad names are named', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  const netRaw = 1n << BigInt(capabilityBit('NET_RAW'));
  const netAdmin = 1n << BigInt(capabilityBit('NET_ADMIN'));
  const dflt = await run(runtime, { id: 'caps-default', rootfs, command: ['grep', 'CapEff', '/proc/self/status'] });
  assert.notEqual(capEff(dflt.lines) & netRaw, 0n);
  assert.equal(capEff(dflt.lines) & netAdmin, 0n);
  // With NET_RAW a raw ICMP socket works: ping our own loopback inside the container's netns.
  const ping = await run(runtime, { id: 'ping', rootfs, command: ['sh', '-c', 'ip link set lo up && ping -c1 -W2 127.0.0.1'] });
  assert.equal(ping.exitCode, 0, ping.lines.join('\n'));
  const dropped = await run(runtime, { id: 'caps-drop', rootfs, capDrop: ['net_raw'], capAdd: ['CAP_NET_ADMIN'], command: ['grep', 'CapEff', '/proc/self/status'] });
  assert.equal(capEff(dropped.lines) & netRaw, 0n);
  assert.notEqual(capEff(dropped.lines) & netAdmin, 0n);
  await assert.rejects(runtime.create({ id: 'bad', rootfs, command: ['true'], capAdd: ['NET_RAWR'] }), /unknown capability: "NET_RAWR"/);
});

test('a read-only root filesystem refuses writes; a tmpfs mount on it still takes them', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  const r = await run(runtime, {
    id: 'ro',
    rootfs,
    readOnlyRootfs: true,
    mounts: [{ type: 'tmpfs', target: '/scratch' }],
    command: ['sh', '-c', 'touch /written 2>/dev/null && echo wrote-root || echo refused; touch /scratch/x && echo wrote-tmpfs'],
  });
  assert.deepEqual(r.lines, ['refused', 'wrote-tmpfs']);
  await assert.rejects(stat(join(rootfs, 'written')));
});

test('bind mounts (rw and ro), named volumes, /etc/hosts and /etc/resolv.conf', async (t) => {
  const { runtime, rootfs, dir, root } = await setupRuntime(t);
  const shared = join(dir, 'shared');
  await mkdir(shared);
  await writeFile(join(shared, 'in.txt'), 'from-host\n');
  const r = await run(runtime, {
    id: 'mounts',
    rootfs,
    hostname: 'db',
    ip: '10.9.8.7',
    hosts: [{ ip: '10.0.0.5', names: ['cache', 'cache.local'] }],
    dns: { nameservers: ['10.0.0.53'], search: ['svc.local'] },
    mounts: [
      { type: 'bind', source: shared, target: '/shared' },
      { type: 'bind', source: shared, target: '/shared-ro', readOnly: true },
      { type: 'volume', source: 'data', target: '/data' },
    ],
    command: [
      'sh',
      '-c',
      'cat /shared/in.txt; echo out > /shared/out.txt; touch /shared-ro/x 2>/dev/null || echo ro-refused; echo v > /data/v; grep cache /etc/hosts; grep db /etc/hosts; cat /etc/resolv.conf',
    ],
  });
  assert.equal(r.exitCode, 0, r.lines.join('\n'));
  assert.deepEqual(r.lines, ['from-host', 'ro-refused', '10.0.0.5\tcache cache.local', '10.9.8.7\tdb', 'nameserver 10.0.0.53', 'search svc.local']);
  assert.equal(await readFile(join(shared, 'out.txt'), 'utf8'), 'out\n');
  assert.equal(await readFile(join(root, 'volumes', 'data', '_data', 'v'), 'utf8'), 'v\n');
});

test('a container joins the network namespace it is given', async (t) => {
  const { runtime, rootfs, dir } = await setupRuntime(t);
  const ns = `shoal-rt-${dir.slice(-6)}`;
  execFileSync('ip', ['netns', 'add', ns]);
  t.after(() => execFileSync('ip', ['netns', 'del', ns]));
  execFileSync('ip', ['-n', ns, 'link', 'add', 'probe0', 'type', 'veth', 'peer', 'name', 'probe1']);
  const joined = await run(runtime, { id: 'joined', rootfs, netns: `/run/netns/${ns}`, command: ['ip', 'link', 'show', 'probe0'] });
  assert.equal(joined.exitCode, 0, joined.lines.join('\n'));
  const fresh = await run(runtime, { id: 'fresh', rootfs, command: ['sh', '-c', 'ip -o link | wc -l'] });
  assert.deepEqual(fresh.lines.map((l) => l.trim()), ['1'], 'a default container has a new netns with only lo');
});

test('stop: a process that handles SIGTERM exits on it; one that ignores it is SIGKILLed after the grace period', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  await runtime.create({ id: 'polite', rootfs, command: ['sh', '-c', 'trap "exit 0" TERM; echo ready; while true; do sleep 0.1; done'] });
  await runtime.start('polite');
  await waitForLine(runtime, 'polite', 'ready');
  assert.equal((await runtime.stop('polite')).exitCode, 0);

  await runtime.create({ id: 'stubborn', rootfs, command: ['sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done'] });
  await runtime.start('stubborn');
  await waitForLine(runtime, 'stubborn', 'ready');
  const exit = await runtime.stop('stubborn', { graceMs: 300 });
  assert.equal(exit.exitCode, 137);
  assert.equal((await runtime.inspect('stubborn')).exitCode, 137);
  // Stopping an exited container reports the same exit again.
  assert.equal((await runtime.stop('stubborn')).exitCode, 137);
  // A custom stop signal: USR1 handled by the trap.
  await runtime.create({ id: 'usr1', rootfs, stopSignal: 'USR1', command: ['sh', '-c', 'trap "exit 9" USR1; echo ready; while true; do sleep 0.1; done'] });
  await runtime.start('usr1');
  await waitForLine(runtime, 'usr1', 'ready');
  assert.equal((await runtime.stop('usr1')).exitCode, 9);
});

test('remove refuses a running container unless forced; a created one can be removed', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  await runtime.create({ id: 'live', rootfs, command: ['sleep', '1000'] });
  await runtime.create({ id: 'never-started', rootfs, command: ['sleep', '1000'] });
  assert.equal((await runtime.inspect('never-started')).status, 'created');
  await runtime.start('live');
  assert.equal((await runtime.inspect('live')).status, 'running');
  await assert.rejects(runtime.remove('live'), /container live is running/);
  await assert.rejects(runtime.create({ id: 'live', rootfs, command: ['true'] }), /already exists/);
  await runtime.remove('live', { force: true });
  await runtime.remove('never-started');
  assert.deepEqual(await runtime.list(), []);
  assert.deepEqual(await runtime.runc.list(), []);
});

test('exec: output, exit code, env, user, timeout', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  await runtime.create({ id: 'target', rootfs, env: ['BASE=1'], command: ['sleep', '1000'] });
  await runtime.start('target');
  const r = await runExec(runtime, 'target', ['sh', '-c', 'echo out $BASE $EXTRA; echo err >&2; exit 5'], { env: ['EXTRA=2'] });
  assert.deepEqual(r, { exitCode: 5, stdout: 'out 1 2\n', stderr: 'err\n', timedOut: false });
  const who = await runExec(runtime, 'target', ['id', '-u'], { user: 'app' });
  assert.equal(who.stdout, '1000\n');
  await assert.rejects(runtime.exec('target', ['id'], { user: 'nobody-here' }), /unable to find user "nobody-here"/);
  const slow = await runExec(runtime, 'target', ['sleep', '100'], { timeoutMs: 200 });
  assert.equal(slow.timedOut, true);
  assert.notEqual(slow.exitCode, 0);
  const ps = await runExec(runtime, 'target', ['ps', '-o', 'comm']);
  assert.deepEqual(ps.stdout.trim().split('\n').slice(1).sort(), ['ps', 'sleep'], 'the timed-out exec process was killed');
  const tty = await runExec(runtime, 'target', ['tty'], { tty: true });
  assert.match(tty.stdout, /^\/dev\/pts\/\d+\r*\n$/, 'a terminal inside the container');
  await runtime.stop('target', { graceMs: 100 });
  await assert.rejects(runtime.exec('target', ['true']), /it is exited, not running/);
});

test('exec streams: output arrives while the process runs, input reaches it, the exit code comes last', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  await runtime.create({ id: 'chat', rootfs, command: ['sleep', '1000'] });
  await runtime.start('chat');
  const session = await runtime.exec('chat', ['sh', '-c', 'echo ready; read line; echo "got $line"; echo bye >&2; exit 4'], { stdin: true });
  const out: string[] = [];
  const err: string[] = [];
  session.stderr.on('data', (d: Buffer) => err.push(d.toString()));
  // The first line comes while the command still waits for input: nothing is held back to the end.
  await new Promise<void>((resolve) =>
    session.stdout.on('data', (d: Buffer) => {
      out.push(d.toString());
      if (out.join('').includes('ready\n')) resolve();
    }),
  );
  session.write(Buffer.from('hello\n'));
  session.closeStdin();
  assert.equal(await session.exited, 4);
  assert.equal(out.join(''), 'ready\ngot hello\n');
  assert.equal(err.join(''), 'bye\n');
});

test("a failing runc create surfaces runc's message and leaves nothing behind", async (t) => {
  const { runtime, rootfs, dir } = await setupRuntime(t);
  await assert.rejects(runtime.create({ id: 'bad', rootfs, command: ['/nonexistent'] }), /creating container bad failed: .*"\/nonexistent"/);
  await assert.rejects(runtime.create({ id: 'noroot', rootfs: join(dir, 'missing'), command: ['true'] }), /rootfs ".*missing" of container noroot is not a directory/);
  assert.deepEqual(await runtime.list(), []);
  assert.deepEqual(await runtime.runc.list(), []);
  await assert.rejects(runtime.inspect('bad'), /no such container: bad/);
});

test('a container that outgrows its memory limit is OOM-killed and says so', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  const r = await run(runtime, {
    id: 'hog',
    rootfs,
    resources: { memoryBytes: 8 * 1024 * 1024 },
    // A 50 MB shell variable cannot fit in 8 MiB.
    command: ['sh', '-c', 'x=$(head -c 50000000 /dev/zero | tr "\\0" a); echo ${#x}'],
  });
  assert.equal(r.exitCode, 137);
  assert.equal((await runtime.inspect('hog')).oomKilled, true);
  const fine = await run(runtime, { id: 'fine', rootfs, command: ['true'] });
  assert.equal(fine.exitCode, 0);
  assert.equal((await runtime.inspect('fine')).oomKilled, undefined);
});
