// Blocking-watch plumbing shared by the KV backends.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChangeLog, WatchHub } from '../../../kv/watchhub.js';

test('a waiter wakes only for a matching key at a higher index', async () => {
  const hub = new WatchHub();
  const handle = hub.wait('net/a', true, 10, undefined);
  handle.startTimeout(60_000);
  hub.publish(11, ['net/ab']); // sibling directory
  hub.publish(10, ['net/a/x']); // not past the index
  hub.publish(12, ['net']); // the parent
  assert.equal(hub.size, 1);
  hub.publish(13, ['other', 'net/a/x/y']);
  assert.equal(await handle.done, 'change');
  assert.equal(hub.size, 0);
});

test('a waiter times out only once its timeout is started, and abort rejects with the reason', async () => {
  const hub = new WatchHub();
  const timed = hub.wait('k', false, 1);
  timed.startTimeout(1);
  assert.equal(await timed.done, 'timeout');
  const controller = new AbortController();
  const aborted = hub.wait('k', false, 1, controller.signal);
  controller.abort(new Error('bye'));
  await assert.rejects(aborted.done, /bye/);
  const closing = hub.wait('k', false, 1);
  hub.close();
  await assert.rejects(closing.done, /closed/);
  await assert.rejects(hub.wait('k', false, 1).done, /closed/);
});

test('the change log answers "changed since N", and says yes when N is older than it remembers', () => {
  const log = new ChangeLog(5, 3);
  assert.equal(log.changedSince('k', false, 5), false);
  assert.equal(log.changedSince('k', false, 4), true, 'before what it knows');
  log.record(6, ['k']);
  log.record(8, ['dir/x']);
  assert.equal(log.changedSince('k', false, 5), true);
  assert.equal(log.changedSince('k', false, 6), false);
  assert.equal(log.changedSince('dir', true, 7), true);
  assert.equal(log.changedSince('di', true, 7), false);
  log.record(9, ['a']);
  log.record(10, ['b']); // capacity 3: forgets index 6
  assert.equal(log.changedSince('zzz', false, 5), true, 'the change at 6 is forgotten: cannot rule a change out');
  assert.equal(log.changedSince('zzz', false, 6), false, 'everything after 6 is still remembered');
});
