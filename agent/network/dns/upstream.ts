// The host's resolver configuration, and forwarding of the names we do not own to its
// nameservers (off by default: a cluster without internet should answer NXDOMAIN at once rather
// than wait for an upstream that is not there). Queries are relayed as they came, one fresh UDP
// socket each, so concurrent clients that picked the same query id cannot get each other's answer.
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { isIpv4 } from './records.js';

export interface ResolvConf {
  nameservers: string[];
  search: string[];
}

/** Parses resolv.conf text: `nameserver` (IPv4 only), `search` and `domain` lines. */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [keyword, ...args] = line.split(/\s+/);
    if (keyword === 'nameserver' && args[0] && isIpv4(args[0])) conf.nameservers.push(args[0]);
    // The last search or domain line wins, as in glibc.
    else if ((keyword === 'search' || keyword === 'domain') && args.length > 0) conf.search = args.map((d) => d.replace(/\.$/, '').toLowerCase());
  }
  return conf;
}

/** The file read and parsed; a missing or unreadable file is an empty configuration. */
export function readResolvConf(path: string): ResolvConf {
  try {
    return parseResolvConf(readFileSync(path, 'utf8'));
  } catch {
    return { nameservers: [], search: [] };
  }
}

export interface ForwarderOptions {
  nameservers: readonly string[];
  /** How long to wait for each nameserver before trying the next. */
  timeoutMs?: number;
  port?: number;
}

/** Asks each nameserver in turn; resolves undefined if none answers in time. */
export function udpForwarder(opts: ForwarderOptions): (packet: Uint8Array) => Promise<Uint8Array | undefined> {
  const timeoutMs = opts.timeoutMs ?? 2_000;
  const port = opts.port ?? 53;
  return async (packet) => {
    for (const server of opts.nameservers) {
      const answer = await askOnce(server, port, packet, timeoutMs);
      if (answer) return answer;
    }
    return undefined;
  };
}

function askOnce(server: string, port: number, packet: Uint8Array, timeoutMs: number): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    let done = false;
    const finish = (answer: Uint8Array | undefined) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    socket.on('error', () => finish(undefined));
    socket.on('message', (answer) => {
      // Only the answer to this query (same id) counts.
      if (answer.length >= 2 && answer[0] === packet[0] && answer[1] === packet[1]) finish(answer);
    });
    socket.connect(port, server, () => socket.send(packet));
  });
}
