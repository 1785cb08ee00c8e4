// What the lab tests of services and networks look at: a service's tasks as `service ps` lists
// them, a command run inside a task's container (runc exec: its own interfaces, routes and
// resolv.conf, so names resolve as the task resolves them), what a host's namespace holds (network
// namespaces, links, nftables tables), and the cluster KV as an agent reaches it.
import assert from 'node:assert/strict';
import { containerIdFor } from '../../agent/worker/naming.js';
import { cli } from '../../deploy/labkit/cluster.js';
import { agentNetnsPrefix } from '../../deploy/labkit/layout.js';
import type { ExecResult, Lab } from '../../deploy/labkit/lab.js';
import { repo } from './labkit/helpers.js';
import { waitFor } from '../support/wait.js';

/** The image every lab service runs: busybox in the lab registry. */
export const labImage = (lab: Lab): string => `${lab.layout().registry!.address}:5000/shoal/busybox:latest`;

/**
 * A task that stays up and ends at once on SIGTERM (PID 1 ignores signals it does not handle, so a
 * bare `sleep` would wait out the whole stop grace period at every scale-down and removal).
 */
export const idle = ['sh', '-c', 'trap "exit 0" TERM; sleep 1d & wait'];

/** `shoal ARGS` on `host`; the test fails with the CLI's own words if it does. */
export function shoal(lab: Lab, host: string, args: string[]): string {
  const r = cli(lab, host, args);
  assert.equal(r.status, 0, `shoal ${args.join(' ')} on ${host} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export interface TaskRow {
  id: string;
  name: string;
  /** The node's hostname, which is the lab host's name (h1, h2…); the node id once it was removed. */
  node: string;
  desired: string;
  /** `Running 3 seconds ago`, `Pending 1 second ago`… */
  current: string;
  error: string;
}

const SEP = '\u001f';

/** Every task of the services (history included), from one `service ps --no-trunc` on h1. */
export function tasks(lab: Lab, ...services: string[]): TaskRow[] {
  const format = ['{{.ID}}', '{{.Name}}', '{{.Node}}', '{{.DesiredState}}', '{{.CurrentState}}', '{{.Error}}'].join(SEP);
  const out = shoal(lab, 'h1', ['service', 'ps', ...services, '--no-trunc', '--format', format]);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [id = '', name = '', node = '', desired = '', current = '', error = ''] = l.split(SEP);
      return { id, name, node, desired, current, error };
    });
}

export const isRunning = (t: TaskRow): boolean => t.desired === 'Running' && t.current.startsWith('Running');

/** Tasks meant to run and running. */
export function running(lab: Lab, service: string): TaskRow[] {
  return tasks(lab, service).filter(isRunning);
}

/** Waits until each of the services runs a task; returns the first running task of each. */
export async function waitForTasks(lab: Lab, services: string[], timeoutMs = 60_000): Promise<Record<string, TaskRow>> {
  let missing = services;
  return waitFor(() => `${missing.join(', ')} to run`, () => {
    const rows = tasks(lab, ...services).filter(isRunning);
    const first = (s: string) => rows.find((r) => r.name.startsWith(`${s}.`));
    missing = services.filter((s) => !first(s));
    return missing.length === 0 ? Object.fromEntries(services.map((s) => [s, first(s)!])) : null;
  }, { timeoutMs });
}

/** The service's running tasks; null while any of its tasks told to stop (scaled away, moved) still runs. */
export function settled(lab: Lab, service: string): TaskRow[] | null {
  const all = tasks(lab, service);
  if (all.some((t) => t.desired !== 'Running' && t.current.startsWith('Running'))) return null;
  return all.filter(isRunning);
}

/** How many of `rows` each host runs, as `h1:2 h2:2 h3:2` (hosts in order, those with none left out). */
export function perHost(rows: TaskRow[]): string {
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.node, (counts.get(r.node) ?? 0) + 1);
  return [...counts.entries()]
    .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
    .map(([h, n]) => `${h}:${n}`)
    .join(' ');
}

/** Runs argv inside the container of `task` on its host (runc exec under the agent's runc root). */
export function execInTask(lab: Lab, task: TaskRow, argv: string[]): Promise<ExecResult> {
  const runcRoot = `${lab.host(task.node).dataDir}/data/agent/runtime/runc`;
  return lab.exec(task.node, ['runc', '--root', runcRoot, 'exec', containerIdFor(task.id), ...argv]);
}

/** When the task's container was created on its host (runc's record, ms since the epoch). */
export async function containerCreatedAt(lab: Lab, task: TaskRow): Promise<number> {
  const runcRoot = `${lab.host(task.node).dataDir}/data/agent/runtime/runc`;
  const r = await lab.exec(task.node, ['runc', '--root', runcRoot, 'state', containerIdFor(task.id)]);
  assert.equal(r.code, 0, `runc state of task ${task.name} on ${task.node}: ${r.stderr}`);
  const created = Date.parse((JSON.parse(r.stdout) as { created: string }).created);
  assert.ok(Number.isFinite(created), `runc state of task ${task.name} has no creation time: ${r.stdout}`);
  return created;
}

/** The IPv4 address (without prefix) of `iface` in the task's container. */
export async function taskAddress(lab: Lab, task: TaskRow, iface = 'eth0'): Promise<string> {
  const r = await execInTask(lab, task, ['ip', '-4', '-o', 'addr', 'show', 'dev', iface]);
  const m = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(r.stdout);
  assert.ok(m, `no IPv4 address on ${iface} of task ${task.name} on ${task.node}: ${r.stdout}${r.stderr}`);
  return m[1]!;
}

/** One ping from inside the task's container; true when it was answered. */
export async function pings(lab: Lab, task: TaskRow, target: string): Promise<boolean> {
  const r = await execInTask(lab, task, ['ping', '-c1', '-W1', target]);
  return r.code === 0;
}

/**
 * Waits until `task` pings `target`; when it never does, the failure says what the task saw: the
 * name's answer, its VIP table, its neighbours and routes.
 */
export async function waitForPing(lab: Lab, task: TaskRow, target: string, timeoutMs = 10_000): Promise<void> {
  try {
    await waitFor(`${task.name} on ${task.node} to ping ${target}`, () => pings(lab, task, target), { timeoutMs });
  } catch (e) {
    const seen: string[] = [];
    const show = (argv: string[], r: { code: number | null; stdout: string; stderr: string }) => seen.push(`$ ${argv.join(' ')} (exit ${r.code})\n${r.stdout}${r.stderr}`);
    const failed = (err: Error) => ({ code: -1, stdout: '', stderr: err.message });
    for (const argv of [['nslookup', target], ['ip', 'neigh'], ['ip', 'route']]) show(argv, await execInTask(lab, task, argv).catch(failed));
    // The image has no nft: the task's VIP table is read from its host, in the task's namespace.
    const nft = ['nsenter', `--net=/run/netns/${agentNetnsPrefix(lab.name, task.node)}${containerIdFor(task.id).slice(0, 12)}`, 'nft', 'list', 'table', 'ip', 'shoal-lb'];
    show(nft, await lab.exec(task.node, nft).catch(failed));
    const service = task.name.slice(0, task.name.lastIndexOf('.'));
    for (const args of [['service', 'ps', service, '--no-trunc'], ['node', 'ls']]) {
      const r = cli(lab, 'h1', args);
      show(['shoal', ...args], { code: r.status, stdout: r.stdout, stderr: r.stderr });
    }
    throw new Error(`${(e as Error).message}\n${seen.join('\n')}`);
  }
}

/** The network namespaces `host`'s shoald made (its agent's prefix), by name. */
export async function agentNamespaces(lab: Lab, host: string): Promise<string[]> {
  const r = await lab.exec(host, ['ip', 'netns', 'list']);
  const prefix = agentNetnsPrefix(lab.name, host);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(prefix))
    .sort();
}

/** Link names in a namespace (`ip -n NS link`; the host's own namespace when `netns` is omitted). */
export async function links(lab: Lab, host: string, netns?: string): Promise<string[]> {
  const r = await lab.exec(host, ['ip', ...(netns ? ['-n', netns] : []), '-o', 'link', 'show']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1]!.trim().split('@')[0]!)
    .sort();
}

/** `nft list tables` in the host's namespace: `ip shoal`, `bridge shoal`… */
export async function nftTables(lab: Lab, host: string): Promise<string[]> {
  const r = await lab.exec(host, ['nft', 'list', 'tables']);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.replace(/^table /, '').trim())
    .sort();
}

/**
 * Keys under `prefix` in the cluster's KV, read the way `host`'s agent reads it: with the node's
 * certificate through the managers' KV service, or straight from Redis when the cluster keeps it
 * there (kv/connect.ts decides).
 */
export async function kvKeys(lab: Lab, host: string, prefix: string): Promise<string[]> {
  const swarmDir = `${lab.host(host).dataDir}/data/swarm`;
  const manager = `${lab.host('h1').address}:2377`;
  const script = [
    "import { readFileSync } from 'node:fs';",
    `const { connectKv } = await import(${JSON.stringify(`${repo}dist/kv/connect.js`)});`,
    `const { clusterCredentials } = await import(${JSON.stringify(`${repo}dist/agent/credentials.js`)});`,
    `const dir = ${JSON.stringify(swarmDir)};`,
    "const certs = { ca: readFileSync(dir + '/ca.pem', 'utf8'), cert: readFileSync(dir + '/node.pem', 'utf8'), key: readFileSync(dir + '/node.key', 'utf8') };",
    'const { credentials, channelOptions } = clusterCredentials(certs);',
    `const kv = await connectKv({ managers: [${JSON.stringify(manager)}], credentials, channelOptions, failoverTimeoutMs: 5000 });`,
    `console.log(JSON.stringify(await kv.keys(${JSON.stringify(prefix)})));`,
    'await kv.close();',
  ].join('\n');
  const r = await lab.exec(host, ['node', '--input-type=module', '-e', script]);
  assert.equal(r.code, 0, `reading the KV from ${host} failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as string[]).sort();
}
