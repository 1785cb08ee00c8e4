// A private world for the network drivers: an underlay namespace holding a bridge, and "hosts"
// (namespaces with an eth0 on that bridge, 198.18.0.N/24), each with its own DriverNetworkAttacher
// working in it. Everything (namespaces the test or the attachers made, attachers, KV clients)
// is removed when the test ends, even when it fails; nothing touches the root namespace.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { DriverNetworkAttacher, type DriverNetworkAttacherOptions } from '../../../agent/network/attacher.js';
import { containerIdFor } from '../../../agent/worker/naming.js';
import type { Kv } from '../../../kv/kv.js';
import { Netlink } from '../../../netlink/index.js';
import type { Network, NetworkAttachment, PortConfig, Task } from '../../../proto/gen/objects.js';
import { makeTask } from '../../unit/worker/tasks.js';
export { ipJson } from '../netlink/netns.js';

const run = promisify(execFile);
let worlds = 0;

export interface Host {
  name: string;
  /** /run/netns/<name>. */
  path: string;
  /** Its eth0 address on the underlay, without prefix. */
  ip: string;
}

export interface World {
  /** Every namespace name of this world (the test's and the attachers') starts with it. */
  prefix: string;
  hosts: Host[];
  /** A started attacher working in `host`, closed at the end (after releasing everything, unless `keep`). */
  attacher(host: Host, kv: Kv, extra?: Partial<DriverNetworkAttacherOptions> & { stateDir?: string }): Promise<DriverNetworkAttacher>;
  /** A state directory that outlives one attacher (for restart tests). */
  stateDir(): Promise<string>;
}

async function ip(netns: string, ...args: string[]): Promise<void> {
  await run('ip', ['-n', netns, ...args]);
}

export async function makeWorld(t: TestContext, hostCount: number): Promise<World> {
  const prefix = `shtn${process.pid.toString(36)}${(worlds++).toString(36)}-`;
  const dirs: string[] = [];
  const attachers: DriverNetworkAttacher[] = [];
  t.after(async () => {
    for (const a of attachers.reverse()) {
      await a.releaseAll().catch(() => undefined);
      await a.close().catch(() => undefined);
    }
    for (const name of (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(prefix))) {
      await run('ip', ['netns', 'del', name]).catch(() => undefined);
    }
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const underlay = `${prefix}underlay`;
  await run('ip', ['netns', 'add', underlay]);
  await ip(underlay, 'link', 'add', 'ubr', 'type', 'bridge');
  await ip(underlay, 'link', 'set', 'ubr', 'up');
  const hosts: Host[] = [];
  for (let i = 0; i < hostCount; i++) {
    const name = `${prefix}host${String.fromCharCode(97 + i)}`;
    await run('ip', ['netns', 'add', name]);
    await ip(underlay, 'link', 'add', `u${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name);
    await ip(underlay, 'link', 'set', `u${i}`, 'master', 'ubr', 'up');
    await ip(name, 'addr', 'add', `198.18.0.${i + 1}/24`, 'dev', 'eth0');
    await ip(name, 'link', 'set', 'eth0', 'up');
    await ip(name, 'link', 'set', 'lo', 'up');
    hosts.push({ name, path: `/run/netns/${name}`, ip: `198.18.0.${i + 1}` });
  }
  const stateDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'shoal-net-'));
    dirs.push(d);
    return d;
  };
  return {
    prefix,
    hosts,
    stateDir,
    attacher: async (host, kv, extra = {}) => {
      const a = new DriverNetworkAttacher({
        kv, nodeId: `node-${host.name.slice(-1)}`, vtep: host.ip, stateDir: extra.stateDir ?? (await stateDir()), hostNetns: host.path,
        netnsPrefix: prefix, sessionTtlMs: 3000, ...extra,
      });
      attachers.push(a);
      await a.start();
      return a;
    },
  };
}

// ---- objects as the dispatcher sends them ----

export function network(id: string, driver: 'overlay' | 'bridge' | 'macvlan', subnet: string, gateway: string, opts: { vni?: number; options?: Record<string, string>; name?: string; internal?: boolean } = {}): Network {
  const driverOptions = { ...(opts.options ?? {}) };
  const state = { ...driverOptions, ...(opts.vni !== undefined ? { 'com.docker.network.driver.overlay.vxlanid_list': String(opts.vni) } : {}) };
  return {
    id,
    meta: null,
    spec: {
      annotations: { name: opts.name ?? `${driver}-net`, labels: {} },
      driverConfig: { name: driver, options: driverOptions },
      ipv6: false, internal: opts.internal ?? false, attachable: false, ingress: false,
      ipam: null, scope: driver === 'overlay' ? 'swarm' : 'local',
    },
    driverState: { name: driver, options: state },
    ipam: { driver: { name: 'default', options: {} }, configs: [{ subnet, range: '', gateway }] },
  };
}

export function task(id: string, attachments: Array<[Network, string]>, ports: Array<Partial<PortConfig>> = []): Task {
  const t = makeTask(id);
  t.networks = attachments.map(([n, address]): NetworkAttachment => ({ networkId: n.id, addresses: [address], aliases: [`${id}-alias`], mac: '', network: n }));
  if (ports.length > 0) {
    t.endpoint = {
      spec: null,
      ports: ports.map((p) => ({ name: '', protocol: 'TCP', targetPort: 80, publishedPort: 0, publishMode: 'HOST', ...p })),
      virtualIps: [],
    };
  }
  return t;
}

export const cid = (task: Task): string => containerIdFor(task.id);

// ---- looking ----

/** Runs a command in a namespace; resolves with its exit code and output. */
export async function inNetns(netns: string, ...argv: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('ip', ['netns', 'exec', netns, ...argv], { timeout: 10_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Retries `check` until it holds (no sleeping in the tests: a bounded wait for a condition). */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function pings(netns: string, target: string): Promise<boolean> {
  return (await inNetns(netns, 'ping', '-c1', '-W1', target)).code === 0;
}

export async function waitForPing(netns: string, target: string): Promise<void> {
  await waitFor(`${netns} to ping ${target}`, () => pings(netns, target));
}

export async function linkNames(netns: string): Promise<string[]> {
  const nl = await Netlink.open({ netns });
  try {
    return (await nl.listLinks()).map((l) => l.name).sort();
  } finally {
    nl.close();
  }
}

export async function namespacesWith(prefix: string): Promise<string[]> {
  return (await readdir('/run/netns').catch(() => [] as string[])).filter((n) => n.startsWith(prefix)).sort();
}

/** nftables tables in a namespace ("ip shoal", …). */
export async function nftTables(netns: string): Promise<string[]> {
  const { stdout } = await run('ip', ['netns', 'exec', netns, 'nft', 'list', 'tables']);
  return stdout.split('\n').map((l) => l.replace(/^table /, '').trim()).filter(Boolean);
}

export async function nftTable(netns: string, family: string): Promise<string> {
  const { stdout } = await run('ip', ['netns', 'exec', netns, 'nft', 'list', 'table', family, 'shoal']);
  return stdout;
}

/** A server in a namespace (killed by pid when the test ends): busybox nc answering every connection. */
export async function serveText(t: TestContext, netns: string, port: number, text: string): Promise<void> {
  const child = spawn('ip', ['netns', 'exec', netns, 'busybox', 'nc', '-ll', '-p', String(port), '-e', 'echo', text], { stdio: 'ignore' });
  const exited = once(child, 'exit');
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGKILL');
      await exited;
    }
  });
}

/** What a TCP client in `netns` reads from ip:port ("" when it cannot connect). */
export async function fetchText(netns: string, ip: string, port: number): Promise<string> {
  const r = await inNetns(netns, 'busybox', 'nc', '-w', '1', ip, String(port));
  return r.code === 0 ? r.output.trim() : '';
}
