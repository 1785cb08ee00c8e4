// Reading a container's log files as an async iterator of whole lines, optionally following the
// live file across rotations until the container has exited.
import { open, readFile, stat } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LogEntry, LogOptions } from '../runtime.js';
import { LineJoiner, parseK8sLine, parseTimestamp } from './k8sfile.js';
import { logFiles } from './rotate.js';

export interface ReadLogOptions extends LogOptions {
  /** True once no more lines can come (conmon has written the exit file, so logs are complete). */
  isFinished: () => Promise<boolean>;
  pollMs?: number;
}

/** Splits text into complete lines, keeping an unfinished tail for the next chunk. */
class LineSplitter {
  private rest = '';
  push(chunk: string): string[] {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    return lines;
  }
}

function toEntries(lines: string[], joiner: LineJoiner): LogEntry[] {
  const out: LogEntry[] = [];
  for (const raw of lines) {
    const rec = parseK8sLine(raw);
    if (!rec) continue;
    const joined = joiner.push(rec);
    if (joined) out.push({ stream: joined.stream, timestamp: joined.timestamp, time: parseTimestamp(joined.timestamp), line: joined.line });
  }
  return out;
}

async function inode(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).ino;
  } catch {
    return undefined;
  }
}

class LiveFile {
  private readonly splitter = new LineSplitter();
  private constructor(
    readonly fh: FileHandle,
    readonly ino: number,
    private pos: number,
  ) {}

  static async open(path: string): Promise<LiveFile | undefined> {
    try {
      const fh = await open(path, 'r');
      return new LiveFile(fh, (await fh.stat()).ino, 0);
    } catch {
      return undefined;
    }
  }

  /** Everything appended since the last call, as complete raw lines. */
  async readLines(): Promise<string[]> {
    const lines: string[] = [];
    const buf = Buffer.alloc(64 * 1024);
    for (;;) {
      const { bytesRead } = await this.fh.read(buf, 0, buf.length, this.pos);
      if (bytesRead === 0) break;
      this.pos += bytesRead;
      lines.push(...this.splitter.push(buf.subarray(0, bytesRead).toString('utf8')));
    }
    return lines;
  }

  close(): Promise<void> {
    return this.fh.close();
  }
}

export async function* readLogs(logPath: string, options: ReadLogOptions): AsyncGenerator<LogEntry> {
  const since = options.since?.getTime();
  const keep = (e: LogEntry): boolean => since === undefined || e.time.getTime() >= since;
  const joiner = new LineJoiner();
  const files = await logFiles(logPath);
  let backlog: LogEntry[] = [];
  for (const file of files.slice(0, -1)) {
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue; // rotated away while we listed: its lines are in an older file now, or gone
    }
    backlog.push(...toEntries(text.split('\n'), joiner).filter(keep));
  }
  let live = await LiveFile.open(logPath);
  try {
    if (live) backlog.push(...toEntries(await live.readLines(), joiner).filter(keep));
    if (!options.follow) {
      backlog.push(
        ...joiner.flush().map((j) => ({ ...j, time: parseTimestamp(j.timestamp) })).filter(keep),
      );
    }
    if (options.tail !== undefined && options.tail >= 0) backlog = options.tail === 0 ? [] : backlog.slice(-options.tail);
    for (const e of backlog) yield e;
    if (!options.follow) return;

    const pollMs = options.pollMs ?? 100;
    for (;;) {
      if (live) {
        const fresh = toEntries(await live.readLines(), joiner).filter(keep);
        for (const e of fresh) yield e;
        if (fresh.length > 0) continue;
      }
      const currentIno = await inode(logPath);
      if (currentIno !== undefined && currentIno !== live?.ino) {
        // Rotated: finish the old file (conmon may have written to it until the reopen), move on.
        if (live) {
          for (const e of toEntries(await live.readLines(), joiner).filter(keep)) yield e;
          await live.close();
        }
        live = await LiveFile.open(logPath);
        continue;
      }
      if (await options.isFinished()) {
        if (live) for (const e of toEntries(await live.readLines(), joiner).filter(keep)) yield e;
        for (const j of joiner.flush()) {
          const e = { ...j, time: parseTimestamp(j.timestamp) };
          if (keep(e)) yield e;
        }
        return;
      }
      await sleep(pollMs);
    }
  } finally {
    await live?.close();
  }
}
