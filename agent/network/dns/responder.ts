// Turns one query packet into one response packet, for one client. A client sees only the names
// of the networks its task is attached to (Docker's scoping), asked in the task's attachment order:
// the first network that knows a name answers. Unknown names get NXDOMAIN at once, or go to the
// host's nameservers when forwarding is on. The transport (UDP or TCP) is the server's business;
// it only says how many bytes the answer may take.
import {
  CLASS_ANY,
  CLASS_IN,
  DnsFormatError,
  RCODE_FORMERR,
  RCODE_NOERROR,
  RCODE_NOTIMP,
  RCODE_NXDOMAIN,
  RCODE_REFUSED,
  TYPE_A,
  TYPE_PTR,
  UDP_DEFAULT_PAYLOAD,
  UDP_MAX_PAYLOAD,
  encodeResponse,
  parseQuery,
  readHeaderId,
  type DnsAnswer,
  type DnsQuery,
  type DnsResponse,
} from './packet.js';
import { isIpv4, type NetworkRecords } from './records.js';

const TYPE_ANY = 255;
const TCP_MAX_BYTES = 65535;
const REVERSE_SUFFIX = '.in-addr.arpa';

export type Transport = 'udp' | 'tcp';

export interface ResponderOptions {
  /** The networks a client's task is attached to, in its order; undefined: not a client of ours. */
  networksOf(clientIp: string): readonly NetworkRecords[] | undefined;
  /** Domains the task's resolver may append ("web.corp.example" asks for "web"); lower case. */
  searchDomains?: readonly string[];
  /** TTL of every answer: 0 so that a change shows in the next query. */
  ttl?: number;
  /** Uniform in [0, 1): orders dnsrr and tasks.* answers. */
  random: () => number;
  /** Asks the host's nameservers; undefined when forwarding is off. Resolves undefined on failure. */
  forward?: (packet: Uint8Array) => Promise<Uint8Array | undefined>;
}

export class DnsResponder {
  private readonly searchDomains: readonly string[];
  private readonly ttl: number;

  constructor(private readonly opts: ResponderOptions) {
    this.searchDomains = (opts.searchDomains ?? []).map((d) => d.toLowerCase().replace(/^\.+|\.+$/g, '')).filter((d) => d !== '');
    this.ttl = opts.ttl ?? 0;
  }

  /** The response to send, or undefined to stay silent (not a query, or unreadable). */
  async respond(packet: Uint8Array, clientIp: string, transport: Transport): Promise<Uint8Array | undefined> {
    let query: DnsQuery;
    try {
      query = parseQuery(packet);
    } catch (err) {
      if (!(err instanceof DnsFormatError)) throw err;
      const id = readHeaderId(packet);
      if (id === undefined || (packet[2] & 0x80) !== 0) return undefined;
      return encodeResponse({ id, opcode: (packet[2] >> 3) & 0xf, rcode: RCODE_FORMERR, recursionDesired: false, recursionAvailable: false, authoritative: false, answers: [], maxBytes: UDP_DEFAULT_PAYLOAD });
    }
    if (query.isResponse) return undefined;
    const reply = (rcode: number, answers: DnsAnswer[] = [], authoritative = false): Uint8Array => {
      const response: DnsResponse = {
        id: query.id,
        opcode: query.opcode,
        rcode,
        recursionDesired: query.recursionDesired,
        recursionAvailable: this.opts.forward !== undefined,
        authoritative,
        answers,
        maxBytes: transport === 'tcp' ? TCP_MAX_BYTES : Math.min(query.ednsPayload ?? UDP_DEFAULT_PAYLOAD, UDP_MAX_PAYLOAD),
      };
      if (query.questionBytes) response.questionBytes = query.questionBytes;
      if (query.ednsPayload !== undefined) response.ednsPayload = UDP_MAX_PAYLOAD;
      return encodeResponse(response);
    };
    if (query.opcode !== 0) return reply(RCODE_NOTIMP);
    const question = query.question;
    if (query.questionCount !== 1 || !question) return reply(RCODE_FORMERR);
    if (question.class !== CLASS_IN && question.class !== CLASS_ANY) return reply(RCODE_NOTIMP);
    const networks = this.opts.networksOf(clientIp);
    if (!networks) return reply(RCODE_REFUSED);

    const unknown = async (): Promise<Uint8Array> => {
      if (this.opts.forward) {
        const upstream = await this.opts.forward(packet);
        if (upstream) return upstream;
      }
      return reply(RCODE_NXDOMAIN, [], true);
    };

    if (question.type === TYPE_PTR && question.name.endsWith(REVERSE_SUFFIX)) {
      const ip = question.name.slice(0, -REVERSE_SUFFIX.length).split('.').reverse().join('.');
      const target = isIpv4(ip) ? firstOf(networks, (n) => n.reverse(ip)) : undefined;
      if (target === undefined) return unknown();
      return reply(RCODE_NOERROR, [{ type: TYPE_PTR, target, ttl: this.ttl }], true);
    }

    const found = firstOf(this.candidates(question.name), (name) => firstOf(networks, (n) => n.resolve(name)));
    if (!found) return unknown();
    // A name we own has only A records: AAAA and the rest get an empty NOERROR (so a resolver
    // asking A and AAAA together still uses the A answer).
    if (question.type !== TYPE_A && question.type !== TYPE_ANY) return reply(RCODE_NOERROR, [], true);
    const ips = found.shuffle ? shuffled(found.ips, this.opts.random) : found.ips;
    return reply(
      RCODE_NOERROR,
      ips.map((ip) => ({ type: TYPE_A, ip, ttl: this.ttl })),
      true,
    );
  }

  /** The name as asked, then without each search domain it ends with. */
  private candidates(name: string): string[] {
    const out = [name];
    for (const domain of this.searchDomains) {
      if (name.endsWith(`.${domain}`)) out.push(name.slice(0, -domain.length - 1));
    }
    return out;
  }
}

function firstOf<T, R>(items: Iterable<T>, f: (item: T) => R | undefined): R | undefined {
  for (const item of items) {
    const r = f(item);
    if (r !== undefined) return r;
  }
  return undefined;
}

/** Fisher-Yates on a copy. */
export function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}
