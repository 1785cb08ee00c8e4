// Where a process spent its CPU, from a V8 .cpuprofile (node --cpu-prof): self time by area of the
// code (manager/dispatcher, manager/store, grpc-js, GC, ...) and the functions with the most self
// and inclusive time, optionally within a window of the monotonic clock (µs, as process.hrtime).
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Milliseconds of samples inside the window. */
  sampledMs: number;
  windowed: boolean;
  areas: Record<string, number>;
  topSelf: Array<{ fn: string; ms: number }>;
  /** Inclusive time of shoal's own functions (time in them and everything they called). */
  topInclusive: Array<{ fn: string; ms: number }>;
  /**
   * The longest stretches of samples under one outermost shoal function, with no idle sample
   * between (most likely one long task: a timer, a heartbeat or a Raft message waited that long),
   * and what ran in them. A manager's stretch past the election timeout costs it its leadership.
   */
  longestBusy: Array<{ ms: number; entries: Array<{ fn: string; ms: number }> }>;
}

interface Stretch {
  us: number;
  fn: string | undefined;
  entries: Map<string, number>;
}

/** The part of the code a frame belongs to. */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'gc';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'v8/native (program)';
    return `native ${functionName || '(anonymous)'}`;
  }
  const ours = /\/dist\/(manager|agent)\/([^/]+)\//.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`;
  if (/\/dist\/manager\/[^/]+\.js$/.test(url)) return 'manager/manager.js';
  if (url.includes('/dist/proto/')) return 'proto (generated codecs)';
  if (url.includes('/dist/')) return url.replace(/.*\/dist\//, '').replace(/\/[^/]*$/, '');
  if (url.includes('node_modules/@grpc/grpc-js')) return 'grpc-js';
  if (url.includes('node_modules/protobufjs') || url.includes('node_modules/@protobufjs')) return 'protobufjs';
  if (url.startsWith('node:internal/http2') || url.startsWith('node:http2')) return 'node http2';
  if (url.startsWith('node:internal/tls') || url.startsWith('node:tls') || url.startsWith('node:_tls')) return 'node tls';
  if (url.startsWith('node:')) return 'node other';
  return 'other';
}

function label(frame: CallFrame): string {
  const file = frame.url.replace(/.*\/dist\//, '').replace(/.*node_modules\//, '');
  return `${frame.functionName || '(anonymous)'} ${file}:${frame.lineNumber + 1}`;
}

export function summarizeProfile(path: string, window?: { fromMicros: number; toMicros: number }, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const areas = new Map<string, number>();
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let t = profile.startTime;
  let sampled = 0;
  const stretches: Stretch[] = [];
  let stretch: Stretch | undefined;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (window && (t < window.fromMicros || t > window.toMicros)) continue;
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    sampled += us;
    const leaf = byId.get(profile.samples[i]!)!;
    const area = areaOf(leaf.callFrame);
    // A stretch: consecutive samples under one outermost shoal function (gc and native frames
    // in between count towards it), ended by an idle sample or another outermost function.
    let outermost: string | undefined;
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      if (frame.url.includes('/dist/') && !frame.url.includes('node_modules')) outermost = label(frame);
    }
    if (area === 'idle' || (outermost !== undefined && stretch?.fn !== undefined && stretch.fn !== outermost)) {
      if (stretch) stretches.push(stretch);
      stretch = undefined;
    }
    if (area !== 'idle') {
      stretch ??= { us: 0, fn: outermost, entries: new Map() };
      stretch.fn ??= outermost;
      stretch.us += us;
      const key = outermost ?? area;
      stretch.entries.set(key, (stretch.entries.get(key) ?? 0) + us);
    }
    areas.set(area, (areas.get(area) ?? 0) + us);
    const l = label(leaf.callFrame);
    self.set(l, (self.get(l) ?? 0) + us);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame;
      if (!frame.url.includes('/dist/') || frame.url.includes('node_modules')) continue;
      const key = label(frame);
      if (seen.has(key)) continue; // recursion counts once
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const ms = (us: number) => Math.round(us / 1000);
  const sorted = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([fn, us]) => ({ fn, ms: ms(us) }));
  return {
    sampledMs: ms(sampled),
    windowed: window !== undefined,
    areas: Object.fromEntries([...areas].sort((a, b) => b[1] - a[1]).map(([k, us]) => [k, ms(us)])),
    topSelf: sorted(self),
    topInclusive: sorted(inclusive),
    longestBusy: [...stretches, ...(stretch ? [stretch] : [])]
      .sort((a, b) => b.us - a.us)
      .slice(0, 5)
      .map((st) => ({ ms: ms(st.us), entries: sorted(st.entries).slice(0, 4) })),
  };
}
