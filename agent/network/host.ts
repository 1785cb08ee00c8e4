// The few things the drivers do outside rtnetlink: named namespaces (`ip netns add/del`, which
// also manage the bind mounts under /run/netns), nftables (`nft -f -`) and two sysctls (ip_forward,
// a bridge's route_localnet), each run in the host namespace the attacher works in.
import { spawn } from 'node:child_process';
import { access, readFile, writeFile } from 'node:fs/promises';
import { Netlink } from '../../netlink/index.js';

export const NETNS_DIR = '/run/netns';

export function netnsPathOf(name: string): string {
  return `${NETNS_DIR}/${name}`;
}

export async function netnsExists(name: string): Promise<boolean> {
  return access(netnsPathOf(name)).then(
    () => true,
    () => false,
  );
}

/**
 * Runs a program (in `netns`, a namespace path, when given) and resolves with its stdout; rejects
 * with `<what>: <its stderr>`.
 */
export function run(what: string, argv: string[], opts: { netns?: string; input?: string } = {}): Promise<string> {
  const full = opts.netns === undefined ? argv : ['nsenter', `--net=${opts.netns}`, '--', ...argv];
  return new Promise((resolve, reject) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('error', (err) => reject(new Error(`${what}: cannot run ${full[0]}: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${what}: ${stderr.trim() || `${argv[0]} exited with ${code ?? signal}`}`));
    });
    if (child.stdin) {
      // A program that fails before reading its input closes the pipe: its exit status tells why.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input);
    }
  });
}

/** Creates a named namespace with its loopback up. */
export async function createNetns(name: string): Promise<void> {
  await run(`create network namespace ${name}`, ['ip', 'netns', 'add', name]);
  await withNetlink(name, (nl) => nl.setUp('lo'));
}

/** Deletes a named namespace; a missing one is fine. */
export async function deleteNetns(name: string): Promise<void> {
  if (!(await netnsExists(name))) return;
  await run(`delete network namespace ${name}`, ['ip', 'netns', 'del', name]);
}

/** Runs `fn` with a netlink client in the namespace (a name, a path, or undefined: our own), closed afterwards. */
export async function withNetlink<T>(netns: string | undefined, fn: (nl: Netlink) => Promise<T>): Promise<T> {
  const nl = await Netlink.open(netns === undefined ? {} : { netns });
  try {
    return await fn(nl);
  } finally {
    nl.close();
  }
}

/**
 * Writes "1" to a /proc/sys file of the host namespace. /proc/sys/net shows the namespace of
 * whoever opens it, so another namespace's is written from inside it.
 */
async function enableSysctl(hostNetns: string | undefined, file: string, what: string): Promise<void> {
  if (hostNetns === undefined) {
    if ((await readFile(file, 'utf8')).trim() !== '1') await writeFile(file, '1\n');
    return;
  }
  await run(`${what} in ${hostNetns}`, ['sh', '-c', `echo 1 > ${file}`], { netns: hostNetns });
}

/** Turns on IPv4 forwarding in the host namespace (NAT and published ports need it). */
export async function enableForwarding(hostNetns: string | undefined): Promise<void> {
  await enableSysctl(hostNetns, '/proc/sys/net/ipv4/ip_forward', 'enable IPv4 forwarding');
}

/** Lets a bridge carry packets from 127.0.0.1: published ports reached on the host's loopback (nftables.ts). */
export async function enableRouteLocalnet(hostNetns: string | undefined, bridge: string): Promise<void> {
  await enableSysctl(hostNetns, `/proc/sys/net/ipv4/conf/${bridge}/route_localnet`, `enable route_localnet on ${bridge}`);
}

/** Loads an nftables script atomically (one transaction) in the host namespace. */
export async function nftApply(hostNetns: string | undefined, script: string): Promise<void> {
  await run('nft -f -', ['nft', '-f', '-'], { netns: hostNetns, input: script });
}

/** Whether a NetlinkError says the object is already gone (so deleting it again is fine). */
export function isGone(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ENODEV' || code === 'ENOENT' || code === 'ESRCH' || code === 'EADDRNOTAVAIL';
}

/** Runs a deletion, treating "already gone" as done. */
export async function ignoreGone(p: Promise<unknown>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (!isGone(err)) throw err;
  }
}
