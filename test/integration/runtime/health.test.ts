// The health monitor against a real container: healthy while the check passes, unhealthy after
// `retries` failures once it starts failing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { HealthMonitor, type HealthStatus } from '../../../agent/runtime/health.js';
import { runExec } from '../../../agent/runtime/runtime.js';
import { setupRuntime } from './harness.js';

test('health monitor: starting → healthy → unhealthy when the check begins to fail', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  await runtime.create({ id: 'svc', rootfs, command: ['sh', '-c', 'touch /tmp/ok; exec sleep 1000'] });
  await runtime.start('svc');
  const monitor = new HealthMonitor((argv, opts) => runExec(runtime, 'svc', argv, opts), {
    test: ['CMD-SHELL', 'test -e /tmp/ok'],
    intervalMs: 50,
    timeoutMs: 5000,
    retries: 2,
  });
  t.after(() => monitor.stop());
  const seen: HealthStatus[] = [];
  monitor.on('status', (s) => seen.push(s));
  monitor.start();
  assert.deepEqual(seen, ['starting']);
  const healthy = once(monitor, 'status');
  assert.equal((await healthy)[0], 'healthy');
  const unhealthy = once(monitor, 'status');
  await runExec(runtime, 'svc', ['rm', '/tmp/ok']);
  const [status, result] = (await unhealthy) as [HealthStatus, { exitCode: number } | undefined];
  assert.equal(status, 'unhealthy');
  assert.equal(result?.exitCode, 1);
  assert.equal(monitor.failingStreak >= 2, true);
  assert.deepEqual(seen, ['starting', 'healthy', 'unhealthy']);
  monitor.stop();
  await runtime.stop('svc', { graceMs: 100 });
});
