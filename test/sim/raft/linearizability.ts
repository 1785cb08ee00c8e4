// A linearizability checker for the client history of the simulation, after Wing & Gong with
// Lowe's memoization, in the shape of Porcupine's: per key (P-compositionality: a history is
// linearizable iff each key's sub-history is), depth-first search over the order in which
// operations take effect, backtracking when an operation's return comes before it could be
// linearized, and caching (set of linearized ops, state) pairs already explored.
import { stepModel, type Op, type Output } from './kv.js';

export interface HistoryOp {
  id: string;
  client: number;
  op: Op;
  invoke: number;
  /** Completion time, or null if the client never learnt the outcome (it may or may not apply). */
  complete: number | null;
  output: Output | null;
}

export interface CheckResult {
  ok: boolean;
  /** The first key whose history is not linearizable. */
  key?: string;
  /** Operations of that key, for the report. */
  ops?: HistoryOp[];
  /** The search gave up (too large): not a verdict. */
  timedOut?: boolean;
}

interface Event {
  kind: 'call' | 'return';
  time: number;
  opIndex: number;
  /** Linked list of the remaining events. */
  prev: Event | null;
  next: Event | null;
  match: Event | null;
}

function outputMatches(expected: Output, actual: Output | null): boolean {
  if (actual === null) return true; // unknown outcome: anything goes
  if (expected.kind !== actual.kind) return false;
  if (expected.kind === 'get' && actual.kind === 'get') return expected.value === actual.value;
  if (expected.kind === 'cas' && actual.kind === 'cas') return expected.ok === actual.ok;
  return true;
}

/** Check one key's history starting from `initial`. */
export function checkKey(ops: HistoryOp[], initial: string | null = null, maxSteps = 5_000_000): { ok: boolean; timedOut: boolean } {
  // Reads with unknown outcome constrain nothing: drop them.
  const hist = ops.filter((o) => !(o.op.kind === 'get' && o.complete === null));
  if (hist.length === 0) return { ok: true, timedOut: false };
  const events: Event[] = [];
  hist.forEach((o, i) => {
    const call: Event = { kind: 'call', time: o.invoke, opIndex: i, prev: null, next: null, match: null };
    const ret: Event = { kind: 'return', time: o.complete ?? Number.POSITIVE_INFINITY, opIndex: i, prev: null, next: null, match: null };
    call.match = ret;
    events.push(call, ret);
  });
  // At equal times a return precedes a call: an op that completed at t happened before one invoked at t.
  events.sort((a, b) => a.time - b.time || (a.kind === b.kind ? a.opIndex - b.opIndex : a.kind === 'return' ? -1 : 1));
  const head: Event = { kind: 'call', time: -1, opIndex: -1, prev: null, next: null, match: null };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }

  const lift = (call: Event): void => {
    call.prev!.next = call.next;
    if (call.next) call.next.prev = call.prev;
    const ret = call.match!;
    ret.prev!.next = ret.next;
    if (ret.next) ret.next.prev = ret.prev;
  };
  const unlift = (call: Event): void => {
    const ret = call.match!;
    ret.prev!.next = ret;
    if (ret.next) ret.next.prev = ret;
    call.prev!.next = call;
    if (call.next) call.next.prev = call;
  };

  const n = hist.length;
  const linearized = new Uint32Array(Math.ceil(n / 32));
  const keyOf = (bits: Uint32Array, state: string | null): string => `${bits.join(',')}|${state === null ? '\u0000' : state}`;
  const cache = new Set<string>();
  const calls: { entry: Event; state: string | null }[] = [];
  let state = initial;
  let entry = head.next;
  let steps = 0;
  while (head.next !== null) {
    if (++steps > maxSteps) return { ok: false, timedOut: true };
    if (entry === null) throw new Error('linearizability: ran off the event list');
    if (entry.kind === 'call') {
      const o = hist[entry.opIndex]!;
      const { state: next, out } = stepModel(state, o.op);
      if (outputMatches(out, o.output)) {
        const w = entry.opIndex >>> 5;
        const bit = 1 << (entry.opIndex & 31);
        linearized[w] = (linearized[w]! | bit) >>> 0;
        const k = keyOf(linearized, next);
        if (!cache.has(k)) {
          cache.add(k);
          calls.push({ entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[w] = (linearized[w]! & ~bit) >>> 0;
      }
      entry = entry.next;
    } else {
      // A return whose call could not be linearized yet: backtrack.
      const top = calls.pop();
      if (!top) return { ok: false, timedOut: false };
      entry = top.entry;
      state = top.state;
      const w = entry.opIndex >>> 5;
      linearized[w] = (linearized[w]! & ~(1 << (entry.opIndex & 31))) >>> 0;
      unlift(entry);
      entry = entry.next;
    }
  }
  return { ok: true, timedOut: false };
}

/** Check a whole history, key by key. */
export function checkHistory(history: HistoryOp[], maxStepsPerKey?: number): CheckResult {
  const byKey = new Map<string, HistoryOp[]>();
  for (const h of history) {
    const list = byKey.get(h.op.key) ?? [];
    list.push(h);
    byKey.set(h.op.key, list);
  }
  for (const key of [...byKey.keys()].sort()) {
    const ops = byKey.get(key)!;
    const r = checkKey(ops, null, maxStepsPerKey);
    if (!r.ok) return { ok: false, key, ops: r.timedOut ? ops : shortestFailingWindow(ops, maxStepsPerKey), timedOut: r.timedOut };
  }
  return { ok: true };
}

/**
 * For the report: the ops around where the history stops being linearizable. Finds the shortest
 * failing prefix (by invocation) and returns its last few dozen ops.
 */
function shortestFailingWindow(ops: HistoryOp[], maxSteps?: number): HistoryOp[] {
  const sorted = [...ops].sort((a, b) => a.invoke - b.invoke);
  let lo = 1;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (checkKey(sorted.slice(0, mid), null, maxSteps).ok) lo = mid + 1;
    else hi = mid;
  }
  return sorted.slice(Math.max(0, lo - 25), lo);
}

export function describeOp(h: HistoryOp): string {
  const o = h.op;
  const call = o.kind === 'put' ? `put(${o.value})` : o.kind === 'get' ? 'get()' : `cas(${String(o.expected)} -> ${o.value})`;
  let out = '?';
  if (h.output) out = h.output.kind === 'get' ? String(h.output.value) : h.output.kind === 'cas' ? String(h.output.ok) : 'ok';
  return `[${h.invoke}, ${h.complete ?? 'inf'}] c${h.client} ${h.id} ${o.key}.${call} -> ${out}`;
}
