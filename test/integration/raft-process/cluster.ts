// Helpers for running member.js processes on loopback: port choice, spawning, SIGKILL, and a small
// HTTP client for the members' API. Shared by the kill test and bench/raft.bench.ts.
import { spawn, type ChildProcess } from 'node:child_process';
import { request, Agent } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../support/wait.js';

/** member.ts's convention: a member's API port is its Raft port plus this. */
export const API_PORT_OFFSET = 1000;

const memberScript = join(dirname(fileURLToPath(import.meta.url)), 'member.js');

function tryListen(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(null));
    srv.listen(port, '127.0.0.1', () => {
      const bound = (srv.address() as { port: number }).port;
      srv.close(() => resolve(bound));
    });
  });
}

/** A free Raft port whose API port (port + API_PORT_OFFSET) is free too, neither in `taken`. */
export async function freePortPair(taken: Set<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const p = await tryListen(0);
    if (p === null || p + API_PORT_OFFSET > 65535 || taken.has(p) || taken.has(p + API_PORT_OFFSET)) continue;
    if ((await tryListen(p + API_PORT_OFFSET)) === null) continue;
    taken.add(p);
    taken.add(p + API_PORT_OFFSET);
    return p;
  }
  throw new Error('found no free pair of loopback ports');
}

export interface HttpResult {
  status: number;
  body: string;
}

/** One HTTP request to 127.0.0.1:port; rejects on network errors and after timeoutMs. */
export function http(port: number, method: string, path: string, opts: { body?: string; agent?: Agent; timeoutMs?: number } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent: opts.agent ?? false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 5000, () => req.destroy(new Error(`${method} 127.0.0.1:${port}${path} timed out`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export interface Status {
  id: number;
  leader: number;
  isLeader: boolean;
  applied: number;
  commit: number;
  term: number;
}

/** A member process: same id, directory and ports across restarts. */
export class MemberProcess {
  proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  stderr = '';

  constructor(
    readonly id: number,
    readonly dir: string,
    readonly raftPort: number,
    /** Flags given on every start, e.g. ['--tick-ms', '50']. */
    readonly baseArgs: string[] = [],
  ) {}

  get apiPort(): number {
    return this.raftPort + API_PORT_OFFSET;
  }

  get raftAddr(): string {
    return `127.0.0.1:${this.raftPort}`;
  }

  get running(): boolean {
    return this.proc !== null;
  }

  start(extra: string[] = []): void {
    if (this.proc) throw new Error(`member ${this.id} is already running (pid ${this.proc.pid})`);
    const args = [memberScript, '--id', String(this.id), '--dir', this.dir, '--raft-port', String(this.raftPort), '--api-port', String(this.apiPort), ...this.baseArgs, ...extra];
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.stderr = '';
    proc.stderr.on('data', (c: Buffer) => {
      // Keep the tail only: enough to explain a failure.
      this.stderr = (this.stderr + c.toString()).slice(-4000);
    });
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    this.proc = proc;
  }

  /** SIGKILL by pid, and wait for the process to be gone (its ports free again). */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc) return;
    this.proc = null;
    if (proc.exitCode === null && proc.signalCode === null && proc.pid !== undefined) {
      try {
        process.kill(proc.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    await this.exited;
  }

  async status(timeoutMs = 1000): Promise<Status> {
    const r = await http(this.apiPort, 'GET', '/status', { timeoutMs });
    if (r.status !== 200) throw new Error(`member ${this.id} /status answered ${r.status}: ${r.body}`);
    return JSON.parse(r.body) as Status;
  }

  /** The member's whole state as is, without a read barrier. */
  async dump(): Promise<{ applied: number; data: Record<string, string> }> {
    const r = await http(this.apiPort, 'GET', '/dump', { timeoutMs: 5000 });
    if (r.status !== 200) throw new Error(`member ${this.id} /dump answered ${r.status}: ${r.body}`);
    return JSON.parse(r.body) as { applied: number; data: Record<string, string> };
  }
}

/** Starts `members` as a new cluster: the first founds it, the others join through its /add. */
export async function foundCluster(members: MemberProcess[]): Promise<void> {
  const [founder, ...rest] = members;
  if (!founder) throw new Error('foundCluster needs at least one member');
  founder.start(['--bootstrap']);
  await waitFor(`member ${founder.id} to lead`, async () => (await founder.status().catch(() => null))?.isLeader);
  for (const m of rest) {
    const known = members.filter((o) => o.running).map((o) => `${o.id}=${o.raftAddr}`);
    m.start(['--join', known.join(',')]);
    await waitFor(`member ${m.id} to answer`, () => m.status().catch(() => null));
    // On a loaded machine the founder can lose its lead while the previous member catches up
    // (check-quorum): ask whoever leads, until the change is made. Adding a voter twice is harmless.
    let last = '';
    await waitFor(() => `member ${m.id} to be added (last answer: ${last})`, async () => {
      for (const o of members.filter((x) => x.running && x !== m)) {
        const r = await http(o.apiPort, 'POST', `/add?id=${m.id}&addr=${m.raftAddr}`).catch((e: unknown) => ({ status: 0, body: String(e) }));
        if (r.status === 200) return true;
        last = `${r.status} ${r.body}`;
      }
      return false;
    }, { timeoutMs: 30_000 });
  }
}
