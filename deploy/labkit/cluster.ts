// A shoal cluster in the lab: a shoald per host (detached, its pid and log beside the host's
// socket), `swarm init` on h1, the next hosts joining as managers and the rest as workers.
// Daemons are run through bin/ as a user would; `down` ends them with the rest of the lab.
import { spawnSync } from 'node:child_process';
import { existsSync, openSync, readFileSync, writeFileSync, closeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { registryHost } from './registry.js';
import { agentNetnsPrefix, labCgroupParent } from './layout.js';
import { UserError } from '../../util/command.js';
import type { Lab } from './lab.js';

/** The checkout (this file runs from dist/deploy/labkit/). */
const repo = fileURLToPath(new URL('../../../', import.meta.url));

const pidFile = (lab: Lab, host: string) => `${lab.host(host).runDir}/shoald.pid`;
export const logFile = (lab: Lab, host: string) => `${lab.host(host).runDir}/shoald.log`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function daemonPid(lab: Lab, host: string): number | null {
  if (!existsSync(pidFile(lab, host))) return null;
  const pid = Number(readFileSync(pidFile(lab, host), 'utf8'));
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
}

/** Runs `shoal ARGS` against the host's daemon, capturing its output. */
export function cli(lab: Lab, host: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(`${repo}bin/shoal`, ['-H', `unix://${lab.host(host).socket}`, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the host's shoald (keeping its data), and waits until its API answers. `extra`: more shoald flags. */
export async function startDaemon(lab: Lab, host: string, extra: readonly string[] = []): Promise<number> {
  const running = daemonPid(lab, host);
  if (running) return running;
  const h = lab.host(host);
  const log = openSync(logFile(lab, host), 'a');
  const registry = lab.layout().registry ? ['--insecure-registry', registryHost(lab.layout())] : [];
  // Names that are the lab's, so `lab down` finds every namespace and cgroup the agents made.
  const own = ['--netns-prefix', agentNetnsPrefix(lab.name, host), '--cgroup-parent', labCgroupParent(lab.name, host)];
  const argv = [`${repo}bin/shoald`, '--data-root', `${h.dataDir}/data`, '-H', `unix://${h.socket}`, '--metrics-addr', `${h.address}:9323`, ...registry, ...own, ...extra];
  const child = lab.spawn(host, argv, { stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  const pid = child.pid!;
  writeFileSync(pidFile(lab, host), String(pid));
  for (let i = 0; i < 400; i++) {
    if (!alive(pid)) throw new UserError(`shoald on ${host} exited at start; see ${logFile(lab, host)}`);
    if (existsSync(h.socket) && cli(lab, host, ['info']).status === 0) return pid;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new UserError(`shoald on ${host} did not answer in time; see ${logFile(lab, host)}`);
}

/** SIGKILL to the host's shoald, as a crash would. */
export async function killDaemon(lab: Lab, host: string): Promise<void> {
  const pid = daemonPid(lab, host);
  if (!pid) throw new UserError(`no shoald is running on ${host}`);
  process.kill(pid, 'SIGKILL');
  while (alive(pid)) await new Promise((r) => setTimeout(r, 20));
}

function must(r: { status: number | null; stdout: string; stderr: string }, what: string): string {
  if (r.status !== 0) throw new UserError(`${what} failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export interface FormOptions {
  /** Form the cluster of the first N hosts only (the others can join later: joinCluster). Default all. */
  hosts?: number;
  /** More flags for the founder's shoald (h1), e.g. `--kv redis://…`. */
  founderFlags?: string[];
}

/** Starts every host's daemon and forms the cluster: h1..hM managers, the rest workers. */
export async function formCluster(lab: Lab, managers: number, log: (line: string) => void, opts: FormOptions = {}): Promise<void> {
  const hosts = lab.layout().hosts.slice(0, opts.hosts ?? Infinity);
  if (managers < 1 || managers > hosts.length) throw new UserError(`--managers must be between 1 and the number of hosts (${hosts.length}), not ${managers}`);
  const first = hosts[0]!;
  await Promise.all(hosts.map((h) => startDaemon(lab, h.name, h === first ? (opts.founderFlags ?? []) : [])));
  must(cli(lab, first.name, ['swarm', 'init', '--advertise-addr', first.address]), `swarm init on ${first.name}`);
  log(`${first.name}: swarm initialized`);
  for (const [i, h] of hosts.entries()) {
    if (i === 0) continue;
    const role = i < managers ? 'manager' : 'worker';
    await joinCluster(lab, h.name, role);
    log(`${h.name}: joined as a ${role}`);
  }
}

/** Starts `host`'s daemon (if it is not running) and joins it, as `role`, to the cluster h1 founded. */
export async function joinCluster(lab: Lab, host: string, role: 'manager' | 'worker'): Promise<void> {
  const first = lab.layout().hosts[0]!;
  const h = lab.host(host);
  await startDaemon(lab, host);
  const token = must(cli(lab, first.name, ['swarm', 'join-token', '-q', role]), 'swarm join-token').trim();
  must(cli(lab, host, ['swarm', 'join', '--token', token, '--advertise-addr', h.address, first.address]), `swarm join on ${host}`);
}
