// Docker-style health checks: run the check command in the container every interval; each run
// may take at most timeout; after `retries` consecutive failures the container is unhealthy, one
// success makes it healthy again. Failures inside the start period do not count, until the first
// success ends the start period early. Status starts at 'starting'.
import { EventEmitter } from 'node:events';
import type { CollectOptions, ExecResult } from './runtime.js';

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthCheckConfig {
  /** ['CMD', argv…], ['CMD-SHELL', 'command line'] or ['NONE']. */
  test: string[];
  intervalMs?: number;
  timeoutMs?: number;
  retries?: number;
  startPeriodMs?: number;
}

export interface HealthProbeResult {
  start: Date;
  end: Date;
  exitCode: number;
  output: string;
}

export type HealthExec = (argv: string[], options: CollectOptions) => Promise<ExecResult>;

export const HEALTH_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 };
const MAX_LOG = 5;
const MAX_OUTPUT = 4096;

/** The argv to exec for a check, or undefined for NONE / an empty test (no health check). */
export function healthCommand(test: string[]): string[] | undefined {
  if (test.length === 0 || test[0] === 'NONE') return undefined;
  if (test[0] === 'CMD') {
    if (test.length < 2) throw new Error('health check CMD needs a command after it');
    return test.slice(1);
  }
  if (test[0] === 'CMD-SHELL') {
    if (test.length !== 2) throw new Error(`health check CMD-SHELL takes one command string, got ${test.length - 1}`);
    return ['/bin/sh', '-c', test[1]];
  }
  throw new Error(`health check test must start with CMD, CMD-SHELL or NONE, got "${test[0]}"`);
}

export interface HealthMonitorEvents {
  /** Emitted with 'starting' (no probe yet) on start(), then on every change. */
  status: [HealthStatus, HealthProbeResult | undefined];
  probe: [HealthProbeResult];
}

export class HealthMonitor extends EventEmitter<HealthMonitorEvents> {
  status: HealthStatus = 'starting';
  failingStreak = 0;
  readonly log: HealthProbeResult[] = [];
  private readonly argv: string[];
  private readonly cfg: Required<Omit<HealthCheckConfig, 'test'>>;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private startedAt = 0;
  private passedStartPeriod = false;

  constructor(
    private readonly exec: HealthExec,
    config: HealthCheckConfig,
  ) {
    super();
    const argv = healthCommand(config.test);
    if (!argv) throw new Error('health check is NONE: nothing to monitor');
    this.argv = argv;
    this.cfg = {
      intervalMs: config.intervalMs || HEALTH_DEFAULTS.intervalMs,
      timeoutMs: config.timeoutMs || HEALTH_DEFAULTS.timeoutMs,
      retries: config.retries || HEALTH_DEFAULTS.retries,
      startPeriodMs: config.startPeriodMs ?? HEALTH_DEFAULTS.startPeriodMs,
    };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.startedAt = Date.now();
    this.status = 'starting';
    this.emit('status', 'starting', undefined);
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => void this.probeOnce().finally(() => this.schedule()), this.cfg.intervalMs);
  }

  /** One probe, its result applied; public so the worker can force a check. */
  async probeOnce(): Promise<HealthProbeResult> {
    const start = new Date();
    let exitCode: number;
    let output: string;
    try {
      const r = await this.exec(this.argv, { timeoutMs: this.cfg.timeoutMs, maxOutputBytes: MAX_OUTPUT });
      if (r.timedOut) {
        exitCode = -1;
        output = `Health check exceeded timeout (${this.cfg.timeoutMs} ms)`;
      } else {
        exitCode = r.exitCode;
        output = (r.stdout + r.stderr).slice(0, MAX_OUTPUT);
      }
    } catch (err) {
      exitCode = -1;
      output = (err as Error).message;
    }
    const result: HealthProbeResult = { start, end: new Date(), exitCode, output };
    this.apply(result);
    return result;
  }

  private apply(result: HealthProbeResult): void {
    this.log.push(result);
    if (this.log.length > MAX_LOG) this.log.shift();
    this.emit('probe', result);
    if (result.exitCode === 0) {
      this.passedStartPeriod = true;
      this.failingStreak = 0;
      this.setStatus('healthy', result);
      return;
    }
    const inStartPeriod = !this.passedStartPeriod && result.start.getTime() - this.startedAt < this.cfg.startPeriodMs;
    if (inStartPeriod) return;
    this.failingStreak++;
    if (this.failingStreak >= this.cfg.retries) this.setStatus('unhealthy', result);
  }

  private setStatus(status: HealthStatus, result: HealthProbeResult): void {
    if (status === this.status) return;
    this.status = status;
    this.emit('status', status, result);
  }
}
