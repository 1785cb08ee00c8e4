// The embedded DNS server's sockets: UDP and TCP on each address it serves (the gateway addresses
// tasks reach), on one port. Every query goes to one handler with the address it came from; UDP
// answers that do not fit come back truncated (TC) and the client asks again over TCP.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import type { Logger } from '../../../util/log.js';
import type { Transport } from './responder.js';

export type QueryHandler = (packet: Uint8Array, clientIp: string, transport: Transport) => Promise<Uint8Array | undefined>;

export interface DnsServerOptions {
  /** 53 in production; 0 picks a free port (tests), the same for UDP and TCP of one address. */
  port: number;
  handle: QueryHandler;
  log: Logger;
  /** A TCP connection that sends nothing for this long is closed. */
  tcpIdleMs?: number;
}

interface Listener {
  udp: UdpSocket;
  tcp: TcpServer;
  port: number;
  connections: Set<TcpSocket>;
}

/** How many times to look for a port free on both UDP and TCP when the port is 0. */
const EPHEMERAL_TRIES = 20;
const MAX_TCP_CONNECTIONS = 256;

export class DnsServer {
  private readonly listeners = new Map<string, Listener>();
  private readonly pending = new Map<string, Promise<number>>();
  /** Sockets bound elsewhere and served here (adopt()), by key. */
  private readonly adopted = new Map<string, Listener>();

  constructor(private readonly opts: DnsServerOptions) {}

  /** Starts serving on `ip` (idempotent); resolves with the port once both sockets are bound. */
  listen(ip: string): Promise<number> {
    const existing = this.listeners.get(ip);
    if (existing) return Promise.resolve(existing.port);
    let pending = this.pending.get(ip);
    if (!pending) {
      pending = this.bind(ip).finally(() => this.pending.delete(ip));
      this.pending.set(ip, pending);
    }
    return pending;
  }

  private async bind(ip: string): Promise<number> {
    let lastError: unknown;
    for (let attempt = 0; attempt < (this.opts.port === 0 ? EPHEMERAL_TRIES : 1); attempt++) {
      let udp: UdpSocket;
      try {
        udp = await this.bindUdp(ip, this.opts.port);
      } catch (err) {
        throw new Error(`dns server cannot listen on ${ip}:${this.opts.port} (udp): ${(err as Error).message}`);
      }
      const port = udp.address().port;
      try {
        const listener: Listener = { udp, port, connections: new Set(), tcp: await this.bindTcp(ip, port) };
        listener.tcp.on('connection', (socket) => this.serveTcp(listener, socket));
        this.listeners.set(ip, listener);
        this.opts.log.info('dns server listening', { address: ip, port });
        return port;
      } catch (err) {
        // With port 0 the UDP port may be taken on TCP: try another.
        lastError = err;
        await new Promise<void>((resolve) => udp.close(() => resolve()));
      }
    }
    throw new Error(`dns server cannot listen on ${ip}:${this.opts.port} (tcp): ${(lastError as Error).message}`);
  }

  /**
   * Serves sockets bound elsewhere (inside a task's namespace, see netnssockets.ts) under `key`;
   * every query on them counts as coming from `clientIp`, whatever address the kernel shows.
   */
  adopt(key: string, sockets: { udp: UdpSocket; tcp: TcpServer }, clientIp: string): void {
    const port = sockets.udp.address().port;
    const listener: Listener = { udp: sockets.udp, tcp: sockets.tcp, port, connections: new Set() };
    this.serveUdp(sockets.udp, key, clientIp);
    sockets.tcp.maxConnections = MAX_TCP_CONNECTIONS;
    sockets.tcp.on('error', (err) => this.opts.log.warn('dns tcp server error', { address: key, error: err }));
    sockets.tcp.on('connection', (socket) => this.serveTcp(listener, socket, clientIp));
    this.adopted.set(key, listener);
  }

  /** Stops serving the sockets adopted under `key` and closes them. */
  async release(key: string): Promise<void> {
    const listener = this.adopted.get(key);
    if (!listener) return;
    this.adopted.delete(key);
    await closeListener(listener);
  }

  /** Stops serving on `ip`; open TCP connections are cut. */
  async unlisten(ip: string): Promise<void> {
    await this.pending.get(ip)?.catch(() => undefined);
    const listener = this.listeners.get(ip);
    if (!listener) return;
    this.listeners.delete(ip);
    await closeListener(listener);
  }

  addresses(): { ip: string; port: number }[] {
    return [...this.listeners].map(([ip, l]) => ({ ip, port: l.port }));
  }

  async close(): Promise<void> {
    await Promise.all([...[...this.listeners.keys()].map((ip) => this.unlisten(ip)), ...[...this.adopted.keys()].map((key) => this.release(key))]);
  }

  private bindUdp(ip: string, port: number): Promise<UdpSocket> {
    return new Promise((resolve, reject) => {
      const udp = createSocket({ type: 'udp4' });
      udp.once('error', reject);
      udp.bind({ address: ip, port, exclusive: true }, () => {
        udp.off('error', reject);
        this.serveUdp(udp, ip);
        resolve(udp);
      });
    });
  }

  /** Answers each datagram; `clientIp` stands for the sender when given (adopted sockets). */
  private serveUdp(udp: UdpSocket, address: string, clientIp?: string): void {
    udp.on('error', (err) => this.opts.log.warn('dns udp socket error', { address, error: err }));
    udp.on('message', (packet, rinfo) => {
      const client = clientIp ?? rinfo.address;
      this.opts
        .handle(packet, client, 'udp')
        .then((response) => {
          if (response) udp.send(response, rinfo.port, rinfo.address);
        })
        .catch((err: unknown) => this.opts.log.warn('dns query failed', { client, error: err }));
    });
  }

  private bindTcp(ip: string, port: number): Promise<TcpServer> {
    return new Promise((resolve, reject) => {
      const tcp = createServer();
      tcp.maxConnections = MAX_TCP_CONNECTIONS;
      tcp.once('error', reject);
      tcp.listen({ host: ip, port, exclusive: true }, () => {
        tcp.off('error', reject);
        tcp.on('error', (err) => this.opts.log.warn('dns tcp server error', { address: ip, error: err }));
        resolve(tcp);
      });
    });
  }

  /** DNS over TCP: each message is preceded by its length in two bytes (RFC 1035 4.2.2). */
  private serveTcp(listener: Listener, socket: TcpSocket, fixedClientIp?: string): void {
    listener.connections.add(socket);
    socket.setTimeout(this.opts.tcpIdleMs ?? 10_000, () => socket.destroy());
    socket.on('close', () => listener.connections.delete(socket));
    socket.on('error', () => socket.destroy());
    const clientIp = fixedClientIp ?? socket.remoteAddress?.replace(/^::ffff:/, '') ?? '';
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const packet = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        this.opts
          .handle(packet, clientIp, 'tcp')
          .then((response) => {
            if (!response || socket.destroyed) return;
            const prefix = Buffer.alloc(2);
            prefix.writeUInt16BE(response.length);
            socket.write(Buffer.concat([prefix, response]));
          })
          .catch((err: unknown) => {
            this.opts.log.warn('dns query failed', { client: clientIp, error: err });
            socket.destroy();
          });
      }
    });
  }
}

async function closeListener(listener: Listener): Promise<void> {
  for (const socket of listener.connections) socket.destroy();
  await Promise.all([new Promise<void>((resolve) => listener.udp.close(() => resolve())), new Promise<void>((resolve) => listener.tcp.close(() => resolve()))]);
}
