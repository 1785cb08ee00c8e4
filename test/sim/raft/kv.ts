// The replicated state machine of the simulation: a register per key with put / get / cas, and
// the sequential model the linearizability checker uses. Commands carry a unique op id and are
// applied at most once (a duplicated MsgProp can put the same command in the log twice).

export type Op =
  | { kind: 'put'; key: string; value: string }
  | { kind: 'get'; key: string }
  | { kind: 'cas'; key: string; expected: string | null; value: string };

/** What an op returned: the value read (get), whether it swapped (cas), nothing (put). */
export type Output = { kind: 'put' } | { kind: 'get'; value: string | null } | { kind: 'cas'; ok: boolean };

export interface Command {
  id: string;
  op: Op;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

export function encodeCommand(c: Command): Uint8Array {
  return enc.encode(JSON.stringify(c));
}

export function decodeCommand(b: Uint8Array): Command {
  return JSON.parse(dec.decode(b)) as Command;
}

/** The sequential specification: apply `op` to register state `s`. */
export function stepModel(s: string | null, op: Op): { state: string | null; out: Output } {
  switch (op.kind) {
    case 'put':
      return { state: op.value, out: { kind: 'put' } };
    case 'get':
      return { state: s, out: { kind: 'get', value: s } };
    case 'cas':
      return s === op.expected ? { state: op.value, out: { kind: 'cas', ok: true } } : { state: s, out: { kind: 'cas', ok: false } };
  }
}

export class KvStateMachine {
  data = new Map<string, string>();
  /** Results of applied commands by id: at-most-once application. */
  results = new Map<string, Output>();

  apply(c: Command): Output {
    const seen = this.results.get(c.id);
    if (seen) return seen;
    const { state, out } = stepModel(this.data.get(c.op.key) ?? null, c.op);
    if (state === null) this.data.delete(c.op.key);
    else this.data.set(c.op.key, state);
    this.results.set(c.id, out);
    return out;
  }

  get(key: string): string | null {
    return this.data.get(key) ?? null;
  }

  encode(): Uint8Array {
    return enc.encode(JSON.stringify({ d: [...this.data], r: [...this.results] }));
  }

  static decode(b: Uint8Array): KvStateMachine {
    const kv = new KvStateMachine();
    if (b.length === 0) return kv;
    const v = JSON.parse(dec.decode(b)) as { d: [string, string][]; r: [string, Output][] };
    kv.data = new Map(v.d);
    kv.results = new Map(v.r);
    return kv;
  }
}
