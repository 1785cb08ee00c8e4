// Snapshot files: `<dir>/<term>-<index>.snap` (16 hex digits each), written atomically (write a
// .tmp, fsync it, rename, fsync the directory) so a crash leaves either the whole file or none.
//
// File format (little-endian):
//
//   magic "SHSNAP01"(8)  crc:u32  length:u32  body[length]
//
// body is a Snapshot as binary.ts encodes it (metadata, then data); crc is CRC-32C of body.
// The newest `retain` files are kept; older ones are deleted after each save.
import { join } from 'node:path';
import type { Snapshot } from '../types.js';
import { DecodeError, Reader, Writer, snapshotSize } from './binary.js';
import { crc32c } from './crc32c.js';
import { StorageCorruptionError } from './errors.js';
import { nodeFs, syncDir, writeAll, type StorageFs } from './fs.js';

const MAGIC = Buffer.from('SHSNAP01', 'latin1');
const HEADER = 16;
const SNAP_RE = /^([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const hex16 = (n: number) => n.toString(16).padStart(16, '0');

export const snapshotFileName = (term: number, index: number) => `${hex16(term)}-${hex16(index)}.snap`;

export interface SnapshotFile {
  term: number;
  index: number;
  path: string;
}

export class Snapshotter {
  private readonly fs: StorageFs;

  constructor(
    readonly dir: string,
    private readonly retain = 3,
    fs?: StorageFs,
  ) {
    this.fs = fs ?? nodeFs;
  }

  /** Creates the directory and removes .tmp files a crash left behind. */
  async init(): Promise<void> {
    await this.fs.mkdir(this.dir);
    for (const name of await this.fs.readdir(this.dir)) {
      if (name.endsWith('.tmp')) await this.fs.unlink(join(this.dir, name));
    }
  }

  /** Snapshot files on disk, newest (highest index) first. */
  async list(): Promise<SnapshotFile[]> {
    const files: SnapshotFile[] = [];
    for (const name of await this.fs.readdir(this.dir)) {
      const m = SNAP_RE.exec(name);
      if (m) files.push({ term: parseInt(m[1]!, 16), index: parseInt(m[2]!, 16), path: join(this.dir, name) });
    }
    return files.sort((a, b) => b.index - a.index || b.term - a.term);
  }

  async save(snapshot: Snapshot): Promise<string> {
    const { index, term } = snapshot.metadata;
    const bodyLen = snapshotSize(snapshot);
    const w = new Writer(HEADER + bodyLen);
    w.bytes(MAGIC);
    w.pos += 4;
    w.u32(bodyLen);
    w.snapshot(snapshot);
    w.buf.writeUInt32LE(crc32c(w.buf, HEADER), 8);

    const path = join(this.dir, snapshotFileName(term, index));
    const tmp = `${path}.tmp`;
    const fh = await this.fs.open(tmp, 'w');
    try {
      await writeAll(fh, w.buf, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.fs.rename(tmp, path);
    await syncDir(this.fs, this.dir);
    return path;
  }

  /** Reads and verifies one file; any damage is a StorageCorruptionError naming it. */
  async load(file: SnapshotFile): Promise<Snapshot> {
    const buf = await this.fs.readFile(file.path);
    if (buf.length < HEADER) throw new StorageCorruptionError(file.path, 0, `snapshot file is ${buf.length} bytes, shorter than its ${HEADER}-byte header`);
    if (!buf.subarray(0, 8).equals(MAGIC)) throw new StorageCorruptionError(file.path, 0, 'not a shoal snapshot file (bad magic)');
    const len = buf.readUInt32LE(12);
    if (len !== buf.length - HEADER) throw new StorageCorruptionError(file.path, 12, `header says ${len} body bytes, file has ${buf.length - HEADER}`);
    const want = buf.readUInt32LE(8);
    const got = crc32c(buf, HEADER);
    if (want !== got) throw new StorageCorruptionError(file.path, HEADER, `CRC mismatch (stored ${want.toString(16)}, computed ${got.toString(16)})`);
    let snap: Snapshot;
    try {
      const r = new Reader(buf, HEADER);
      snap = r.snapshot();
      if (r.remaining() !== 0) throw new DecodeError(`${r.remaining()} unexpected bytes after the snapshot`, r.pos);
    } catch (err) {
      if (err instanceof DecodeError) throw new StorageCorruptionError(file.path, err.offset, err.message);
      throw err;
    }
    if (snap.metadata.index !== file.index || snap.metadata.term !== file.term) {
      throw new StorageCorruptionError(file.path, HEADER, `contents are snapshot ${snap.metadata.term}-${snap.metadata.index}, the name says ${file.term}-${file.index}`);
    }
    return snap;
  }

  /**
   * Keeps the newest `retain` files at or below `recordedIndex` (the newest snapshot the WAL has
   * recorded) and deletes older ones. Files above it are left alone: one may be in flight.
   */
  async prune(recordedIndex: number): Promise<number> {
    let deleted = 0;
    let kept = 0;
    for (const f of await this.list()) {
      if (f.index > recordedIndex) continue;
      if (kept < this.retain) {
        kept++;
        continue;
      }
      await this.fs.unlink(f.path);
      deleted++;
    }
    if (deleted) await syncDir(this.fs, this.dir);
    return deleted;
  }

  /** Deletes files above `recordedIndex`: written before a crash, never recorded in the WAL. */
  async removeUnrecorded(recordedIndex: number): Promise<number> {
    let deleted = 0;
    for (const f of await this.list()) {
      if (f.index <= recordedIndex) continue;
      await this.fs.unlink(f.path);
      deleted++;
    }
    if (deleted) await syncDir(this.fs, this.dir);
    return deleted;
  }
}
