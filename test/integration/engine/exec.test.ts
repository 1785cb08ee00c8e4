// `shoal exec` end to end below the swarm: the CLI's runExec against the Engine service on a unix
// socket, whose node is a real runc runtime with a real running container standing for a task.
// What it checks: the command runs inside the task's container; stdout, stderr and the exit code
// come back apart; stdin streams (with its end); -u/-w/-e; a real terminal with -t (its size, a
// resize, keys); errors that name the task or the node it runs on; a cancelled exec kills its
// process.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { EngineClient, EngineService, type ExecOutput } from '../../../proto/gen/local.js';
import { Task } from '../../../proto/gen/objects.js';
import { ImageStore } from '../../../agent/runtime/image/store.js';
import { containerIdFor } from '../../../agent/worker/naming.js';
import { parseFlags } from '../../../util/flags.js';
import { execCommand, runExec, type ExecIo } from '../../../cli/commands/exec.js';
import { engineHandlers, type EngineNode } from '../../../daemon/engine.js';
import { resolveTask, TaskLookupError } from '../../../daemon/tasklookup.js';
import { mulberry32 } from '../../support/prng.js';
import { waitFor } from '../../support/wait.js';
import { setupRuntime } from '../runtime/harness.js';

function task(fields: Partial<Task> & { id: string }): Task {
  return Task.decode(Task.encode({ desiredState: 'RUNNING', serviceName: 'web', nodeId: 'node-here', ...fields } as Task));
}

interface World {
  socket: string;
  tasks: Task[];
  cluster: ReturnType<EngineNode['cluster']>;
  inSwarm: boolean;
}

/** A running container for task `web.1`, a created-only one for `web.2`, and the Engine serving them. */
async function world(t: TestContext): Promise<World> {
  const fx = await setupRuntime(t);
  const running = task({ id: 'r1xq7k2m9p3v5w8z0a4b6c8d0', slot: 1, status: { state: 'RUNNING' } as Task['status'] });
  const created = task({ id: 'c2ab7k2m9p3v5w8z0a4b6c8d0', slot: 2, status: { state: 'READY' } as Task['status'] });
  const gone = task({ id: 'g3zz7k2m9p3v5w8z0a4b6c8d0', slot: 3, status: { state: 'FAILED' } as Task['status'] });
  await fx.runtime.create({ id: containerIdFor(running.id), rootfs: fx.rootfs, command: ['sleep', '1000'], env: ['FROM_TASK=yes'] });
  await fx.runtime.start(containerIdFor(running.id));
  await fx.runtime.create({ id: containerIdFor(created.id), rootfs: fx.rootfs, command: ['sleep', '1000'] });
  const dir = mkdtempSync(join(tmpdir(), 'shoal-exec-'));
  const w: World = { socket: join(dir, 'engine.sock'), tasks: [running, created, gone], cluster: null, inSwarm: true };
  const node: EngineNode = {
    images: new ImageStore(join(dir, 'images')),
    pullOptions: () => ({}),
    scratchDir: join(dir, 'engine'),
    agent: () => (w.inSwarm ? { tasks: () => w.tasks, runtime: () => fx.runtime } : null),
    cluster: () => w.cluster,
  };
  const server = new grpc.Server();
  server.addService(EngineService, engineHandlers(node));
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix://${w.socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  t.after(() => {
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });
  return w;
}

/** Terminal output with its line ends as a terminal shows them. */
const crlf = (s: string): string => s.replace(/\r+\n/g, '\r\n');

type FakeStdin = PassThrough & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
type FakeStdout = PassThrough & { isTTY?: boolean; rows?: number; columns?: number };

interface Run {
  code: Promise<number>;
  stdin: FakeStdin;
  stdout: FakeStdout;
  out(): string;
  err(): string;
  raw: boolean[];
}

/** `shoal exec ARGV` through the CLI's own code, with in-memory stdio (a terminal when asked). */
function exec(w: World, argv: string[], opts: { ttyIn?: boolean; size?: { rows: number; cols: number }; input?: Buffer } = {}): Run {
  const stdin: FakeStdin = new PassThrough();
  const stdout: FakeStdout = new PassThrough();
  const stderr = new PassThrough();
  const raw: boolean[] = [];
  if (opts.ttyIn) {
    stdin.isTTY = true;
    stdin.setRawMode = (r: boolean) => raw.push(r);
  }
  if (opts.size) Object.assign(stdout, { isTTY: true, rows: opts.size.rows, columns: opts.size.cols });
  const chunks: Buffer[] = [];
  const errs: Buffer[] = [];
  stdout.on('data', (d: Buffer) => chunks.push(d));
  stderr.on('data', (d: Buffer) => errs.push(d));
  if (opts.input) stdin.end(opts.input);
  const parsed = parseFlags(argv, execCommand.flags!, true);
  const code = runExec({ args: parsed.args, flags: parsed.flags, global: { host: `unix://${w.socket}` } }, { stdin, stdout, stderr } as ExecIo);
  return { code, stdin, stdout, out: () => Buffer.concat(chunks).toString(), err: () => Buffer.concat(errs).toString(), raw };
}

test('exec runs in the task container, found by name, ID, prefix or full name: stdout, stderr and the exit code apart', async (t) => {
  const w = await world(t);
  const r = exec(w, ['web.1', 'sh', '-c', 'echo out; echo err >&2; echo $(tr "\\0" " " < /proc/1/cmdline); hostname; echo $FROM_TASK; exit 7']);
  assert.equal(await r.code, 7);
  // PID 1 of its pid namespace is the task's process; the hostname and env are the container's.
  assert.equal(r.out(), `out\nsleep 1000\n${containerIdFor(w.tasks[0]!.id).slice(0, 12)}\nyes\n`);
  assert.equal(r.err(), 'err\n');
  for (const ref of [w.tasks[0]!.id, 'r1xq', `web.1.${w.tasks[0]!.id}`]) {
    const byRef = exec(w, [ref, 'true']);
    assert.equal(await byRef.code, 0, `${ref}: ${byRef.err()}`);
  }
  // Flags after the task belong to the command.
  const tail = exec(w, ['web.1', 'echo', '-n', '--user', 'x']);
  assert.equal(await tail.code, 0);
  assert.equal(tail.out(), '--user x');
});

test('exec -i streams stdin to the command, larger than any pipe buffer, and its end is end of file; without -i stdin is empty', async (t) => {
  const w = await world(t);
  const rand = mulberry32(11);
  const data = Buffer.from(Array.from({ length: 300 * 1024 }, () => Math.floor(rand() * 256)));
  const chunks: Buffer[] = [];
  const r = exec(w, ['-i', 'web.1', 'cat'], { input: data });
  r.stdout.on('data', (d: Buffer) => chunks.push(d));
  assert.equal(await r.code, 0, r.err());
  assert.ok(Buffer.concat(chunks).equals(data), 'cat gave back exactly what it read');
  const none = exec(w, ['web.1', 'wc', '-c'], { input: Buffer.from('ignored') });
  assert.equal(await none.code, 0);
  assert.equal(none.out().trim(), '0');
});

test('exec -u, -w and -e: the user (by name, with its groups), the directory and the environment of the command', async (t) => {
  const w = await world(t);
  const nobody = exec(w, ['-u', 'nobody', 'web.1', 'id']);
  assert.equal(await nobody.code, 0, nobody.err());
  assert.equal(nobody.out(), 'uid=65534(nobody) gid=65534(nogroup)\n');
  const app = exec(w, ['--user', 'app', '-w', '/tmp', '-e', 'A=1', '-e', 'FROM_TASK=replaced', 'web.1', 'sh', '-c', 'id -G; pwd; echo $A $FROM_TASK']);
  assert.equal(await app.code, 0, app.err());
  assert.equal(app.out(), '1000 50\n/tmp\n1 replaced\n');
  const bad = exec(w, ['-u', 'nosuch', 'web.1', 'id']);
  await assert.rejects(bad.code, /^UserError: user "nosuch" in task web\.1 \(r1xq7k2m9p3v\): .*nosuch/);
  await assert.rejects(exec(w, ['-e', '=x', 'web.1', 'id']).code, /invalid environment variable "=x" for --env: expected KEY=VALUE/);
});

test('exec -t gives the command a terminal of the client size, follows a resize, and -it sends keys in raw mode', async (t) => {
  const w = await world(t);
  const once = exec(w, ['-t', 'web.1', 'sh', '-c', 'tty; stty size; echo to-stderr >&2; exit 3'], { size: { rows: 30, cols: 100 } });
  assert.equal(await once.code, 3);
  // One stream, as a terminal gives it: stderr arrives on stdout, lines end in CR LF.
  // (A line may end in CR CR LF when the command beat runc's set-up of the pty: see daemon/exec.ts.)
  assert.equal(crlf(once.out()), '/dev/pts/0\r\n30 100\r\nto-stderr\r\n');
  assert.equal(once.err(), '');

  const shell = exec(w, ['-it', 'web.1', 'sh'], { ttyIn: true, size: { rows: 30, cols: 100 } });
  // Typing before the prompt could be lost: an interactive shell flushes input as it sets up its terminal.
  await waitFor(() => `the prompt, not ${JSON.stringify(shell.out())}`, () => shell.out().includes('/ # '));
  shell.stdin.write('stty size\n');
  await waitFor(() => `the first size, not ${JSON.stringify(shell.out())}`, () => crlf(shell.out()).includes('30 100\r\n'));
  Object.assign(shell.stdout, { rows: 40, columns: 120 });
  shell.stdout.emit('resize');
  // The resize travels as its own message, then SIGWINCH: ask until the shell sees it.
  await waitFor('the new size', () => {
    shell.stdin.write('stty size\n');
    return crlf(shell.out()).includes('40 120\r\n');
  });
  shell.stdin.write('exit 5\n');
  assert.equal(await shell.code, 5);
  assert.deepEqual(shell.raw, [true, false], 'raw mode on for the session, back off after');

  await assert.rejects(exec(w, ['-it', 'web.1', 'sh'], { size: { rows: 30, cols: 100 } }).code, /the input device is not a TTY/);
});

test('exec errors name the task: unknown, ambiguous, not running, no container, outside a swarm, on another node', async (t) => {
  const w = await world(t);
  const fails = async (argv: string[], message: RegExp) => assert.rejects(exec(w, argv).code, message);
  await fails(['nope', 'true'], /^UserError: no task "nope" runs on this node \(to find where it runs, use "shoal service ps" on a manager\)$/);
  w.tasks.push(task({ id: 'r1aa00000000000000000000', slot: 9 }));
  await fails(['r1', 'true'], /task ID prefix "r1" is ambiguous: it matches web\.1 \(r1xq7k2m9p3v\), web\.9 \(r1aa00000000\)/);
  w.tasks.pop();
  await fails(['web.2', 'true'], /^UserError: task web\.2 \(c2ab7k2m9p3v\) is not running: its container is created$/);
  await fails(['web.3', 'true'], /^UserError: task web\.3 \(g3zz7k2m9p3v\) has no container \(task state FAILED\)$/);
  const elsewhere = task({ id: 'e4ee7k2m9p3v5w8z0a4b6c8d0', serviceName: 'api', slot: 1, nodeId: 'node-there' });
  w.cluster = { nodeId: 'node-here', tasks: [...w.tasks, elsewhere], nodeName: (id) => (id === 'node-there' ? 'h2' : id) };
  await fails(['api.1', 'true'], /^UserError: task api\.1 \(e4ee7k2m9p3v\) runs on node h2, not on this node: run "shoal exec" on h2$/);
  await fails(['api.7', 'true'], /^UserError: no such task: "api\.7"$/);
  w.inSwarm = false;
  await fails(['web.1', 'true'], /^UserError: This node is not part of a swarm: it runs no tasks \(looking for task "web\.1"\)$/);
});

test('a cancelled exec kills its process in the container', async (t) => {
  const w = await world(t);
  const client = new EngineClient(`unix://${w.socket}`, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const call = client.exec();
  call.on('error', () => undefined);
  const started = new Promise<ExecOutput>((resolve) => call.once('data', resolve));
  call.write({ start: { task: 'web.1', cmd: ['sleep', '999'], tty: false, stdin: false, user: '', workdir: '', env: [], size: null }, stdin: new Uint8Array(0), closeStdin: false, resize: null });
  assert.equal((await started).containerId, containerIdFor(w.tasks[0]!.id));
  const sleeping = async () => {
    const ps = exec(w, ['web.1', 'ps', '-o', 'args']);
    await ps.code;
    return ps.out().split('\n').includes('sleep 999');
  };
  await waitFor('the exec to run', sleeping);
  call.cancel();
  await waitFor('the exec to be killed', async () => !(await sleeping()));
});

test('task names: a slot means its running task, else the one meant to run, else the newest; IDs win over names', () => {
  const t = (id: string, slot: number, state: string, desired: string, createdAt: number) =>
    task({ id, slot, status: { state } as Task['status'], desiredState: desired as Task['desiredState'], meta: { version: 1, createdAt, updatedAt: 0 } });
  const failed = t('aaa1', 1, 'FAILED', 'SHUTDOWN', 1);
  const starting = t('aaa2', 1, 'STARTING', 'RUNNING', 2);
  const oldRunning = t('bbb1', 2, 'RUNNING', 'SHUTDOWN', 1);
  const newer = t('bbb2', 2, 'PREPARING', 'RUNNING', 2);
  const tasks = [failed, starting, oldRunning, newer];
  assert.equal(resolveTask('web.1', tasks).id, 'aaa2');
  assert.equal(resolveTask('web.2', tasks).id, 'bbb1', 'the one that runs, even if it is being replaced');
  assert.equal(resolveTask('web.1', [failed, t('aaa3', 1, 'FAILED', 'SHUTDOWN', 3)]).id, 'aaa3');
  assert.equal(resolveTask('aaa1', tasks).id, 'aaa1');
  assert.equal(resolveTask('bbb2', tasks).id, 'bbb2');
  const global = task({ id: 'ggg1', slot: 0, serviceName: 'agent', nodeId: 'n1' });
  assert.equal(resolveTask('agent.n1', [global]).id, 'ggg1');
  assert.throws(() => resolveTask('aa', tasks), (e: unknown) => e instanceof TaskLookupError && e.kind === 'ambiguous');
  assert.throws(() => resolveTask('web.3', tasks), (e: unknown) => e instanceof TaskLookupError && e.kind === 'none');
});
