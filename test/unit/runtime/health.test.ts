// HealthMonitor rules against a scripted exec: each probe takes the next scripted result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthMonitor, healthCommand, type HealthStatus } from '../../../agent/runtime/health.js';
import type { ExecResult } from '../../../agent/runtime/runtime.js';

function scripted(results: (number | 'timeout' | 'error')[]): { exec: (argv: string[]) => Promise<ExecResult>; calls: string[][] } {
  const calls: string[][] = [];
  let i = 0;
  return {
    calls,
    exec: async (argv) => {
      calls.push(argv);
      const r = results[Math.min(i++, results.length - 1)];
      if (r === 'error') throw new Error('container is not running');
      if (r === 'timeout') return { exitCode: 137, stdout: '', stderr: '', timedOut: true };
      return { exitCode: r, stdout: `probe ${i}`, stderr: '', timedOut: false };
    },
  };
}

test('CMD and CMD-SHELL forms; NONE means no check; bad forms are named', () => {
  assert.deepEqual(healthCommand(['CMD', 'curl', '-f', 'x']), ['curl', '-f', 'x']);
  assert.deepEqual(healthCommand(['CMD-SHELL', 'curl -f x || exit 1']), ['/bin/sh', '-c', 'curl -f x || exit 1']);
  assert.equal(healthCommand(['NONE']), undefined);
  assert.throws(() => healthCommand(['RUN', 'x']), /got "RUN"/);
  assert.throws(() => new HealthMonitor(async () => ({ exitCode: 0, stdout: '', stderr: '', timedOut: false }), { test: ['NONE'] }), /NONE/);
});

test('healthy on success; unhealthy only after `retries` consecutive failures; a success resets', async () => {
  const s = scripted([0, 1, 1, 0, 1, 'timeout', 'error']);
  const m = new HealthMonitor(s.exec, { test: ['CMD', 'check'], retries: 2 });
  const seen: HealthStatus[] = [];
  m.on('status', (st) => seen.push(st));
  assert.equal(m.status, 'starting');
  await m.probeOnce();
  assert.equal(m.status, 'healthy');
  await m.probeOnce();
  assert.equal(m.status, 'healthy');
  await m.probeOnce();
  assert.equal(m.status, 'unhealthy');
  await m.probeOnce();
  assert.equal(m.status, 'healthy');
  await m.probeOnce();
  const timedOut = await m.probeOnce();
  assert.equal(m.status, 'unhealthy');
  assert.match(timedOut.output, /exceeded timeout/);
  const failed = await m.probeOnce();
  assert.equal(failed.exitCode, -1);
  assert.match(failed.output, /not running/);
  assert.deepEqual(seen, ['healthy', 'unhealthy', 'healthy', 'unhealthy']);
  assert.equal(m.log.length, 5);
  assert.deepEqual(s.calls[0], ['check']);
});

test('failures inside the start period do not count; the first success ends it', async () => {
  const s = scripted([1, 1, 1, 0, 1]);
  const m = new HealthMonitor(s.exec, { test: ['CMD', 'check'], retries: 1, startPeriodMs: 3_600_000, intervalMs: 3_600_000 });
  m.start();
  m.stop();
  await m.probeOnce();
  await m.probeOnce();
  await m.probeOnce();
  assert.equal(m.status, 'starting');
  assert.equal(m.failingStreak, 0);
  await m.probeOnce();
  assert.equal(m.status, 'healthy');
  await m.probeOnce();
  assert.equal(m.status, 'unhealthy');
});
