"""The Lua scripts of the Redis audit log; each runs atomically on one tenant's slot.

Rules:
- a head is the hash {seq, hash (hex, '' at seq 0), at (ISO 8601), kid, mac (hex)}: kid
  and mac only when signed; scripts answer its fields in that order, absent ones nil;
- `audit_append` appends and moves the head only from the head the client chained from,
  so concurrent writers never fork the chain (see `redis_audit`); a refusal answers the
  current head whole, for the client to check its MAC before chaining from it;
- reads are pages (`audit_page`: the head, the stream's length and up to COUNT entries
  from an id) so that no script holds the server for a whole stream; the page that ends
  the stream comes with the head of the same instant;
- `audit_sign` signs the head by compare-and-set: only if it is still the one verified,
  and still unsigned.
"""

from __future__ import annotations

import hashlib

APPEND = """
-- KEYS: stream, head, waiting (writers by first refusal), seen (writer -> last try, ms)
-- ARGV: writer, expected seq, expected hash, new seq, new hash, waiter-gone ms, the new
-- head's time, key id and MAC ('' when unsigned), then per entry: its number of field
-- and value arguments, then those arguments.
-- Answers {1} (appended, or already there), {0, seq, hash, now, at, kid, mac} (refused:
-- the head moved or an older writer waits), {-1} (entries but no head).
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local me = ARGV[1]
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash', 'at', 'kid', 'mac')
if not head[1] then
  if redis.call('XLEN', KEYS[1]) > 0 then return {-1} end
  head = {'0', '', '', '', ''}
end
local function done()
  redis.call('ZREM', KEYS[3], me)
  redis.call('HDEL', KEYS[4], me)
  return {1}
end
if head[1] == ARGV[4] and head[2] == ARGV[5] then return done() end
local first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
while first and first ~= me
    and (tonumber(redis.call('HGET', KEYS[4], first)) or 0) < now - tonumber(ARGV[6]) do
  redis.call('ZREM', KEYS[3], first)
  redis.call('HDEL', KEYS[4], first)
  first = redis.call('ZRANGE', KEYS[3], 0, 0)[1]
end
if (first and first ~= me) or head[1] ~= ARGV[2] or head[2] ~= ARGV[3] then
  redis.call('ZADD', KEYS[3], 'NX', now, me)
  redis.call('HSET', KEYS[4], me, now)
  return {0, head[1], head[2] or '', now, head[3] or '', head[4] or '', head[5] or ''}
end
local i = 10
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], '*', unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
redis.call('HSET', KEYS[2], 'seq', ARGV[4], 'hash', ARGV[5], 'at', ARGV[7])
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[2], 'kid', ARGV[8], 'mac', ARGV[9])
else
  redis.call('HDEL', KEYS[2], 'kid', 'mac')
end
return done()
"""
PAGE = """
-- KEYS: stream, head. ARGV: first id ('-', or '(' and the last id read), count.
-- The head, the stream's length and up to `count` entries, in one atomic read.
return {redis.call('HMGET', KEYS[2], 'seq', 'hash', 'at', 'kid', 'mac'),
        redis.call('XLEN', KEYS[1]),
        redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])}
"""
TIP = """
-- KEYS: stream, head. The head and the stream's last entry, in one atomic read.
return {redis.call('HMGET', KEYS[2], 'seq', 'hash', 'at', 'kid', 'mac'),
        redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)}
"""
SIGN = """
-- KEYS: head. ARGV: seq, hash (hex), at, kid, mac. Sign the head if it is still that
-- (seq, hash) and unsigned; answers 1 if signed, else 0.
local head = redis.call('HMGET', KEYS[1], 'seq', 'hash', 'mac')
if head[1] ~= ARGV[1] or head[2] ~= ARGV[2] or head[3] then return 0 end
redis.call('HSET', KEYS[1], 'at', ARGV[3], 'kid', ARGV[4], 'mac', ARGV[5])
return 1
"""
SCRIPTS = {"audit_append": APPEND, "audit_page": PAGE, "audit_tip": TIP, "audit_sign": SIGN}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}
