// The slice of DNS's wire format (RFC 1035, EDNS0 from RFC 6891) that the embedded server needs:
// read a query's header, its one question and an OPT record's payload size; write a response
// that echoes the question and carries A or PTR answers. Anything malformed throws a
// `DnsFormatError`, which the server turns into FORMERR (or silence when no header can be read).

export const TYPE_A = 1;
export const TYPE_PTR = 12;
export const TYPE_AAAA = 28;
export const TYPE_OPT = 41;
export const CLASS_IN = 1;
export const CLASS_ANY = 255;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;

/** The classic UDP limit when the client did not advertise a bigger one with EDNS0. */
export const UDP_DEFAULT_PAYLOAD = 512;
/** What we accept an EDNS0 client to ask for; larger answers go over TCP. */
export const UDP_MAX_PAYLOAD = 4096;

const HEADER_BYTES = 12;
const MAX_NAME_BYTES = 255;

export class DnsFormatError extends Error {
  override name = 'DnsFormatError';
}

export interface DnsQuestion {
  /** Lower-cased, dot-separated, no trailing dot ("" for the root). */
  name: string;
  type: number;
  class: number;
}

export interface DnsQuery {
  id: number;
  opcode: number;
  recursionDesired: boolean;
  /** Set when the packet claims to be a response (QR=1): servers must not answer those. */
  isResponse: boolean;
  questionCount: number;
  /** The first question, if the packet has one. */
  question?: DnsQuestion;
  /** The question section's raw bytes, echoed as sent (keeps the client's 0x20 case mixing). */
  questionBytes?: Uint8Array;
  /** The UDP payload size from an OPT record; undefined without EDNS0. */
  ednsPayload?: number;
}

/** Only the header: enough to answer FORMERR for a packet whose body cannot be read. */
export function readHeaderId(packet: Uint8Array): number | undefined {
  return packet.length >= HEADER_BYTES ? (packet[0] << 8) | packet[1] : undefined;
}

export function parseQuery(packet: Uint8Array): DnsQuery {
  if (packet.length < HEADER_BYTES) throw new DnsFormatError(`packet of ${packet.length} bytes is shorter than a DNS header`);
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const flags = view.getUint16(2);
  const query: DnsQuery = {
    id: view.getUint16(0),
    isResponse: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    recursionDesired: (flags & 0x0100) !== 0,
    questionCount: view.getUint16(4),
  };
  const answerCount = view.getUint16(6);
  const authorityCount = view.getUint16(8);
  const additionalCount = view.getUint16(10);
  let offset = HEADER_BYTES;
  for (let i = 0; i < query.questionCount; i++) {
    const { name, end } = readName(packet, offset);
    if (end + 4 > packet.length) throw new DnsFormatError('question is cut short');
    if (i === 0) {
      query.question = { name, type: view.getUint16(end), class: view.getUint16(end + 2) };
      query.questionBytes = packet.slice(HEADER_BYTES, end + 4);
    }
    offset = end + 4;
  }
  for (let i = 0; i < answerCount + authorityCount; i++) offset = skipRecord(packet, view, offset).end;
  for (let i = 0; i < additionalCount; i++) {
    const record = skipRecord(packet, view, offset);
    // OPT: owner is the root, CLASS holds the requestor's UDP payload size.
    if (record.type === TYPE_OPT) query.ednsPayload = Math.max(UDP_DEFAULT_PAYLOAD, record.class);
    offset = record.end;
  }
  return query;
}

function skipRecord(packet: Uint8Array, view: DataView, offset: number): { type: number; class: number; end: number } {
  const { end } = readName(packet, offset);
  if (end + 10 > packet.length) throw new DnsFormatError('resource record is cut short');
  const length = view.getUint16(end + 8);
  if (end + 10 + length > packet.length) throw new DnsFormatError('resource record data is cut short');
  return { type: view.getUint16(end), class: view.getUint16(end + 2), end: end + 10 + length };
}

/** Reads a (possibly compressed) name at `offset`; `end` is where the name's bytes stop in place. */
export function readName(packet: Uint8Array, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let at = offset;
  let end = -1;
  let total = 0;
  // Each pointer must go strictly backwards, so a loop of pointers cannot spin forever.
  let limit = at;
  for (;;) {
    if (at >= packet.length) throw new DnsFormatError('name runs past the end of the packet');
    const len = packet[at];
    if ((len & 0xc0) === 0xc0) {
      if (at + 1 >= packet.length) throw new DnsFormatError('compression pointer is cut short');
      const target = ((len & 0x3f) << 8) | packet[at + 1];
      if (end < 0) end = at + 2;
      if (target >= limit) throw new DnsFormatError(`compression pointer to ${target} does not point backwards`);
      limit = target;
      at = target;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsFormatError(`label length byte 0x${len.toString(16)} is not supported`);
    if (len === 0) {
      if (end < 0) end = at + 1;
      return { name: labels.join('.'), end };
    }
    if (at + 1 + len > packet.length) throw new DnsFormatError('label runs past the end of the packet');
    total += len + 1;
    if (total > MAX_NAME_BYTES) throw new DnsFormatError(`name is longer than ${MAX_NAME_BYTES} bytes`);
    labels.push(asciiLower(Buffer.from(packet.subarray(at + 1, at + 1 + len)).toString('latin1')));
    at += 1 + len;
  }
}

/** DNS compares names case-insensitively in ASCII only (RFC 4343). */
function asciiLower(label: string): string {
  return label.replace(/[A-Z]+/g, (s) => s.toLowerCase());
}

/** Encodes "a.b.c" as length-prefixed labels ending in the root; throws for a name DNS cannot hold. */
export function encodeName(name: string): Buffer {
  const labels = name === '' ? [] : name.split('.');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1');
    if (bytes.length === 0 || bytes.length > 63) throw new DnsFormatError(`label ${JSON.stringify(label)} in ${JSON.stringify(name)} must be 1-63 bytes`);
    parts.push(Buffer.from([bytes.length]), bytes);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > MAX_NAME_BYTES) throw new DnsFormatError(`name ${JSON.stringify(name)} is longer than ${MAX_NAME_BYTES} bytes`);
  return out;
}

export type DnsAnswer = { type: typeof TYPE_A; ip: string; ttl: number } | { type: typeof TYPE_PTR; target: string; ttl: number };

export interface DnsResponse {
  id: number;
  opcode: number;
  rcode: number;
  recursionDesired: boolean;
  recursionAvailable: boolean;
  authoritative: boolean;
  /** Echoed as is (see DnsQuery.questionBytes); absent for a packet whose question was unreadable. */
  questionBytes?: Uint8Array;
  answers: DnsAnswer[];
  /** Answer with an OPT record advertising this payload size (the client used EDNS0). */
  ednsPayload?: number;
  /** Bytes the packet may take; answers that do not fit are left out and TC is set. */
  maxBytes: number;
}

/** Builds the response; answers name the question by a compression pointer to offset 12. */
export function encodeResponse(r: DnsResponse): Buffer {
  const opt = r.ednsPayload === undefined ? undefined : encodeOpt(r.ednsPayload);
  const question = r.questionBytes ? Buffer.from(r.questionBytes) : Buffer.alloc(0);
  const fixed = HEADER_BYTES + question.length + (opt?.length ?? 0);
  const answers: Buffer[] = [];
  let size = fixed;
  let truncated = false;
  for (const answer of r.questionBytes ? r.answers : []) {
    const bytes = encodeAnswer(answer);
    if (size + bytes.length > r.maxBytes) {
      truncated = true;
      break;
    }
    answers.push(bytes);
    size += bytes.length;
  }
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(r.id, 0);
  let flags = 0x8000 | ((r.opcode & 0xf) << 11) | (r.rcode & 0xf);
  if (r.authoritative) flags |= 0x0400;
  if (truncated) flags |= 0x0200;
  if (r.recursionDesired) flags |= 0x0100;
  if (r.recursionAvailable) flags |= 0x0080;
  header.writeUInt16BE(flags, 2);
  header.writeUInt16BE(r.questionBytes ? 1 : 0, 4);
  header.writeUInt16BE(answers.length, 6);
  header.writeUInt16BE(0, 8);
  header.writeUInt16BE(opt ? 1 : 0, 10);
  return Buffer.concat([header, question, ...answers, ...(opt ? [opt] : [])]);
}

const POINTER_TO_QUESTION = Buffer.from([0xc0, HEADER_BYTES]);

function encodeAnswer(answer: DnsAnswer): Buffer {
  const rdata = answer.type === TYPE_A ? encodeIpv4(answer.ip) : encodeName(answer.target);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(answer.type, 0);
  fixed.writeUInt16BE(CLASS_IN, 2);
  fixed.writeUInt32BE(answer.ttl, 4);
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([POINTER_TO_QUESTION, fixed, rdata]);
}

function encodeOpt(payload: number): Buffer {
  const opt = Buffer.alloc(11);
  opt[0] = 0; // root owner
  opt.writeUInt16BE(TYPE_OPT, 1);
  opt.writeUInt16BE(payload, 3);
  // extended rcode, version, flags (4 bytes) and rdlength stay 0
  return opt;
}

export function encodeIpv4(ip: string): Buffer {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new DnsFormatError(`${JSON.stringify(ip)} is not an IPv4 address`);
  }
  return Buffer.from(parts.map(Number));
}

/** Builds a query packet (for tests and the forwarder's health): one question, RD set. */
export function encodeQuery(id: number, name: string, type: number, opts: { ednsPayload?: number } = {}): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(opts.ednsPayload === undefined ? 0 : 1, 10);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(CLASS_IN, 2);
  const parts = [header, encodeName(name), tail];
  if (opts.ednsPayload !== undefined) parts.push(encodeOpt(opts.ednsPayload));
  return Buffer.concat(parts);
}

export interface DecodedResponse {
  id: number;
  rcode: number;
  truncated: boolean;
  authoritative: boolean;
  answers: { name: string; type: number; ttl: number; data: string }[];
}

/** Reads a response's answers (A as dotted quads, PTR as names); for tests and diagnostics. */
export function decodeResponse(packet: Uint8Array): DecodedResponse {
  const query = parseQuery(packet); // the header and question section share the query's layout
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const flags = view.getUint16(2);
  let offset = HEADER_BYTES + (query.questionBytes?.length ?? 0);
  const answers: DecodedResponse['answers'] = [];
  for (let i = 0; i < view.getUint16(6); i++) {
    const { name, end } = readName(packet, offset);
    const record = skipRecord(packet, view, offset);
    const rdata = packet.subarray(end + 10, record.end);
    const data = record.type === TYPE_A ? [...rdata].join('.') : record.type === TYPE_PTR ? readName(packet, end + 10).name : Buffer.from(rdata).toString('hex');
    answers.push({ name, type: record.type, ttl: view.getUint32(end + 4), data });
    offset = record.end;
  }
  return { id: query.id, rcode: flags & 0xf, truncated: (flags & 0x0200) !== 0, authoritative: (flags & 0x0400) !== 0, answers };
}
