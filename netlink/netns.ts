// Naming network namespaces: by name (/run/netns/NAME, as `ip netns` makes them), by path, by an
// open file descriptor, or by a process whose namespace it is.
import { open } from 'node:fs/promises';

export type NetnsRef = string | { fd: number } | { pid: number };

/** "blue" → /run/netns/blue; a path (anything with a slash) is kept as is. */
export function netnsPath(nameOrPath: string): string {
  if (nameOrPath.includes('/')) return nameOrPath;
  if (nameOrPath === '' || nameOrPath === '.' || nameOrPath === '..') {
    throw new TypeError(`"${nameOrPath}" is not a network namespace name`);
  }
  return `/run/netns/${nameOrPath}`;
}

export function describeNetns(ref: NetnsRef): string {
  if (typeof ref === 'string') return `netns ${ref}`;
  if ('fd' in ref) return `netns fd ${ref.fd}`;
  return `netns of pid ${ref.pid}`;
}

/**
 * Runs `fn` with an fd for the namespace (for IFLA_NET_NS_FD) or a pid (IFLA_NET_NS_PID),
 * closing any fd it opened afterwards.
 */
export async function withNetns<T>(ref: NetnsRef, fn: (target: { fd: number } | { pid: number }) => Promise<T>): Promise<T> {
  if (typeof ref !== 'string') return fn(ref);
  const handle = await open(netnsPath(ref), 'r');
  try {
    return await fn({ fd: handle.fd });
  } finally {
    await handle.close();
  }
}
