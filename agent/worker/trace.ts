// A timeline of the worker, for benchmarks: with SHOAL_TASK_TRACE=<file> in shoald's environment
// every assignment message, task state change and status batch acknowledged by the manager is
// appended to that file as one JSON line `{t, ev, ...}` (t: ms since the epoch, sub-ms precision),
// so `npm run bench -- runtime` can say where a service's convergence time goes. Off by default:
// nothing is written and the calls cost a branch.
import { createWriteStream, type WriteStream } from 'node:fs';
import { performance } from 'node:perf_hooks';

let stream: WriteStream | null | undefined;

function out(): WriteStream | null {
  if (stream === undefined) {
    const path = process.env.SHOAL_TASK_TRACE;
    stream = path ? createWriteStream(path, { flags: 'a' }) : null;
    stream?.on('error', () => {
      stream = null;
    });
  }
  return stream;
}

export function traceEnabled(): boolean {
  return out() !== null;
}

/** Records one event (a no-op unless SHOAL_TASK_TRACE is set). */
export function trace(ev: string, fields: Record<string, unknown> = {}): void {
  const s = out();
  if (!s) return;
  s.write(JSON.stringify({ t: performance.timeOrigin + performance.now(), ev, ...fields }) + '\n');
}
