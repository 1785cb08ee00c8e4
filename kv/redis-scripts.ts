// Lua scripts for the Redis KV backend. Each runs atomically on the server, which is what makes
// check-and-set, index bumping and session cleanup race-free between many clients.
//
// Layout, every name under the configured prefix P:
//   P index        string counter: the global modify index (INCR per change)
//   P k:<key>      hash {v value, ci createIndex, mi modifyIndex, li lockIndex, s session or ''}
//   P keys         sorted set of every key (all score 0), for prefix scans with ZRANGEBYLEX
//   P s:<id>       hash {ttl, node, ci} with PEXPIRE ttl: the session is alive while it exists
//   P so:<id>      set of keys the session holds (deleted with the session)
//   P sessions     set of session ids not yet cleaned up (the sweeper's list)
//   P changes      stream, one entry per index: id "<index>-0", field keys = changed keys joined
//                  by "\n" (keys cannot hold control characters). Watchers tail it.
//
// Every change bumps the index exactly once and adds exactly one stream entry, so the stream's ids
// are contiguous: a watcher that finds a gap knows history was trimmed and wakes to resync.
//
// Scripts compute key names from P instead of declaring them in KEYS, so they suit a single Redis
// (or a primary with replicas), not Redis Cluster.
//
// ARGV[1] = P, ARGV[2] = stream MAXLEN; script arguments start at ARGV[3].

const PRELUDE = `
local P = ARGV[1]
local MAXLEN = ARGV[2]
local function bump(changed)
  local idx = redis.call('INCR', P .. 'index')
  redis.call('XADD', P .. 'changes', 'MAXLEN', '~', MAXLEN, idx .. '-0', 'keys', table.concat(changed, '\\n'))
  return idx
end
local function drop(key)
  local hk = P .. 'k:' .. key
  local holder = redis.call('HGET', hk, 's')
  if holder and holder ~= '' then redis.call('SREM', P .. 'so:' .. holder, key) end
  redis.call('DEL', hk)
  redis.call('ZREM', P .. 'keys', key)
end
-- Behavior=delete: remove the session and every key it still holds, all at one index.
local function invalidate(id)
  local owned = redis.call('SMEMBERS', P .. 'so:' .. id)
  local deleted = {}
  for _, k in ipairs(owned) do
    local hk = P .. 'k:' .. k
    if redis.call('HGET', hk, 's') == id then
      redis.call('DEL', hk)
      redis.call('ZREM', P .. 'keys', k)
      table.insert(deleted, k)
    end
  end
  redis.call('DEL', P .. 'so:' .. id, P .. 's:' .. id)
  redis.call('SREM', P .. 'sessions', id)
  if #deleted > 0 then bump(deleted) end
  return #deleted
end
-- Keys at or under a directory prefix ('' = all); 'a/b' never matches 'a/bc' ('0' follows '/').
local function under(prefix, includeSelf)
  if prefix == '' then return redis.call('ZRANGE', P .. 'keys', 0, -1) end
  local out = {}
  if includeSelf and redis.call('ZSCORE', P .. 'keys', prefix) then table.insert(out, prefix) end
  for _, k in ipairs(redis.call('ZRANGEBYLEX', P .. 'keys', '[' .. prefix .. '/', '(' .. prefix .. '0')) do
    table.insert(out, k)
  end
  return out
end
local function current()
  return tonumber(redis.call('GET', P .. 'index') or '0')
end
`;

/** ARGV: key, value, cas ('' = none), session ('' = none). Returns {1, index} | {0} refused | {-1} no session. */
export const PUT = `${PRELUDE}
local key, val, cas, sess = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local hk = P .. 'k:' .. key
local cur = redis.call('HMGET', hk, 'ci', 'mi', 'li', 's')
local exists = cur[2] ~= false
if cas ~= '' then
  local c = tonumber(cas)
  if c == 0 then
    if exists then return {0} end
  elseif (not exists) or tonumber(cur[2]) ~= c then
    return {0}
  end
end
local li = exists and tonumber(cur[3]) or 0
local holder = exists and cur[4] or ''
if sess ~= '' then
  if redis.call('EXISTS', P .. 's:' .. sess) == 0 then return {-1} end
  if holder ~= '' and holder ~= sess then return {0} end
  if holder ~= sess then li = li + 1 end
  holder = sess
  redis.call('SADD', P .. 'so:' .. sess, key)
end
local idx = bump({key})
local ci = exists and cur[1] or tostring(idx)
redis.call('HSET', hk, 'v', val, 'ci', ci, 'mi', idx, 'li', li, 's', holder)
redis.call('ZADD', P .. 'keys', 0, key)
return {1, idx}
`;

/** ARGV: key, recurse ('1'/'0'), cas ('' = none). Returns {1} | {0} refused by cas. */
export const DELETE = `${PRELUDE}
local key, recurse, cas = ARGV[3], ARGV[4], ARGV[5]
if recurse == '1' then
  local doomed = under(key, true)
  for _, k in ipairs(doomed) do drop(k) end
  if #doomed > 0 then bump(doomed) end
  return {1}
end
local mi = redis.call('HGET', P .. 'k:' .. key, 'mi')
if cas ~= '' and ((not mi) or tonumber(mi) ~= tonumber(cas)) then return {0} end
if not mi then return {1} end
drop(key)
bump({key})
return {1}
`;

/**
 * ARGV: prefix or key, mode ('key' | 'recurse' | 'children' | 'keys'). Returns {index, ...} then,
 * per entry, key, value, ci, mi, li, session (mode 'keys': key names only). One script, so the
 * index and the entries are one consistent snapshot.
 */
export const READ = `${PRELUDE}
local target, mode = ARGV[3], ARGV[4]
local out = {current()}
local names
if mode == 'key' then names = {target}
elseif mode == 'recurse' or mode == 'keys' then names = under(target, true)
else
  names = {}
  local skip = (target == '') and 0 or (#target + 1)
  for _, k in ipairs(under(target, false)) do
    if not string.find(k, '/', skip + 1, true) then table.insert(names, k) end
  end
end
if mode == 'keys' then
  for _, k in ipairs(names) do table.insert(out, k) end
  return out
end
for _, k in ipairs(names) do
  local f = redis.call('HMGET', P .. 'k:' .. k, 'v', 'ci', 'mi', 'li', 's')
  if f[3] then
    table.insert(out, k)
    for i = 1, 5 do table.insert(out, f[i]) end
  end
end
return out
`;

/** ARGV: id, ttlMs, node. Returns 1, or 0 if the id is taken. */
export const SESSION_CREATE = `${PRELUDE}
local id, ttl, node = ARGV[3], ARGV[4], ARGV[5]
local sk = P .. 's:' .. id
if redis.call('EXISTS', sk) == 1 then return 0 end
redis.call('HSET', sk, 'ttl', ttl, 'node', node, 'ci', current())
redis.call('PEXPIRE', sk, ttl)
redis.call('SADD', P .. 'sessions', id)
return 1
`;

/** ARGV: id. Returns 1, or 0 if the session is gone (its keys are cleaned up on the way). */
export const SESSION_RENEW = `${PRELUDE}
local id = ARGV[3]
local ttl = redis.call('HGET', P .. 's:' .. id, 'ttl')
if not ttl then
  if redis.call('SISMEMBER', P .. 'sessions', id) == 1 then invalidate(id) end
  return 0
end
redis.call('PEXPIRE', P .. 's:' .. id, ttl)
return 1
`;

/** ARGV: id. Destroys the session (whether or not it already expired) and deletes its keys. */
export const SESSION_DESTROY = `${PRELUDE}
return invalidate(ARGV[3])
`;

/** Cleans up every session whose key has expired. Returns how many. */
export const SWEEP = `${PRELUDE}
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', P .. 'sessions')) do
  if redis.call('EXISTS', P .. 's:' .. id) == 0 then
    invalidate(id)
    n = n + 1
  end
end
return n
`;
