// shoald --kv: the Redis url a founded cluster records for its agents, checked when the daemon
// starts so a typo is refused by name rather than found by the first agent.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { configFromFlags, daemonFlags } from '../../../daemon/config.js';
import { parseFlags, UsageError } from '../../../util/flags.js';

const config = (...argv: string[]) => configFromFlags(parseFlags(argv, daemonFlags).flags);

test('--kv is empty (embedded) by default and takes a redis:// url', () => {
  assert.equal(config().kvUrl, '');
  assert.equal(config('--kv', 'redis://10.0.0.5:6380/2?prefix=net/').kvUrl, 'redis://10.0.0.5:6380/2?prefix=net/');
});

test('a --kv that is not a redis url is refused naming the value', () => {
  assert.throws(() => config('--kv', 'http://h:1'), (err: Error) => err instanceof UsageError && /--kv.*"http:\/\/h:1"/.test(err.message));
  assert.throws(() => config('--kv', 'redis://h:1/x'), (err: Error) => err instanceof UsageError && /database "x"/.test(err.message));
});
