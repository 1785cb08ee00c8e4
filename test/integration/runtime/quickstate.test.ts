// The runtime answers inspect() from runc's files (Runc.quickState) instead of running `runc
// state`: in every state a container goes through, both must say the same.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setupRuntime } from './harness.js';

test('quickState agrees with `runc state`: created, running, paused, stopped, unknown', async (t) => {
  const { runtime, rootfs } = await setupRuntime(t);
  const same = async (id: string, status: string) => {
    const [quick, slow] = await Promise.all([runtime.runc.quickState(id), runtime.runc.state(id)]);
    assert.equal(slow?.status, status, 'runc itself');
    assert.equal(quick?.status, slow?.status, `quickState of a ${status} container`);
    if (status !== 'stopped') assert.equal(quick?.pid, slow?.pid);
  };
  assert.equal(await runtime.runc.quickState('nosuch'), undefined);
  await runtime.create({ id: 'qs', rootfs, command: ['sleep', '1000'], stopGraceMs: 100 });
  await same('qs', 'created');
  await runtime.start('qs');
  await same('qs', 'running');
  assert.equal((await runtime.inspect('qs')).status, 'running');
  await runtime.runc.run(['pause', 'qs']);
  await same('qs', 'paused');
  await runtime.runc.run(['resume', 'qs']);
  await same('qs', 'running');
  await runtime.kill('qs', 'SIGKILL');
  await runtime.wait('qs');
  await same('qs', 'stopped');
});
