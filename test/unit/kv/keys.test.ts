// Key rules and directory matching shared by every KV backend.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { childOf, compareKeys, normalizePrefix, rollUpKeys, underPrefix, validateKey, watchMatches } from '../../../kv/keys.js';

test('valid keys pass; each invalid key is refused naming it and the reason', () => {
  for (const key of ['a', 'a/b', 'endpoints/net-1/ep_2', 'a..b', 'ü/ß']) assert.equal(validateKey(key), key);
  const bad: [string, RegExp][] = [
    ['', /key "": must not be empty/],
    ['a/../b', /key "a\/\.\.\/b": has a '\.\.' segment/],
    ['..', /has a '\.\.' segment/],
    ['a/./b', /has a '\.' segment/],
    ['/a', /starts with '\/'/],
    ['a/', /empty segment/],
    ['a//b', /empty segment/],
    ['a\tb', /control character/],
    ['x'.repeat(513), /longer than 512/],
  ];
  for (const [key, pattern] of bad) assert.throws(() => validateKey(key), pattern, JSON.stringify(key));
});

test('a prefix is a directory: a/b covers a/b and a/b/..., never a/bc', () => {
  assert.equal(normalizePrefix('a/b/'), 'a/b');
  assert.equal(normalizePrefix(''), '');
  assert.throws(() => normalizePrefix('a/../b'), /prefix "a\/\.\.\/b"/);
  assert.equal(underPrefix('a/b', 'a/b'), true);
  assert.equal(underPrefix('a/b/c/d', 'a/b'), true);
  assert.equal(underPrefix('a/bc', 'a/b'), false);
  assert.equal(underPrefix('a', 'a/b'), false);
  assert.equal(underPrefix('anything', ''), true);
  assert.equal(childOf('a/b/c', 'a/b'), true);
  assert.equal(childOf('a/b/c/d', 'a/b'), false);
  assert.equal(childOf('a/b', 'a/b'), false);
  assert.equal(childOf('top', ''), true);
  assert.equal(watchMatches('a/b/c', 'a/b', true), true);
  assert.equal(watchMatches('a/b/c', 'a/b', false), false);
});

test('keys roll up below the separator, like Consul', () => {
  const keys = ['a/b', 'a/b/c', 'a/b/d/e', 'a/bc', 'z'];
  assert.deepEqual(rollUpKeys(keys, 'a', '/'), ['a/b', 'a/b/', 'a/bc']);
  assert.deepEqual(rollUpKeys(keys, '', '/'), ['a/', 'z']);
  assert.deepEqual(rollUpKeys(keys, 'a/b', undefined), ['a/b', 'a/b/c', 'a/b/d/e']);
});

test('keys sort by UTF-8 bytes, the order Redis uses', () => {
  const keys = ['\u{1F600}', '\uFFFD', 'b', 'a/b', 'a'];
  const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  assert.deepEqual([...keys].sort(compareKeys), byBytes);
  assert.notDeepEqual([...keys].sort(), byBytes, 'plain JS sort differs here, so the test can fail');
});
