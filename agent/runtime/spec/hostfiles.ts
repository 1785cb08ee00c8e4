// The three files Docker writes per container and bind-mounts over the image's: /etc/hosts,
// /etc/hostname and /etc/resolv.conf. Written into the container's state dir so a rewrite (a
// network attached later, DNS changed) does not touch the image.
import { readFile, writeFile } from 'node:fs/promises';
import type { ContainerSpec, DnsConfig, HostEntry } from '../runtime.js';

export function hostsFile(hostname: string, ip: string | undefined, extra: HostEntry[] = []): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    ...extra.map((h) => `${h.ip}\t${h.names.join(' ')}`),
  ];
  if (ip !== undefined) lines.push(`${ip}\t${hostname}`);
  return lines.join('\n') + '\n';
}

/**
 * Docker's rule: the host's resolv.conf minus loopback nameservers (they mean nothing inside another
 * network namespace); Google's public servers when nothing is left. An explicit DnsConfig wins.
 */
export function resolvConf(hostResolvConf: string, dns: DnsConfig | undefined): string {
  const lines: string[] = [];
  const hostNameservers: string[] = [];
  const hostOther: string[] = [];
  for (const raw of hostResolvConf.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('nameserver')) {
      const addr = line.split(/\s+/)[1] ?? '';
      if (!addr.startsWith('127.') && addr !== '::1') hostNameservers.push(addr);
    } else if (line.startsWith('search') || line.startsWith('options')) {
      hostOther.push(line);
    }
  }
  const nameservers = dns?.nameservers ?? (hostNameservers.length > 0 ? hostNameservers : ['8.8.8.8', '8.8.4.4']);
  for (const ns of nameservers) lines.push(`nameserver ${ns}`);
  if (dns?.search !== undefined || dns?.options !== undefined) {
    if (dns.search && dns.search.length > 0) lines.push(`search ${dns.search.join(' ')}`);
    if (dns.options && dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
  } else {
    lines.push(...hostOther);
  }
  return lines.join('\n') + '\n';
}

export async function writeHostFiles(
  spec: ContainerSpec,
  hostname: string,
  paths: { hosts: string; hostname: string; resolvConf: string },
): Promise<void> {
  let hostResolv = '';
  try {
    hostResolv = await readFile('/etc/resolv.conf', 'utf8');
  } catch {
    // No host resolv.conf: fall back to the public defaults.
  }
  await Promise.all([
    writeFile(paths.hosts, hostsFile(hostname, spec.ip, spec.hosts)),
    writeFile(paths.hostname, hostname + '\n'),
    writeFile(paths.resolvConf, resolvConf(hostResolv, spec.dns)),
  ]);
}
