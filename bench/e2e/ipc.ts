// Calls between the end-to-end bench and its child processes (managers, the simulated fleet) over
// Node's IPC channel: the parent calls a named method and awaits its result; a child may also send
// events of its own (a count reaching its target).
import { fork, type ChildProcess } from 'node:child_process';

interface Request {
  id: number;
  method: string;
  args: unknown;
}
type Reply = { id: number; result: unknown } | { id: number; error: string };
interface Event {
  event: string;
  data: unknown;
}

/** In a child: answers the parent's calls with `methods`. */
export function serve(methods: Record<string, (args: never) => unknown>): void {
  process.on('message', (raw: unknown) => {
    const req = raw as Request;
    if (typeof req?.method !== 'string') return;
    const method = methods[req.method];
    const reply = (r: Reply) => process.send?.(r);
    if (!method) return reply({ id: req.id, error: `no method ${req.method}` });
    Promise.resolve()
      .then(() => method(req.args as never))
      .then(
        (result) => reply({ id: req.id, result: result ?? null }),
        (e: unknown) => reply({ id: req.id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
      );
  });
}

/** In a child: tells the parent something happened. */
export function emitEvent(event: string, data: unknown): void {
  process.send?.({ event, data } satisfies Event);
}

/** The parent's handle on one child process. */
export class Child {
  readonly process: ChildProcess;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; method: string }>();
  private readonly listeners = new Map<string, Array<(data: unknown) => void>>();
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    script: string,
    execArgv: string[] = [],
  ) {
    this.process = fork(script, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    this.process.on('message', (raw: unknown) => {
      const m = raw as Partial<Reply & Event>;
      if (typeof m.event === 'string') {
        for (const l of this.listeners.get(m.event) ?? []) l(m.data);
        return;
      }
      const w = this.waiting.get(m.id ?? -1);
      if (!w) return;
      this.waiting.delete(m.id!);
      if ('error' in m && m.error !== undefined) w.reject(new Error(`${this.name}.${w.method}: ${m.error}`));
      else w.resolve((m as { result: unknown }).result);
    });
    this.exited = new Promise((resolve) =>
      this.process.on('exit', (code) => {
        for (const w of this.waiting.values()) w.reject(new Error(`${this.name} exited (code ${code}) during ${w.method}`));
        this.waiting.clear();
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.process.pid ?? 0;
  }

  call<T>(method: string, args: unknown = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject, method });
      this.process.send({ id, method, args } satisfies Request, (err) => {
        if (!err) return;
        this.waiting.delete(id);
        reject(err);
      });
    });
  }

  on(event: string, listener: (data: unknown) => void): void {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener]);
  }

  /** Asks the child to stop (its `stop` method exits it), then kills it if it lingers. */
  async stop(timeoutMs = 20_000): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const timer = setTimeout(() => this.process.kill('SIGKILL'), timeoutMs);
    try {
      await this.call('stop').catch(() => undefined);
      await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
