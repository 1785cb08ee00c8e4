// Shared fixtures for the raft storage tests: temp directories, seeded payloads, and an fs that
// counts syncs and can hold or fail them.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { nodeFs, type FileHandleLike, type StorageFs } from '../../../manager/raft/storage/fs.js';
import { EntryType, type Entry } from '../../../manager/raft/types.js';

export async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'shoal-raft-storage-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Deterministic bytes: a small LCG seeded per call site. */
export function seededBytes(seed: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export function makeEntries(first: number, count: number, term: number, size = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const index = first + i;
    out.push({ index, term, type: index % 7 === 0 ? EntryType.ConfChange : EntryType.Normal, data: seededBytes(index * 31 + term, size) });
  }
  return out;
}

export interface CountingFs extends StorageFs {
  syncs: number;
  /** While set, every segment-file sync waits for it. */
  hold: Promise<void> | null;
  /** While set, segment-file syncs fail with this error. */
  failSync: Error | null;
  /** Syncs currently waiting on `hold`. */
  held: number;
}

/** node:fs/promises, with file syncs counted (directory syncs too: callers filter by flags). */
export function countingFs(): CountingFs {
  const fs: CountingFs = {
    ...nodeFs,
    syncs: 0,
    hold: null,
    failSync: null,
    held: 0,
    async open(path, flags) {
      const fh = await nodeFs.open(path, flags);
      if (flags === 'r') return fh; // a directory being synced
      const gate = async () => {
        if (fs.hold) {
          fs.held++;
          await fs.hold;
          fs.held--;
        }
        if (fs.failSync) throw fs.failSync;
        fs.syncs++;
      };
      const wrapped: FileHandleLike = {
        write: (b, o, l, p) => fh.write(b, o, l, p),
        datasync: async () => {
          await gate();
          await fh.datasync();
        },
        sync: async () => {
          await gate();
          await fh.sync();
        },
        truncate: (n) => fh.truncate(n),
        close: () => fh.close(),
      };
      return wrapped;
    },
  };
  return fs;
}
