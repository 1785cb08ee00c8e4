// Key and prefix rules shared by every backend, so a key one backend accepts the other accepts too.
// Keys are `/`-separated paths; the rules keep them unambiguous as directories: no empty, `.` or
// `..` segments (so `a/../b` never aliases `b`), no leading or trailing `/`, no control characters
// (the Redis backend joins changed keys with newlines).
import { KvError } from './kv.js';

export const MAX_KEY_LENGTH = 512;
export const MAX_VALUE_BYTES = 512 * 1024; // Consul's limit
export const MIN_TTL_MS = 10;
export const MAX_TTL_MS = 24 * 60 * 60 * 1000;

function segmentProblem(path: string): string | undefined {
  if (path.length > MAX_KEY_LENGTH) return `is longer than ${MAX_KEY_LENGTH} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'contains a control character';
  if (path.startsWith('/')) return "starts with '/'";
  for (const seg of path.split('/')) {
    if (seg === '') return "has an empty segment ('//' or a trailing '/')";
    if (seg === '.' || seg === '..') return `has a '${seg}' segment`;
  }
  return undefined;
}

/** Throws a KvError naming the key unless it is a valid key. */
export function validateKey(key: unknown): string {
  if (typeof key !== 'string') throw new KvError(`invalid key ${String(key)}: must be a string`, 'invalid');
  if (key === '') throw new KvError('invalid key "": must not be empty', 'invalid');
  const problem = segmentProblem(key);
  if (problem) throw new KvError(`invalid key ${JSON.stringify(key)}: ${problem}`, 'invalid');
  return key;
}

/** A prefix is "" (everything) or a key, optionally with one trailing '/'. Returns it without the '/'. */
export function normalizePrefix(prefix: unknown): string {
  if (typeof prefix !== 'string') throw new KvError(`invalid prefix ${String(prefix)}: must be a string`, 'invalid');
  if (prefix === '' || prefix === '/') return '';
  const bare = prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  const problem = segmentProblem(bare);
  if (problem) throw new KvError(`invalid prefix ${JSON.stringify(prefix)}: ${problem}`, 'invalid');
  return bare;
}

/** Whether `key` is `prefix` itself or under it as a directory (`a/b` covers `a/b/c`, not `a/bc`). */
export function underPrefix(key: string, prefix: string): boolean {
  if (prefix === '') return true;
  return key === prefix || (key.length > prefix.length && key.startsWith(prefix) && key[prefix.length] === '/');
}

/** Whether `key` is a direct child of `prefix` (one more segment). */
export function childOf(key: string, prefix: string): boolean {
  const rest = prefix === '' ? key : underPrefix(key, prefix) && key !== prefix ? key.slice(prefix.length + 1) : undefined;
  return rest !== undefined && !rest.includes('/');
}

/** Whether a change to `key` concerns a watch on `target` (a key, or a directory when recurse). */
export function watchMatches(key: string, target: string, recurse: boolean): boolean {
  return recurse ? underPrefix(key, target) : key === target;
}

/** Consul's `?keys&separator=`: keys under prefix, deeper levels rolled up to `dir<sep>`. Sorted. */
export function rollUpKeys(keys: Iterable<string>, prefix: string, separator: string | undefined): string[] {
  const out = new Set<string>();
  const start = prefix === '' ? 0 : prefix.length + 1;
  for (const key of keys) {
    if (!underPrefix(key, prefix)) continue;
    if (separator) {
      const cut = key.indexOf(separator, start);
      out.add(cut >= 0 ? key.slice(0, cut + separator.length) : key);
    } else {
      out.add(key);
    }
  }
  return [...out].sort(compareKeys);
}

/** Byte order of the UTF-8 encoding (what Redis sorts by), so both backends list in one order. */
export function compareKeys(a: string, b: string): number {
  // UTF-16 order equals code point (= UTF-8 byte) order unless a surrogate pair is involved.
  if (!HAS_SURROGATE.test(a) && !HAS_SURROGATE.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
const HAS_SURROGATE = /[\ud800-\udfff]/;

export function validateIndex(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new KvError(`invalid ${name} ${String(value)}: must be a whole number >= 0`, 'invalid');
  }
  return value;
}

export function validateTtl(ttlMs: unknown): number {
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
    throw new KvError(`invalid session TTL ${String(ttlMs)} ms: must be a whole number of ms from ${MIN_TTL_MS} to ${MAX_TTL_MS}`, 'invalid');
  }
  return ttlMs;
}

export function validateSessionId(id: unknown): string {
  if (typeof id !== 'string' || !/^[A-Za-z0-9-]{1,64}$/.test(id)) {
    throw new KvError(`invalid session id ${JSON.stringify(id)}: must be 1-64 letters, digits or '-'`, 'invalid');
  }
  return id;
}

export function validateValue(key: string, value: unknown): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new KvError(`invalid value for key ${JSON.stringify(key)}: must be bytes (Uint8Array)`, 'invalid');
  if (value.byteLength > MAX_VALUE_BYTES) {
    throw new KvError(`value for key ${JSON.stringify(key)} is ${value.byteLength} bytes: the limit is ${MAX_VALUE_BYTES}`, 'invalid');
  }
  return value;
}

export function validateTimeout(timeoutMs: unknown): number {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0 || timeoutMs > 10 * 60 * 1000) {
    throw new KvError(`invalid watch timeout ${String(timeoutMs)} ms: must be from 0 to 600000`, 'invalid');
  }
  return timeoutMs;
}
