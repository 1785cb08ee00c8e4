// A thin typed wrapper over the runc command line. Every call names the state root, so several
// runtimes (tests, the lab's many hosts) never see each other's containers.
import { execFile } from 'node:child_process';

export interface RuncState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  bundle: string;
  created: string;
}

export class RuncError extends Error {
  constructor(
    readonly args: string[],
    readonly stderr: string,
    readonly exitCode: number | null,
  ) {
    super(`runc ${args.join(' ')}: ${runcMessage(stderr) || `exit status ${exitCode}`}`);
    this.name = 'RuncError';
  }
}

/** runc logs `time="…" level=error msg="…"`; the msg is what a user needs. */
export function runcMessage(stderr: string): string {
  const msgs = [...stderr.matchAll(/msg="((?:[^"\\]|\\.)*)"/g)].map((m) => m[1].replace(/\\"/g, '"'));
  return msgs.length > 0 ? msgs.join('; ') : stderr.trim();
}

export class Runc {
  constructor(
    readonly binary: string,
    readonly root: string,
  ) {}

  run(args: string[]): Promise<string> {
    const full = ['--root', this.root, ...args];
    return new Promise((resolve, reject) => {
      execFile(this.binary, full, { maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err) {
          const code = typeof err.code === 'number' ? err.code : null;
          reject(new RuncError(args, stderr, code));
        } else {
          resolve(stdout);
        }
      });
    });
  }

  /** undefined when runc does not know the container. */
  async state(id: string): Promise<RuncState | undefined> {
    try {
      return JSON.parse(await this.run(['state', id])) as RuncState;
    } catch (err) {
      if (err instanceof RuncError && /does not exist/.test(err.stderr)) return undefined;
      throw err;
    }
  }

  async list(): Promise<RuncState[]> {
    const out = await this.run(['list', '--format', 'json']);
    return (JSON.parse(out.trim() === '' ? 'null' : out) as RuncState[] | null) ?? [];
  }

  async start(id: string): Promise<void> {
    await this.run(['start', id]);
  }

  async kill(id: string, signal: string): Promise<void> {
    await this.run(['kill', id, signal]);
  }

  async delete(id: string, force: boolean): Promise<void> {
    try {
      await this.run(['delete', ...(force ? ['--force'] : []), id]);
    } catch (err) {
      if (err instanceof RuncError && /does not exist/.test(err.stderr)) return;
      throw err;
    }
  }
}
