// The node's record of its assigned tasks and their observed status, in one JSON file under the
// worker's data dir. It is what lets a restarted agent find its containers again and report
// their true state instead of starting from the managers' (older) view. Every change rewrites the
// file (write temp, fsync, rename); changes made while a write is in flight share the next write.
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Task, TaskStatus } from '../../proto/gen/objects.js';

export interface TaskRecord {
  task: Task;
  /** The status as this node observed it (the manager's copy inside `task` may lag behind). */
  status: TaskStatus;
}

/**
 * Byte fields (a config's data) as base64: JSON would otherwise write a Uint8Array as an object of
 * indexes, eight times the size, on every rewrite, and read it back as that object.
 */
function storeBytes(this: unknown, key: string, value: unknown): unknown {
  const raw = (this as Record<string, unknown>)[key];
  return raw instanceof Uint8Array ? { $bytes: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') } : value;
}

function readBytes(_key: string, value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  const b64 = (value as { $bytes?: unknown }).$bytes;
  return typeof b64 === 'string' && Object.keys(value).length === 1 ? new Uint8Array(Buffer.from(b64, 'base64')) : value;
}

interface FileFormat {
  version: 1;
  tasks: TaskRecord[];
}

export class TaskDb {
  private readonly records = new Map<string, TaskRecord>();
  private chain: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;

  constructor(readonly path: string) {}

  /** Reads the file (an absent file is an empty set). */
  async load(): Promise<TaskRecord[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    let data: FileFormat;
    try {
      data = JSON.parse(text, readBytes) as FileFormat;
    } catch (err) {
      throw new Error(`task file ${this.path} is not valid JSON (${(err as Error).message}); move it away to start with no tasks`);
    }
    if (data.version !== 1 || !Array.isArray(data.tasks)) throw new Error(`task file ${this.path} has unknown format version ${String(data.version)}`);
    this.records.clear();
    for (const r of data.tasks) this.records.set(r.task.id, r);
    return [...this.records.values()];
  }

  get(taskId: string): TaskRecord | undefined {
    return this.records.get(taskId);
  }

  all(): TaskRecord[] {
    return [...this.records.values()];
  }

  put(record: TaskRecord): Promise<void> {
    this.records.set(record.task.id, record);
    return this.save();
  }

  delete(taskId: string): Promise<void> {
    if (!this.records.delete(taskId)) return Promise.resolve();
    return this.save();
  }

  /** Resolves once everything changed so far is on disk. */
  flush(): Promise<void> {
    return this.queued ?? this.chain;
  }

  private save(): Promise<void> {
    // A write that has not started yet will pick up this change too.
    if (this.queued) return this.queued;
    const write = this.chain.then(() => {
      this.queued = undefined;
      return this.writeNow();
    });
    this.queued = write;
    this.chain = write.catch(() => undefined);
    return write;
  }

  private async writeNow(): Promise<void> {
    const data: FileFormat = { version: 1, tasks: [...this.records.values()] };
    await mkdir(dirname(this.path), { recursive: true });
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(data, storeBytes));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
  }
}
