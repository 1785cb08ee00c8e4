// Docker's live convergence display for `service create/update/scale/rollback`:
//
//   overall progress: 2 out of 3 tasks
//   1/3: running   [==================================================>]
//   2/3: running   [==================================================>]
//   3/3: preparing [=================================>                 ]
//   verify: Waiting 5 seconds to verify that tasks are stable...
//
// The logic is Docker's (cli/command/service/progress): a service has converged when every
// desired slot (replicated), every node (global) has a RUNNING task made from the current spec, or
// when a job's tasks have COMPLETEd; a replicated or global service must then stay so for the
// monitor period (the update config's, 5s by default). It is a pure function here, `progressStep`:
// state + one poll of the cluster → lines to show and whether to go on, so every display is
// tested without a daemon. `waitForConvergence` polls and draws: in place on a terminal, as plain
// lines (each shown once per change) when stdout is a file or a pipe.
import { TaskSpec, type Node, type Service, type Task, type TaskState } from '../proto/gen/objects.js';
import type { FlagValues } from '../util/flags.js';
import { UserError } from '../util/command.js';
import { call } from './client.js';
import { truncateId } from './serviceview.js';

/** One line of the display. Lines with an id are redrawn in place; `bar` is [current, total]. */
export interface ProgressLine {
  id: string;
  text: string;
  bar?: [number, number];
}

/** One poll: the service, its tasks, the nodes that are not down, and the time of the poll. */
export interface Snapshot {
  service: Service;
  tasks: readonly Task[];
  activeNodes: ReadonlySet<string>;
  now: number;
}

export interface ProgressState {
  initialized: boolean;
  /** All counted tasks were running at the last poll (the per-task lines stop updating). */
  done: boolean;
  slotMap: Map<number, number>;
  converged: boolean;
  convergedAt: number | null;
  rollback: boolean;
  /** Printed after "Service converged" (a rollback's reason). */
  message: ProgressLine | null;
  /** The update status the service had when we started; an identical one later is stale. */
  initialStatus: string;
  /** Global jobs: the nodes of the job's first tasks, the ones whose completion is awaited. */
  taskNodes: Set<string> | null;
}

export type Outcome = { kind: 'continue' } | { kind: 'converged' } | { kind: 'failed'; message: string };

export interface Step {
  state: ProgressState;
  lines: ProgressLine[];
  outcome: Outcome;
}

export const DEFAULT_MONITOR_MS = 5000;
const MAX_PROGRESS = 9;
const MAX_JOB_PROGRESS = 10;
const MAX_PROGRESS_BARS = 20;
const STATE_NUMBER: Partial<Record<TaskState, number>> = {
  NEW: 1,
  PENDING: 3,
  ASSIGNED: 4,
  ACCEPTED: 5,
  PREPARING: 6,
  READY: 7,
  STARTING: 8,
  RUNNING: 9,
  COMPLETE: 10,
  SHUTDOWN: 11,
  FAILED: 12,
  REJECTED: 13,
};
/** The widest state word shown ("preparing"), so the bars line up. */
const LONGEST_STATE = 9;
const num = (s: TaskState | undefined): number => (s ? (STATE_NUMBER[s] ?? 0) : 0);
const terminal = (s: TaskState | undefined): boolean => num(s) > num('RUNNING');
const observed = (t: Task): TaskState => t.status?.state ?? 'NEW';

function statusKey(service: Service): string {
  const u = service.updateStatus;
  return u && u.state !== 'UNKNOWN' ? `${u.state}@${u.startedAt}@${u.completedAt}` : '';
}

export function initialProgressState(service?: Service): ProgressState {
  return { initialized: false, done: false, slotMap: new Map(), converged: false, convergedAt: null, rollback: false, message: null, initialStatus: service ? statusKey(service) : '', taskNodes: null };
}

/** A key that is equal for equal task specs, whatever the order of map entries. */
function specKey(spec: TaskSpec | null | undefined): string {
  const canonical = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canonical);
    if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
    if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
    return v;
  };
  return JSON.stringify(canonical(TaskSpec.decode(TaskSpec.encode(spec ?? ({} as TaskSpec)))));
}

/** Made from the service's current spec (Docker's `_up-to-date` task filter, done here). */
export function upToDate(service: Service, task: Task): boolean {
  return task.specVersion === service.specVersion || specKey(task.spec) === specKey(service.spec?.task);
}

const errorText = (err: string): string => {
  const one = err.replace(/\n/g, ' ');
  return one.length > 75 ? one.slice(0, 74) + '…' : one;
};

/** A task's line: its error, or its state and bar (a service's stopped tasks keep their last line). */
function taskLine(id: string, t: Task, job: boolean): ProgressLine | null {
  if (t.status?.err) return { id, text: errorText(t.status.err) };
  if (!job && (terminal(t.desiredState) || terminal(observed(t)))) return null;
  return { id, text: observed(t).toLowerCase().padEnd(LONGEST_STATE), bar: [num(observed(t)), job ? MAX_JOB_PROGRESS : MAX_PROGRESS] };
}

const overall = (n: number, of: number, rollback: boolean): ProgressLine => ({ id: 'overall progress', text: rollback ? `rolling back update: ${n} out of ${of} tasks` : `${n} out of ${of} tasks` });

/** Of several tasks in one slot, the one with the lowest desired state, then the lowest observed. */
function pickByKey<K>(tasks: readonly Task[], key: (t: Task) => K, skip: (t: Task) => boolean): Map<K, Task> {
  const out = new Map<K, Task>();
  for (const t of tasks) {
    if (!num(t.desiredState) || !num(observed(t)) || skip(t)) continue;
    const have = out.get(key(t));
    if (have) {
      if (num(have.desiredState) < num(t.desiredState)) continue;
      if (num(have.desiredState) === num(t.desiredState) && num(observed(have)) <= num(observed(t))) continue;
    }
    out.set(key(t), t);
  }
  return out;
}

type Updater = (s: ProgressState, snap: Snapshot, tasks: readonly Task[], lines: ProgressLine[]) => boolean;

const replicatedUpdater: Updater = (s, snap, tasks, lines) => {
  const replicas = snap.service.spec?.replicated?.replicas ?? 0;
  if (!s.initialized) {
    lines.push(overall(0, replicas, s.rollback));
    if (replicas <= MAX_PROGRESS_BARS) for (let i = 1; i <= replicas; i++) lines.push({ id: `${i}/${replicas}`, text: '' });
    s.initialized = true;
  }
  const bySlot = pickByKey(tasks, (t) => t.slot, (t) => t.nodeId !== '' && !snap.activeNodes.has(t.nodeId));
  if (s.done && [...bySlot.values()].some((t) => observed(t) !== 'RUNNING')) s.done = false;
  let running = 0;
  for (const slot of [...bySlot.keys()].sort((a, b) => a - b)) {
    const t = bySlot.get(slot)!;
    let mapped = s.slotMap.get(slot);
    if (!mapped) s.slotMap.set(slot, (mapped = s.slotMap.size + 1));
    if (!terminal(t.desiredState) && observed(t) === 'RUNNING') running++;
    if (!s.done && replicas <= MAX_PROGRESS_BARS && mapped <= replicas) {
      const line = taskLine(`${mapped}/${replicas}`, t, false);
      if (line) lines.push(line);
    }
  }
  if (!s.done) {
    lines.push(overall(running, replicas, s.rollback));
    if (running === replicas) s.done = true;
  }
  return running === replicas;
};

const globalUpdater: Updater = (s, snap, tasks, lines) => {
  const byNode = pickByKey(tasks, (t) => t.nodeId, () => false);
  const nodeCount = byNode.size;
  if (!s.initialized) {
    if (nodeCount === 0) {
      lines.push({ id: 'overall progress', text: 'waiting for new tasks' });
      return false;
    }
    lines.push(overall(0, nodeCount, s.rollback));
    s.initialized = true;
  }
  if (s.done && [...byNode.values()].some((t) => observed(t) !== 'RUNNING')) s.done = false;
  let running = 0;
  for (const node of [...byNode.keys()].sort()) {
    const t = byNode.get(node)!;
    if (!snap.activeNodes.has(node)) continue;
    if (!terminal(t.desiredState) && observed(t) === 'RUNNING') running++;
    if (!s.done && nodeCount <= MAX_PROGRESS_BARS) {
      const line = taskLine(truncateId(node), t, false);
      if (line) lines.push(line);
    }
  }
  if (!s.done) {
    lines.push(overall(running, nodeCount, s.rollback));
    if (running === nodeCount) s.done = true;
  }
  return running === nodeCount;
};

/** Of a job's tasks in one slot (or node), the one least advanced. */
function leastAdvanced<K>(tasks: readonly Task[], key: (t: Task) => K): Map<K, Task> {
  const out = new Map<K, Task>();
  for (const t of tasks) {
    if (!num(t.desiredState) || !num(observed(t))) continue;
    const have = out.get(key(t));
    if (!have || num(observed(have)) > num(observed(t))) out.set(key(t), t);
  }
  return out;
}

const replicatedJobUpdater: Updater = (s, snap, tasks, lines) => {
  const job = snap.service.spec?.replicatedJob;
  const total = job?.totalCompletions || job?.maxConcurrent || 1;
  const concurrent = job?.maxConcurrent || total;
  const digits = String(total).length;
  const activeDigits = String(concurrent).length;
  const overallJob = (active: number, completed: number) => {
    lines.push({ id: 'job progress', text: `${String(completed).padStart(digits)} out of ${total} complete`, bar: [completed, total] });
    const desired = Math.min(total - completed, concurrent);
    lines.push({ id: 'active tasks', text: `${String(active).padStart(activeDigits)} out of ${String(desired).padStart(activeDigits)} tasks` });
  };
  if (!s.initialized) {
    overallJob(0, 0);
    if (total <= MAX_PROGRESS_BARS) for (let i = 1; i <= total; i++) lines.push({ id: `${i}/${total}`, text: '' });
    s.initialized = true;
  }
  const bySlot = leastAdvanced(
    tasks.filter((t) => t.jobIteration === snap.service.jobIteration),
    (t) => t.slot,
  );
  let active = 0;
  let complete = 0;
  for (const slot of [...bySlot.keys()].sort((a, b) => a - b)) {
    const t = bySlot.get(slot)!;
    if (total <= MAX_PROGRESS_BARS) {
      const line = taskLine(`${slot}/${total}`, t, true);
      if (line) lines.push(line);
    }
    if (num(observed(t)) < num('COMPLETE')) active++;
    if (observed(t) === 'COMPLETE') complete++;
  }
  overallJob(active, complete);
  return complete === total;
};

const globalJobUpdater: Updater = (s, snap, tasks, lines) => {
  const current = tasks.filter((t) => t.jobIteration === snap.service.jobIteration);
  if (!s.taskNodes) {
    if (current.length === 0 && snap.activeNodes.size !== 0) {
      lines.push({ id: 'job progress', text: 'waiting for tasks' });
      return false;
    }
    s.taskNodes = new Set(current.map((t) => t.nodeId));
  }
  const nodes = s.taskNodes;
  const total = nodes.size;
  const digits = String(total).length;
  const byNode = leastAdvanced(
    current.filter((t) => nodes.has(t.nodeId)),
    (t) => t.nodeId,
  );
  let complete = 0;
  for (const node of [...byNode.keys()].sort()) {
    const t = byNode.get(node)!;
    if (total <= MAX_PROGRESS_BARS) {
      const line = taskLine(node, t, true);
      if (line) lines.push(line);
    }
    if (observed(t) === 'COMPLETE') complete++;
  }
  lines.push({ id: 'job progress', text: `${String(complete).padStart(digits)} out of ${total} complete`, bar: [complete, total] });
  return complete === total;
};

const isJob = (service: Service): boolean => Boolean(service.spec?.replicatedJob || service.spec?.globalJob);

function updaterFor(service: Service): Updater | null {
  const spec = service.spec;
  if (spec?.replicated) return replicatedUpdater;
  if (spec?.global) return globalUpdater;
  if (spec?.replicatedJob) return replicatedJobUpdater;
  if (spec?.globalJob) return globalJobUpdater;
  return null;
}

/** One poll's worth of Docker's ServiceProgress loop. */
export function progressStep(prev: ProgressState, snap: Snapshot): Step {
  const s: ProgressState = { ...prev, slotMap: new Map(prev.slotMap), taskNodes: prev.taskNodes ? new Set(prev.taskNodes) : null };
  const lines: ProgressLine[] = [];
  const service = snap.service;
  const monitor = service.spec?.update?.monitorMs || DEFAULT_MONITOR_MS;
  const updater = updaterFor(service);
  if (!updater) return { state: s, lines, outcome: { kind: 'failed', message: 'unrecognized service mode' } };

  const us = service.updateStatus;
  const fresh = statusKey(service) !== s.initialStatus;
  switch (us?.state) {
    case 'UPDATING':
      s.rollback = false;
      break;
    case 'COMPLETED':
      if (fresh && !s.converged) return { state: s, lines, outcome: { kind: 'converged' } };
      break;
    case 'PAUSED':
      if (fresh) return { state: s, lines, outcome: { kind: 'failed', message: `service update paused: ${us.message}` } };
      break;
    case 'ROLLBACK_STARTED':
      if (!s.rollback && us.message) lines.push({ id: 'rollback', text: us.message });
      s.rollback = true;
      break;
    case 'ROLLBACK_PAUSED':
      if (fresh) return { state: s, lines, outcome: { kind: 'failed', message: `service rollback paused: ${us.message}` } };
      break;
    case 'ROLLBACK_COMPLETED':
      if (fresh) {
        if (!s.converged) s.message = { id: 'rollback', text: us.message };
        s.rollback = true;
      }
      break;
    default:
      break;
  }
  if (s.converged && s.convergedAt !== null && snap.now - s.convergedAt >= monitor) {
    lines.push({ id: 'verify', text: 'Service converged' });
    if (s.message) lines.push(s.message);
    return { state: s, lines, outcome: { kind: 'converged' } };
  }

  const tasks = isJob(service) ? snap.tasks : snap.tasks.filter((t) => upToDate(service, t));
  s.converged = updater(s, snap, tasks, lines);
  if (s.converged) {
    if (isJob(service)) {
      lines.push({ id: '', text: 'job complete' });
      return { state: s, lines, outcome: { kind: 'converged' } };
    }
    s.convergedAt ??= snap.now;
    const wait = monitor - (snap.now - s.convergedAt);
    if (wait >= 0) lines.push({ id: 'verify', text: `Waiting ${Math.max(1, Math.ceil(wait / 1000))} seconds to verify that tasks are stable...` });
  } else {
    if (s.convergedAt !== null) lines.push({ id: 'verify', text: 'Detected task failure' });
    s.convergedAt = null;
  }
  return { state: s, lines, outcome: { kind: 'continue' } };
}

// --- drawing -------------------------------------------------------------------------------------

/** Docker's progress bar: 50 columns of `=` then `>`. */
export function progressBar(current: number, total: number): string {
  const filled = Math.min(50, Math.floor(Math.floor((current / total) * 100) / 2));
  return `[${'='.repeat(filled)}>${' '.repeat(50 - filled)}]`;
}

/** A line as jsonmessage prints it; bars only when there is room (Docker's 110 columns). */
export function renderLine(l: ProgressLine, columns: number): string {
  const bar = l.bar && columns > 110 && (l.bar[0] > 0 || l.bar[1] > 0) ? ' ' + progressBar(l.bar[0], l.bar[1]) : '';
  return `${l.id ? `${l.id}: ` : ''}${l.text}${bar}`.trimEnd();
}

/**
 * Draws progress lines. On a terminal a line with a known id is rewritten where it stands
 * (cursor up, clear, write, cursor down); without one, a line is printed when its text changes.
 */
export class ProgressRenderer {
  private readonly rows: (string | null)[] = [];
  private readonly last = new Map<string, string>();

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly tty: boolean,
    private readonly columns: number,
  ) {}

  write(lines: readonly ProgressLine[]): void {
    let buf = '';
    for (const l of lines) {
      let text = renderLine(l, this.columns);
      if (this.tty && text.length >= this.columns) text = text.slice(0, this.columns - 1);
      if (l.id && this.last.get(l.id) === text) continue;
      const at = l.id ? this.rows.indexOf(l.id) : -1;
      if (l.id) this.last.set(l.id, text);
      if (this.tty && at >= 0) {
        const up = this.rows.length - at;
        buf += `\x1b[${up}A\r\x1b[2K${text}\x1b[${up}B\r`;
        continue;
      }
      buf += text + '\n';
      this.rows.push(l.id || null);
    }
    if (buf) this.out.write(buf);
  }
}

// --- polling -------------------------------------------------------------------------------------

export interface WaitOptions {
  global: FlagValues;
  /** The service's id (or name). */
  service: string;
  out: NodeJS.WritableStream;
  /** Wait without drawing (`-q`). */
  quiet?: boolean;
  /** The service as the create/update call returned it: its update status is not news. */
  initial?: Service;
  pollMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function poll(global: FlagValues, service: string): Promise<Omit<Snapshot, 'now'>> {
  const svc = (await call(global, 'getService', { service })).service;
  if (!svc) throw new UserError(`no such service: ${service}`);
  const [tasks, nodes] = await Promise.all([call(global, 'listTasks', { filters: { service: svc.id } }), call(global, 'listNodes', { filters: {} })]);
  return { service: svc, tasks: tasks.tasks.filter((t) => t.serviceId === svc.id), activeNodes: new Set(nodes.nodes.filter((n: Node) => n.status?.state !== 'DOWN').map((n) => n.id)) };
}

/**
 * Polls the service until it converges, drawing the display on `out`. Ctrl-C stops the wait,
 * not the update (Docker's "Operation continuing in background").
 */
export async function waitForConvergence(o: WaitOptions): Promise<void> {
  const stream = o.out as NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  const tty = Boolean(stream.isTTY);
  const renderer = o.quiet ? null : new ProgressRenderer(o.out, tty, tty ? (stream.columns ?? 80) : 200);
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
  };
  process.once('SIGINT', onSigint);
  try {
    let state = initialProgressState(o.initial);
    for (;;) {
      const snap = interrupted ? null : await poll(o.global, o.service);
      if (interrupted || !snap) {
        renderer?.write([
          { id: '', text: 'Operation continuing in background.' },
          { id: '', text: `Use \`shoal service ps ${o.service}\` to check progress.` },
        ]);
        return;
      }
      const step = progressStep(state, { ...snap, now: Date.now() });
      state = step.state;
      renderer?.write(step.lines);
      if (step.outcome.kind === 'converged') return;
      if (step.outcome.kind === 'failed') throw new UserError(step.outcome.message);
      await sleep(o.pollMs ?? 250);
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
