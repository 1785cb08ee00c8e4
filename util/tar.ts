// A small tar writer and streaming reader: enough of POSIX ustar, PAX extended headers and GNU
// long names to build image layers deterministically and to read the layers real registries
// serve (Docker, BuildKit and skopeo write ustar + PAX; older tools write GNU 'L'/'K' records).
// Regular files, directories, symlinks, hard links, devices and fifos; sparse files are refused.
import { Readable } from 'node:stream';

export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarHeader {
  /** Path inside the archive, without a leading './' or '/', and without a trailing '/'. */
  name: string;
  type: TarEntryType;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
  size: number;
  /** Target of a symlink, or the archive path a hard link points at. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** PAX records of the entry other than the ones folded into the fields above (e.g. xattrs). */
  pax: Record<string, string>;
}

export interface TarWriteEntry {
  name: string;
  type: TarEntryType;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Contents of a regular file. */
  data?: Buffer;
  /** Extra PAX records, e.g. `SCHILY.xattr.user.foo`. */
  pax?: Record<string, string>;
}

const BLOCK = 512;
const typeFlags: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

export class TarFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TarFormatError';
  }
}

/** Strips './' and '/' prefixes and trailing slashes; rejects names that are empty after it. */
export function normalizeTarPath(name: string): string {
  let n = name.replace(/\/+$/, '');
  while (n.startsWith('./') || n.startsWith('/')) n = n.startsWith('./') ? n.slice(2) : n.slice(1);
  return n === '.' ? '' : n;
}

// ---------------------------------------------------------------------------------------------
// Writer

function writeString(buf: Buffer, offset: number, length: number, value: string): void {
  buf.write(value, offset, length, 'utf8');
}

/** Octal with a NUL terminator, or GNU base-256 when the value does not fit (large uids, sizes). */
function writeNumber(buf: Buffer, offset: number, length: number, value: number): void {
  const octal = Math.trunc(value).toString(8);
  if (octal.length <= length - 1 && value >= 0) {
    writeString(buf, offset, length - 1, octal.padStart(length - 1, '0'));
    buf[offset + length - 1] = 0;
    return;
  }
  let v = BigInt(Math.trunc(value));
  for (let i = offset + length - 1; i > offset; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[offset] = 0x80;
}

function paxRecord(key: string, value: string): string {
  // "LEN key=value\n" where LEN counts its own digits too: iterate until it is stable.
  const rest = Buffer.byteLength(` ${key}=${value}\n`);
  let len = rest + 1;
  while (String(len).length + rest !== len) len = String(len).length + rest;
  return `${len} ${key}=${value}\n`;
}

function splitUstarName(name: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(name) <= 100) return { prefix: '', name };
  // The prefix field holds everything before some '/', the name field the rest.
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0) return { prefix, name: rest };
    if (Buffer.byteLength(rest) > 100) return undefined;
  }
  return undefined;
}

function isAscii(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s);
}

function header(fields: {
  name: string;
  prefix: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
  devmajor: number;
  devminor: number;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeString(h, 0, 100, fields.name);
  writeNumber(h, 100, 8, fields.mode);
  writeNumber(h, 108, 8, fields.uid);
  writeNumber(h, 116, 8, fields.gid);
  writeNumber(h, 124, 12, fields.size);
  writeNumber(h, 136, 12, fields.mtime);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  writeString(h, 156, 1, fields.typeflag);
  writeString(h, 157, 100, fields.linkname);
  writeString(h, 257, 6, 'ustar');
  writeString(h, 263, 2, '00');
  // uname/gname stay empty: numeric ids only, so the bytes do not depend on the build machine.
  writeNumber(h, 329, 8, fields.devmajor);
  writeNumber(h, 337, 8, fields.devminor);
  writeString(h, 345, 155, fields.prefix);
  let sum = 0;
  for (const b of h) sum += b;
  writeString(h, 148, 7, sum.toString(8).padStart(6, '0') + '\0');
  h[155] = 0x20;
  return h;
}

function padding(size: number): Buffer {
  const rem = size % BLOCK;
  return rem === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rem);
}

/** Encodes one entry (with a PAX header before it when the ustar fields cannot hold it). */
export function encodeTarEntry(entry: TarWriteEntry): Buffer[] {
  const name = normalizeTarPath(entry.name);
  if (name === '') throw new TarFormatError(`tar entry name ${JSON.stringify(entry.name)} is empty`);
  const data = entry.type === 'file' ? (entry.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
  const pax: Record<string, string> = { ...(entry.pax ?? {}) };
  const fullName = entry.type === 'dir' ? `${name}/` : name;
  let split = isAscii(fullName) ? splitUstarName(fullName) : undefined;
  if (!split) {
    pax.path = fullName;
    split = { prefix: '', name: Buffer.from(fullName).subarray(0, 100).toString('latin1').replace(/[^\x20-\x7e]/g, '_') };
  }
  const linkname = entry.linkname ?? '';
  let linkField = linkname;
  if (Buffer.byteLength(linkname) > 100 || !isAscii(linkname)) {
    pax.linkpath = linkname;
    linkField = linkname.slice(0, 100).replace(/[^\x20-\x7e]/g, '_');
  }
  const out: Buffer[] = [];
  const keys = Object.keys(pax).sort();
  if (keys.length > 0) {
    const body = Buffer.from(keys.map((k) => paxRecord(k, pax[k] as string)).join(''));
    out.push(
      header({ name: `PaxHeaders/${split.name}`.slice(0, 100), prefix: '', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0, typeflag: 'x', linkname: '', devmajor: 0, devminor: 0 }),
      body,
      padding(body.length),
    );
  }
  out.push(
    header({
      name: split.name,
      prefix: split.prefix,
      mode: (entry.mode ?? (entry.type === 'dir' ? 0o755 : 0o644)) & 0o7777,
      uid: entry.uid ?? 0,
      gid: entry.gid ?? 0,
      size: data.length,
      mtime: entry.mtime ?? 0,
      typeflag: typeFlags[entry.type],
      linkname: linkField,
      devmajor: entry.devmajor ?? 0,
      devminor: entry.devminor ?? 0,
    }),
  );
  if (data.length > 0) out.push(data, padding(data.length));
  return out;
}

/**
 * Builds a whole archive in memory. Entries are written in path order (so the same inputs always
 * give the same bytes) unless `keepOrder` is set, except that a hard link always comes after the
 * file it points at (extractors need the target first). The archive ends with two zero blocks.
 */
export function packTar(entries: readonly TarWriteEntry[], options: { keepOrder?: boolean } = {}): Buffer {
  const list = options.keepOrder ? [...entries] : [...entries].sort((a, b) => compareTarPaths(normalizeTarPath(a.name), normalizeTarPath(b.name)));
  const names = new Set(list.map((e) => normalizeTarPath(e.name)));
  const written = new Set<string>();
  const waiting = new Map<string, TarWriteEntry[]>();
  const parts: Buffer[] = [];
  const emit = (e: TarWriteEntry): void => {
    parts.push(...encodeTarEntry(e));
    const name = normalizeTarPath(e.name);
    written.add(name);
    const links = waiting.get(name);
    waiting.delete(name);
    for (const l of links ?? []) emit(l);
  };
  for (const e of list) {
    const target = e.type === 'hardlink' ? normalizeTarPath(e.linkname ?? '') : '';
    if (target && names.has(target) && !written.has(target)) waiting.set(target, [...(waiting.get(target) ?? []), e]);
    else emit(e);
  }
  for (const links of waiting.values()) for (const l of links) emit(l); // cycles: give up ordering
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

/** Byte-wise path order, so 'a/b' sorts right after 'a' and before 'a-b' would not matter. */
export function compareTarPaths(a: string, b: string): number {
  const ba = Buffer.from(a);
  const bb = Buffer.from(b);
  return Buffer.compare(ba, bb);
}

// ---------------------------------------------------------------------------------------------
// Reader

/** Pulls exact byte counts out of a stream of chunks. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private buffered: Buffer[] = [];
  private bufferedLength = 0;
  private done = false;

  constructor(source: AsyncIterable<Buffer | Uint8Array | string>) {
    const inner = source[Symbol.asyncIterator]();
    this.it = {
      next: async () => {
        const r = await inner.next();
        if (r.done) return { done: true, value: undefined };
        const v = r.value;
        return { done: false, value: typeof v === 'string' ? Buffer.from(v) : Buffer.isBuffer(v) ? v : Buffer.from(v) };
      },
    };
  }

  private async fill(n: number): Promise<boolean> {
    while (this.bufferedLength < n && !this.done) {
      const r = await this.it.next();
      if (r.done) this.done = true;
      else if (r.value.length > 0) {
        this.buffered.push(r.value);
        this.bufferedLength += r.value.length;
      }
    }
    return this.bufferedLength >= n;
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const all = this.buffered.length === 1 ? (this.buffered[0] as Buffer) : Buffer.concat(this.buffered);
    const take = Math.min(n, all.length);
    const out = all.subarray(0, take);
    const rest = all.subarray(take);
    this.buffered = rest.length ? [rest] : [];
    this.bufferedLength = rest.length;
    return out;
  }

  /** Yields the next n bytes in chunks as they arrive, without holding them all. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.bufferedLength === 0) {
        const r = await this.it.next();
        if (r.done) throw new TarFormatError(`tar archive ends inside an entry (${left} bytes missing)`);
        this.buffered = [r.value];
        this.bufferedLength = r.value.length;
        continue;
      }
      const head = this.buffered[0] as Buffer;
      const take = Math.min(left, head.length);
      const out = head.subarray(0, take);
      if (take === head.length) this.buffered.shift();
      else this.buffered[0] = head.subarray(take);
      this.bufferedLength -= take;
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) {
      // discard
    }
  }
}

function readString(buf: Buffer, offset: number, length: number): string {
  const slice = buf.subarray(offset, offset + length);
  const nul = slice.indexOf(0);
  return (nul === -1 ? slice : slice.subarray(0, nul)).toString('utf8');
}

function readNumber(buf: Buffer, offset: number, length: number, field: string): number {
  const first = buf[offset] as number;
  if (first & 0x80) {
    // GNU base-256: big-endian two's complement with the top bit as the marker.
    let v = BigInt(first & 0x7f);
    for (let i = offset + 1; i < offset + length; i++) v = (v << 8n) | BigInt(buf[i] as number);
    return Number(v);
  }
  const s = readString(buf, offset, length).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`tar header field ${field} is not octal: ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const stored = readNumber(h, 148, 8, 'chksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space === -1) break;
    const len = parseInt(body.subarray(pos, space).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0) throw new TarFormatError(`bad PAX record length at byte ${pos}`);
    const record = body.subarray(space + 1, pos + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    pos += len;
  }
  return out;
}

const typeByFlag: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '': 'file',
  '7': 'file', // contiguous file: a regular file everywhere that matters
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

export interface TarReadEntry {
  header: TarHeader;
  /** The file's bytes; must be consumed (or skipped) before asking for the next entry. */
  body: AsyncIterable<Buffer>;
}

/**
 * Reads an archive entry by entry from a byte stream. Metadata records (PAX 'x'/'g', GNU 'L'/'K')
 * are folded into the entry they describe. Each entry's body is streamed: iterate it, or leave it
 * and it is skipped when the next entry is requested.
 */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array | string>): AsyncGenerator<TarReadEntry> {
  const r = new ChunkReader(source);
  let globalPax: Record<string, string> = {};
  let pendingPax: Record<string, string> = {};
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const h = await r.read(BLOCK);
    if (h.length === 0) return; // no end-of-archive blocks: tolerated, as GNU tar does
    if (h.length < BLOCK) throw new TarFormatError('tar archive ends inside a header');
    if (h.every((b) => b === 0)) return;
    if (!checksumOk(h)) throw new TarFormatError('tar header checksum mismatch (not a tar archive, or corrupt)');
    const flag = String.fromCharCode(h[156] as number);
    const size = readNumber(h, 124, 12, 'size');
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      const body = await r.read(padded);
      if (body.length < padded) throw new TarFormatError('tar archive ends inside a metadata record');
      const content = body.subarray(0, size);
      if (flag === 'x') pendingPax = { ...pendingPax, ...parsePax(content) };
      else if (flag === 'g') globalPax = { ...globalPax, ...parsePax(content) };
      else if (flag === 'L') longName = readString(content, 0, content.length);
      else longLink = readString(content, 0, content.length);
      continue;
    }
    const type = typeByFlag[flag];
    if (type === undefined) throw new TarFormatError(`unsupported tar entry type ${JSON.stringify(flag)} for ${JSON.stringify(readString(h, 0, 100))}`);
    const pax = { ...globalPax, ...pendingPax };
    // POSIX ustar has a name prefix field; old GNU ("ustar  ") keeps other data at that offset.
    const prefix = h.subarray(257, 263).toString('latin1') === 'ustar\0' ? readString(h, 345, 155) : '';
    let name = readString(h, 0, 100);
    if (prefix) name = `${prefix}/${name}`;
    if (longName !== undefined) name = longName;
    if (pax.path !== undefined) name = pax.path;
    let linkname = longLink ?? readString(h, 157, 100);
    if (pax.linkpath !== undefined) linkname = pax.linkpath;
    // A hard link names another archive member: spell it the way member names are spelled.
    if (type === 'hardlink') linkname = normalizeTarPath(linkname);
    const header: TarHeader = {
      name: normalizeTarPath(name),
      type,
      mode: readNumber(h, 100, 8, 'mode') & 0o7777,
      uid: pax.uid !== undefined ? Number(pax.uid) : readNumber(h, 108, 8, 'uid'),
      gid: pax.gid !== undefined ? Number(pax.gid) : readNumber(h, 116, 8, 'gid'),
      mtime: pax.mtime !== undefined ? Math.floor(Number(pax.mtime)) : readNumber(h, 136, 12, 'mtime'),
      size: pax.size !== undefined ? Number(pax.size) : size,
      linkname,
      devmajor: readNumber(h, 329, 8, 'devmajor'),
      devminor: readNumber(h, 337, 8, 'devminor'),
      pax: Object.fromEntries(Object.entries(pax).filter(([k]) => !['path', 'linkpath', 'uid', 'gid', 'mtime', 'size', 'atime', 'ctime'].includes(k))),
    };
    pendingPax = {};
    longName = undefined;
    longLink = undefined;
    // Hard links, symlinks and directories carry no data whatever their size field says.
    const dataSize = type === 'file' ? header.size : 0;
    if (type !== 'file') header.size = 0;
    let remaining = dataSize;
    let started = false;
    async function* bodyChunks(): AsyncGenerator<Buffer> {
      for await (const chunk of r.stream(remaining)) {
        remaining -= chunk.length;
        yield chunk;
      }
    }
    const body: AsyncIterable<Buffer> = {
      [Symbol.asyncIterator]: () => {
        if (started) throw new Error(`body of tar entry ${header.name} was already read`);
        started = true;
        return bodyChunks();
      },
    };
    yield { header, body };
    // Whatever the consumer left unread, plus the padding to the next block.
    await r.skip(remaining + ((BLOCK - (dataSize % BLOCK)) % BLOCK));
  }
}

/** Collects an entry's body into one buffer (for small files: manifests, configs, tests). */
export async function readBody(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts);
}

/** Reads a whole in-memory archive into entries with their data. */
export async function unpackTar(archive: Buffer): Promise<Array<TarHeader & { data: Buffer }>> {
  const out: Array<TarHeader & { data: Buffer }> = [];
  for await (const e of readTar(Readable.from([archive]))) out.push({ ...e.header, data: await readBody(e.body) });
  return out;
}
