// conmon's k8s-file log format, one record a line:
//   2026-11-23T09:09:50.057431428+00:00 stdout F hello
// The tag is F for a full line, P for a piece of a longer line (conmon cuts at its buffer size);
// pieces are joined back here so readers always see whole lines.

export interface K8sRecord {
  timestamp: string;
  stream: 'stdout' | 'stderr';
  partial: boolean;
  content: string;
}

export function parseK8sLine(line: string): K8sRecord | undefined {
  const s1 = line.indexOf(' ');
  const s2 = line.indexOf(' ', s1 + 1);
  if (s1 <= 0 || s2 <= 0) return undefined;
  const stream = line.slice(s1 + 1, s2);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const tag = line.slice(s2 + 1, s2 + 2);
  if (tag !== 'F' && tag !== 'P') return undefined;
  return { timestamp: line.slice(0, s1), stream, partial: tag === 'P', content: line.slice(s2 + 3) };
}

/** RFC 3339 with nanoseconds → Date (millisecond precision; the string keeps the rest). */
export function parseTimestamp(ts: string): Date {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return new Date(NaN);
  const ms = (m[2] ?? '').padEnd(3, '0').slice(0, 3);
  return new Date(`${m[1]}.${ms}${m[3]}`);
}

export interface JoinedLine {
  stream: 'stdout' | 'stderr';
  timestamp: string;
  line: string;
}

/** Joins P pieces with the F that ends them, per stream (stdout and stderr interleave). */
export class LineJoiner {
  private readonly pending = new Map<string, { timestamp: string; parts: string[] }>();

  push(record: K8sRecord): JoinedLine | undefined {
    const open = this.pending.get(record.stream);
    if (record.partial) {
      if (open) open.parts.push(record.content);
      else this.pending.set(record.stream, { timestamp: record.timestamp, parts: [record.content] });
      return undefined;
    }
    if (open) {
      this.pending.delete(record.stream);
      return { stream: record.stream, timestamp: open.timestamp, line: open.parts.join('') + record.content };
    }
    return { stream: record.stream, timestamp: record.timestamp, line: record.content };
  }

  /** Pieces never finished (the container died mid-line): hand them out as lines. */
  flush(): JoinedLine[] {
    const out = [...this.pending.entries()].map(([stream, p]) => ({
      stream: stream as 'stdout' | 'stderr',
      timestamp: p.timestamp,
      line: p.parts.join(''),
    }));
    this.pending.clear();
    return out;
  }
}
