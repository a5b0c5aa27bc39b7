"""The Lua scripts of the Redis store: each runs atomically on one shard (one hash slot).

Rules:
- KEYS are the shard's registry, expiry index and expiring set; item and index keys are
  built inside the script from the shard's key base (same hash tag, same slot);
- an item's record is one string (see `_keys` for where), so that a get is one GET:
  "<created> <updated> <expires> <ttl minutes>", a newline, the value's JSON; created
  and updated are ISO 8601 UTC texts (quick to parse in Python), expires integer
  microseconds, and both TTL fields '-' without a TTL; records are read in index order
  by MGET, up to `CHUNK` at a time;
- times are integer microseconds of the store's clock, passed in ARGV and compared as
  numbers; scripts return them as strings (Redis would truncate Lua numbers);
- filters are evaluated here, with the functions of `_lua_prelude`;
- the write script checks, before writing anything, the batch's net effect on each
  tenant with limits (see `_quota`), and refuses the whole batch if it would take one
  over; it keeps every tenant's usage, limits or not;
- vectors are float32 blobs: unit-length for cosine, so a dot product is the cosine
  similarity; as the model returned them for inner product (the dot product) and l2
  (minus the Euclidean distance), LangGraph's scores; an item scores its best field
  (max pooling).
"""

from __future__ import annotations

import hashlib

from langmem_prod.store.redis._lua_prelude import PRELUDE
from langmem_prod.store.redis._quota import QUOTA_ERROR

# The quota check of the write script: the batch's net effect on each tenant with limits.
QUOTA_CHECK = r"""
-- How many expired items a refused write sweeps from its shard before checking again.
local PRUNE = 1000

-- The limits of the tenants a batch writes to ({max_items, max_bytes}, or false for
-- none), and the writes of those with limits: {tenant, tag, size or false}.
local function limited_writes(base, first)
  local limits, writes, i = {}, {}, first
  while i <= #ARGV do
    local kind, ns = ARGV[i], ARGV[i + 1]
    local tenant = tenant_of(ns)
    if tenant then
      if limits[tenant] == nil then
        local q = redis.call('HMGET', base .. 'q:' .. tenant, 'max_items', 'max_bytes')
        local max_items, max_bytes = tonumber(q[1] or ''), tonumber(q[2] or '')
        limits[tenant] = (max_items or max_bytes) and {max_items, max_bytes} or false
      end
      if limits[tenant] then
        local size = kind == 'p' and tonumber(ARGV[i + 9]) or false
        writes[#writes + 1] = {tenant, ns .. '\0' .. ARGV[i + 3], size}
      end
    end
    if kind == 'd' then i = i + 4 else i = i + 10 end
  end
  return limits, writes
end

local function limit_text(n)
  if n then return string.format('%d', n) end
  return 'unlimited'
end

-- Why the writes would take a tenant over its limits (the error text), or nil. Like
-- the Postgres trigger, only a write that adds items (or bytes) is held to that limit.
local function refusal(base, limits, writes)
  local net, pending = {}, {}
  for _, w in ipairs(writes) do
    local tenant, tag, size = w[1], w[2], w[3]
    local old = pending[tag]
    if old == nil then old = tonumber(redis.call('HGET', base .. 'u:' .. tenant, tag) or '0') end
    pending[tag] = size or 0
    local d = net[tenant] or {0, 0}
    net[tenant] = d
    d[1] = d[1] + (size and 1 or 0) - (old > 0 and 1 or 0)
    d[2] = d[2] + (size or 0) - old
  end
  for tenant, d in pairs(net) do
    local max_items, max_bytes = limits[tenant][1], limits[tenant][2]
    local items = redis.call('HLEN', base .. 'u:' .. tenant) + d[1]
    local bytes = tonumber(redis.call('HGET', base .. 'q:' .. tenant, 'bytes') or '0') + d[2]
    if (d[1] > 0 and max_items and items > max_items)
      or (d[2] > 0 and max_bytes and bytes > max_bytes) then
      return string.format('%s tenant %s is over its quota: %d of %s items, %d of %s bytes',
        QUOTA_ERROR, tenant, items, limit_text(max_items), bytes, limit_text(max_bytes))
    end
  end
  return nil
end
"""

# KEYS: registry, expiry, expiring. ARGV: now, now as ISO text, base, has_index, then one
#   group per write:
#   put:    'p', ns, member, key, value, ttl_ms|'', expires|'-', ttl_minutes|'-', vectors
#           (the unit float32 blobs of its indexed fields, concatenated; '' for none),
#           size (of the value, see `_quota.jsonb_size`; '' outside "tenants")
#   delete: 'd', ns, member, key
# Returns 1, or refuses the whole batch, writing nothing of it, with an error reply
#   "<QUOTA_ERROR> tenant <id> is over its quota: ..." (expired items of the shard may be
#   swept first, to make room).
WRITE = (
    PRELUDE
    + f"local QUOTA_ERROR = '{QUOTA_ERROR}'\n"
    + QUOTA_CHECK
    + r"""
local reg, exp, ttlns = KEYS[1], KEYS[2], KEYS[3]
local now, now_iso, base, has_index = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local limits, limited = limited_writes(base, 5)
if #limited > 0 then
  local why = refusal(base, limits, limited)
  if why and sweep(base, tonumber(now), PRUNE, reg, exp, ttlns) > 0 then
    why = refusal(base, limits, limited)
  end
  if why then return redis.error_reply(why) end
end
local i = 5
while i <= #ARGV do
  local kind, ns, member, key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if kind == 'd' then
    remove(base, ns, member, key, reg, exp, ttlns)
    i = i + 4
  else
    local value, ttl_ms, expires, minutes = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
    local vectors = ARGV[i + 8]
    local tag = ns .. '\0' .. key
    local rec, vec = base .. 'r:' .. tag, base .. 'v:' .. tag
    local old = redis.call('GET', rec)
    local created = old and string.match(old, '^%S+') or now_iso
    local record = created .. ' ' .. now_iso .. ' ' .. expires .. ' ' .. minutes .. '\n' .. value
    if ttl_ms ~= '' then
      redis.call('SET', rec, record, 'PX', ttl_ms)
      redis.call('ZADD', exp, expires, tag)
      redis.call('SADD', ttlns, member)
    else
      redis.call('SET', rec, record)
      redis.call('ZREM', exp, tag)
    end
    if vectors ~= '' then
      if ttl_ms ~= '' then
        redis.call('SET', vec, vectors, 'PX', ttl_ms)
      else
        redis.call('SET', vec, vectors)
      end
    elseif has_index then
      redis.call('DEL', vec)
    end
    redis.call('ZADD', base .. 'n:' .. ns, '-' .. now, key)
    redis.call('ZADD', reg, 0, member)
    if ARGV[i + 9] ~= '' then account(base, ns, tag, tonumber(ARGV[i + 9])) end
    i = i + 10
  end
end
return 1
"""
)

# KEYS: registry, expiring. ARGV: now, base, lex min, lex max, conditions (JSON), need,
#   query vector (float32 blob, or ''), dims, metric ('dot' or 'l2').
# Returns the shard's first `need` rows as one string (one reply to parse, not four per
# row) of NUL-separated fields: sort score (the similarity, or the update time),
# namespace, key, record. No field can hold a NUL. With a query, items without vectors
# follow the scored ones, newest first, their sort score "u" and the update time.
SEARCH = (
    PRELUDE
    + r"""
local now, base = tonumber(ARGV[1]), ARGV[2]
local conds = cjson.decode(ARGV[5])
local filtered, passes = #conds > 0, record_test(conds)
local need, query, dims = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local l2 = ARGV[9] == 'l2'
local fmt, q = nil, nil
if query ~= '' then
  fmt = '<' .. string.rep('f', dims)
  q = {struct.unpack(fmt, query)}
end
-- The best similarity of an item's vectors (max pooling), or nil without vectors.
local function best_score(blob)
  local best, pos = nil, 1
  while blob and pos < #blob do
    local v = {struct.unpack(fmt, blob, pos)}
    pos = v[dims + 1]
    local s = 0
    if l2 then
      for d = 1, dims do local x = q[d] - v[d]; s = s + x * x end
      s = -math.sqrt(s)
    else
      for d = 1, dims do s = s + q[d] * v[d] end
    end
    if best == nil or s > best then best = s end
  end
  return best
end
local rows, rest = {}, {}
for _, member in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4])) do
  local ns = ns_text(member)
  local idx, start, found = base .. 'n:' .. ns, 0, 0
  local recs, vecs = base .. 'r:' .. ns .. '\0', base .. 'v:' .. ns .. '\0'
  local expiring = redis.call('SISMEMBER', KEYS[2], member) == 1
  -- Newest first, ties by key: without a query the first `need` matches are the answer,
  -- so read `need` records first, then more at a time (all of them for a query).
  local size = CHUNK
  if query == '' then size = math.min(need, CHUNK) end
  while query ~= '' or found < need do
    local keys = redis.call('ZRANGE', idx, start, start + size - 1)
    if #keys == 0 then break end
    local got, hits = records(recs, keys), {}
    for j, d in ipairs(got) do
      if d and (not expiring or unexpired(select(3, header(d)), now))
        and (not filtered or passes(d)) then
        hits[#hits + 1] = j
        if query == '' then
          -- The update time in µs, from the index (the record holds it as ISO text).
          local updated = string.format('%d', -tonumber(redis.call('ZSCORE', idx, keys[j])))
          table.insert(rows, {updated, ns, keys[j], d})
          found = found + 1
          if found >= need then break end
        end
      end
    end
    if query ~= '' and #hits > 0 then
      local hit_keys = {}
      for n, j in ipairs(hits) do hit_keys[n] = keys[j] end
      for n, blob in ipairs(records(vecs, hit_keys)) do
        local s = best_score(blob)
        -- Six decimals: float32 vectors carry no more, and ties then break by key.
        if s then
          table.insert(rows, {string.format('%.6f', s), ns, hit_keys[n], got[hits[n]]})
        else
          local updated = -tonumber(redis.call('ZSCORE', idx, hit_keys[n]))
          table.insert(rest, {'u' .. string.format('%d', updated), ns, hit_keys[n],
            got[hits[n]], updated})
        end
      end
    end
    start = start + size
    size = math.min(size * 4, CHUNK)
  end
end
table.sort(rows, function(a, b)
  local x, y = tonumber(a[1]), tonumber(b[1])
  if x ~= y then return x > y end
  if a[2] ~= b[2] then return bytecmp(a[2], b[2]) < 0 end
  return bytecmp(a[3], b[3]) < 0
end)
if #rows < need and #rest > 0 then
  table.sort(rest, function(a, b)
    if a[5] ~= b[5] then return a[5] > b[5] end
    if a[2] ~= b[2] then return bytecmp(a[2], b[2]) < 0 end
    return bytecmp(a[3], b[3]) < 0
  end)
  for r = 1, math.min(#rest, need - #rows) do table.insert(rows, rest[r]) end
end
local out = {}
for r = 1, math.min(#rows, need) do
  for c = 1, 4 do table.insert(out, rows[r][c]) end
end
return table.concat(out, '\0')
"""
)

# KEYS: registry, expiring. ARGV: now, base, lex min, lex max, match (JSON:
#   {d = min depth, s = [[pos, label]...], e = [[pos from end, label]...]}), max depth
#   (0: none), need. Returns distinct (truncated) namespaces as NUL-joined labels, in order.
LIST = (
    PRELUDE
    + r"""
local now, base = tonumber(ARGV[1]), ARGV[2]
local m = cjson.decode(ARGV[5])
local max_depth, need = tonumber(ARGV[6]), tonumber(ARGV[7])
local out, last = {}, nil
for _, member in ipairs(redis.call('ZRANGEBYLEX', KEYS[1], ARGV[3], ARGV[4])) do
  local labels = split(member, '\0')
  local depth, ok = #labels, #labels >= m.d
  if ok then for _, pl in ipairs(m.s) do
    if labels[pl[1]] ~= pl[2] then ok = false; break end
  end end
  if ok then for _, pl in ipairs(m.e) do
    if labels[depth - pl[1] + 1] ~= pl[2] then ok = false; break end
  end end
  if ok and redis.call('SISMEMBER', KEYS[2], member) == 1 then
    ok = any_live(base, ns_text(member), now)
  end
  if ok then
    local shown = member
    if max_depth > 0 and depth > max_depth then
      shown = table.concat(labels, '\0', 1, max_depth)
    end
    if shown ~= last then
      table.insert(out, shown)
      last = shown
      if #out >= need then break end
    end
  end
end
return out
"""
)

# KEYS: registry, expiry, expiring. ARGV: now, base, limit. Returns how many were deleted.
SWEEP = (
    PRELUDE
    + r"""
return sweep(ARGV[2], tonumber(ARGV[1]), ARGV[3], KEYS[1], KEYS[2], KEYS[3])
"""
)

# KEYS: registry, expiry, expiring. ARGV: base, stats ('1' or '0'), then groups of
#   ns, key, hits, at, refresh ('1' or '0'). Returns how many items were touched.
# Access statistics: the namespace's stats hash maps a key to "<hits> <last read µs>".
FLUSH = (
    PRELUDE
    + r"""
local base, stats = ARGV[1], ARGV[2] == '1'
local touched = 0
for i = 3, #ARGV, 5 do
  local ns, key, hits, at, refresh = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local tag = ns .. '\0' .. key
  local rec = base .. 'r:' .. tag
  local d = redis.call('GET', rec)
  if d then
    touched = touched + 1
    if stats then
      local counts = base .. 's:' .. ns
      local seen = redis.call('HGET', counts, key)
      local count, last = 0, 0
      if seen then
        local a, b = string.match(seen, '^(%d+) (%d+)$')
        count, last = tonumber(a), tonumber(b)
      end
      redis.call('HSET', counts, key, string.format('%d %d', count + tonumber(hits),
        math.max(last, tonumber(at))))
    end
    local c, u, e, minutes, from = header(d)
    if refresh == '1' and minutes ~= '-' then
      local ttl_us = math.floor(tonumber(minutes) * 60000000)
      local expires = tonumber(at) + ttl_us
      if expires > tonumber(e) then
        local ex, ttl_ms = string.format('%d', expires), math.floor(ttl_us / 1000)
        redis.call('SET', rec, c .. ' ' .. u .. ' ' .. ex .. ' ' .. minutes .. '\n'
          .. string.sub(d, from), 'PX', ttl_ms)
        redis.call('PEXPIRE', base .. 'v:' .. tag, ttl_ms)
        redis.call('ZADD', KEYS[2], ex, tag)
      end
    end
  end
end
return touched
"""
)

# Compare-and-set of stored values (see `_stored`).
REPLACE = (
    PRELUDE
    + r"""
-- KEYS: records; ARGV: the shard's key base, then per record its namespace, key, old
-- JSON, new JSON and new size ('' outside tenants). Returns how many were replaced.
local base = ARGV[1]
local replaced = 0
for i, key in ipairs(KEYS) do
  local j = 2 + (i - 1) * 5
  local record = redis.call('GET', key)
  if record then
    local cut = string.find(record, '\n', 1, true)
    if string.sub(record, cut + 1) == ARGV[j + 2] then
      redis.call('SET', key, string.sub(record, 1, cut) .. ARGV[j + 3], 'KEEPTTL')
      if ARGV[j + 4] ~= '' then
        account(base, ARGV[j], ARGV[j] .. '\0' .. ARGV[j + 1], tonumber(ARGV[j + 4]))
      end
      replaced = replaced + 1
    end
  end
end
return replaced
"""
)

# KEYS: the tenant's sizes hash, its usage hash. ARGV: base, then groups of ns, key, size.
# Counts the items written before usage was kept (see `_quota_gen.count_gen`): each one
# whose record still exists and has no size yet. Returns how many were counted.
BACKFILL = r"""
local base, counted = ARGV[1], 0
for i = 2, #ARGV, 3 do
  local tag = ARGV[i] .. '\0' .. ARGV[i + 1]
  if redis.call('EXISTS', base .. 'r:' .. tag) == 1
    and redis.call('HSETNX', KEYS[1], tag, ARGV[i + 2]) == 1 then
    redis.call('HINCRBY', KEYS[2], 'bytes', ARGV[i + 2])
    counted = counted + 1
  end
end
return counted
"""

SCRIPTS: dict[str, str] = {
    "write": WRITE,
    "search": SEARCH,
    "list": LIST,
    "sweep": SWEEP,
    "flush": FLUSH,
    "replace": REPLACE,
    "backfill": BACKFILL,
}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}
