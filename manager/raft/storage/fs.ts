// The few file-system calls storage makes, behind an interface so tests can count fsyncs or make
// one fail. The default is node:fs/promises; nothing else in storage touches the disk.
import * as fsp from 'node:fs/promises';

export interface FileHandleLike {
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
  /** fdatasync: the data and the metadata needed to read it back (the file size). */
  datasync(): Promise<void>;
  /** fsync: everything, used for new files and directories. */
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}

export interface StorageFs {
  open(path: string, flags: string): Promise<FileHandleLike>;
  readFile(path: string): Promise<Buffer>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

export const nodeFs: StorageFs = {
  open: (path, flags) => fsp.open(path, flags),
  readFile: (path) => fsp.readFile(path),
  readdir: (path) => fsp.readdir(path),
  mkdir: async (path) => {
    await fsp.mkdir(path, { recursive: true });
  },
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
};

/** Makes a create, rename or unlink in `dir` durable: without it a crash can forget the name. */
export async function syncDir(fs: StorageFs, dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes all of `buf` at `position`, looping over short writes. */
export async function writeAll(fh: FileHandleLike, buf: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw new Error(`write returned ${bytesWritten} bytes at position ${position + done}`);
    done += bytesWritten;
  }
}
