// DNS sockets inside a task's own namespace (Docker's 127.0.0.11 embedded resolver), for tasks that
// share no interface with the host (macvlan only: a macvlan child cannot reach its parent's host).
// Node cannot enter a namespace, so a short-lived helper does the bind there and hands the
// sockets over (netnsbind.ts); shoald serves them like its own, and no process stays behind.
import { spawn } from 'node:child_process';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Server as TcpServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The address tasks resolve through when the DNS server answers inside their namespace. */
export const IN_NETNS_DNS_IP = '127.0.0.11';

const HELPER = fileURLToPath(new URL('./netnsbind.js', import.meta.url));
const HANDLE_GRACE_MS = 500;

export interface NetnsSockets {
  udp: UdpSocket;
  tcp: TcpServer;
}

/** Binds UDP and TCP on ip:port inside the namespace at `netnsPath`; both are ours to serve and close. */
export function bindInNetns(netnsPath: string, ip: string, port: number, timeoutMs = 10_000): Promise<NetnsSockets> {
  const what = `dns sockets on ${ip}:${port} in ${netnsPath}`;
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netnsPath}`, '--', process.execPath, HELPER, ip, String(port)], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let udp: UdpSocket | undefined;
    let tcp: TcpServer | undefined;
    let stderr = '';
    let error: string | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let settled = false;
    const done = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!err && udp && tcp) return resolve({ udp, tcp });
      udp?.close();
      tcp?.close();
      reject(err ?? new Error(`${what}: the helper handed over no sockets`));
    };
    // A handle arrives a little after its message is read: resolve once both are here.
    child.on('message', (message: { kind?: string; error?: string }, handle: unknown) => {
      if (settled) return void (handle as { close?: () => void } | undefined)?.close?.();
      if (message.error) error = message.error;
      else if (message.kind === 'udp') udp = handle as UdpSocket;
      else if (message.kind === 'tcp') tcp = handle as TcpServer;
      if (udp && tcp) done();
    });
    child.on('error', (err) => done(new Error(`${what}: cannot run nsenter: ${err.message}`)));
    child.on('close', (code, signal) => {
      if (udp && tcp) return;
      // A handle sent just before the exit may still be on its way (Node adopts it asynchronously).
      setTimeout(() => done(new Error(`${what}: ${error ?? (stderr.trim() || `the helper exited with ${code ?? signal}`)}`)), HANDLE_GRACE_MS);
    });
  });
}
