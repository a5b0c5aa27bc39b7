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
- filters are evaluated here, on cjson-decoded values, with the rules of
  `store._filter`: JSON-typed equality, numbers ordered as numbers, strings in byte
  (= code point) order whatever the server locale, missing paths never equal; empty
  arrays are told from empty objects by a marker (`decode`), as cjson cannot;
- vectors are unit-length float32 blobs, so a dot product is the cosine similarity, and
  an item scores its best field (max pooling).
"""

from __future__ import annotations

import hashlib

PRELUDE = r"""
local MISSING = {}
-- cjson decodes [] and {} to the same empty table; an empty array is marked instead by
-- this string, which no stored value can hold (values never contain NUL).
local EMPTY = '\0[]'

local function is_array(t)
  return type(next(t)) == 'number'
end

local function decode(text)
  if not string.find(text, '[]', 1, true) then return cjson.decode(text) end
  local out, pos, i, in_str = {}, 1, 1, false
  while true do
    local j
    if in_str then
      j = string.find(text, '["\\]', i)
      if not j then break end
      if string.sub(text, j, j) == '\\' then i = j + 2 else in_str = false; i = j + 1 end
    else
      j = string.find(text, '["%[]', i)
      if not j then break end
      if string.sub(text, j, j) == '"' then
        in_str = true; i = j + 1
      elseif string.sub(text, j + 1, j + 1) == ']' then
        table.insert(out, string.sub(text, pos, j - 1))
        table.insert(out, '"\\u0000[]"')
        pos = j + 2; i = j + 2
      else
        i = j + 1
      end
    end
  end
  table.insert(out, string.sub(text, pos))
  return cjson.decode(table.concat(out))
end

local function at_path(doc, path)
  local cur = doc
  for i = 1, #path do
    if type(cur) ~= 'table' then return MISSING end
    local seg, nxt = path[i], nil
    if next(cur) ~= nil and is_array(cur) then
      if not string.match(seg, '^%-?%d+$') then return MISSING end
      local idx = tonumber(seg)
      if idx < 0 then idx = #cur + idx end
      nxt = cur[idx + 1]
    else
      nxt = cur[seg]
    end
    if nxt == nil then return MISSING end
    cur = nxt
  end
  return cur
end

local function equal(a, b)
  local ta = type(a)
  if ta ~= type(b) then return false end
  if ta ~= 'table' then return a == b end
  local aa = is_array(a)
  if aa ~= is_array(b) then return false end
  if aa then
    if #a ~= #b then return false end
    for i = 1, #a do if not equal(a[i], b[i]) then return false end end
    return true
  end
  for k, v in pairs(a) do
    if b[k] == nil or not equal(v, b[k]) then return false end
  end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function bytecmp(a, b)
  if a == b then return 0 end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then if x < y then return -1 else return 1 end end
  end
  if #a < #b then return -1 else return 1 end
end

local function compare(actual, c)
  if c.s then
    if type(actual) ~= 'string' or actual == EMPTY then return nil end
    return bytecmp(actual, c.v)
  end
  if type(actual) ~= 'number' then return nil end
  if actual < c.v then return -1 elseif actual > c.v then return 1 end
  return 0
end

local function matches(doc, conds)
  for _, c in ipairs(conds) do
    local actual = at_path(doc, c.p)
    local present = actual ~= MISSING
    local op, ok = c.o, false
    if op == '$eq' then ok = present and equal(actual, c.v)
    elseif op == '$ne' then ok = not (present and equal(actual, c.v))
    elseif op == '$in' or op == '$nin' then
      local found = false
      if present then
        for _, x in ipairs(c.v) do if equal(actual, x) then found = true; break end end
      end
      if op == '$in' then ok = found else ok = not found end
    elseif op == '$exists' then ok = (present == c.v)
    else
      local cmp = nil
      if present then cmp = compare(actual, c) end
      if cmp == nil then ok = false
      elseif op == '$gt' then ok = cmp > 0
      elseif op == '$gte' then ok = cmp >= 0
      elseif op == '$lt' then ok = cmp < 0
      else ok = cmp <= 0 end
    end
    if not ok then return false end
  end
  return true
end

-- Some `"<label>":<number>` in a record compares as condition c asks (see _gen._needle).
local function some_number(record, c)
  local from = 1
  while true do
    local _, j = string.find(record, c.k, from, true)
    if not j then return false end
    local x = tonumber(string.match(record, '^%-?[%d%.eE%+%-]+', j + 1))
    if x then
      local op, v = c.o, c.v
      if (op == '$eq' and x == v) or (op == '$gt' and x > v) or (op == '$gte' and x >= v)
        or (op == '$lt' and x < v) or (op == '$lte' and x <= v) then
        return true
      end
    end
    from = j + 1
  end
end

-- The test of a record against conditions: their text tests first (see _gen._needle: `t`,
-- text the value's JSON holds whenever the condition does, or `k`, a label that a fitting
-- number follows), then the conditions on the decoded value. Most records that fail,
-- fail a text test, without decoding.
local function record_test(conds)
  local texts, numbers = {}, {}
  for _, c in ipairs(conds) do
    if c.t then texts[#texts + 1] = c.t end
    if c.k then numbers[#numbers + 1] = c end
  end
  return function(record)
    for i = 1, #texts do
      if not string.find(record, texts[i], 1, true) then return false end
    end
    for i = 1, #numbers do
      if not some_number(record, numbers[i]) then return false end
    end
    return matches(decode(string.sub(record, string.find(record, '\n', 1, true) + 1)), conds)
  end
end

local function split(s, sep)
  local out, start = {}, 1
  while true do
    local i = string.find(s, sep, start, true)
    if not i then table.insert(out, string.sub(s, start)); return out end
    table.insert(out, string.sub(s, start, i - 1))
    start = i + 1
  end
end

local function ns_text(member) return (string.gsub(member, '%z', '.')) end

-- An item record's header fields, and where its value starts.
local function header(record)
  local c, u, e, t, at = string.match(record, '^(%S+) (%S+) (%S+) (%S+)\n()')
  return c, u, e, t, at
end

local function unexpired(e, now) return e == '-' or tonumber(e) > now end

-- The records of `keys` (false where missing) under a namespace's record key base.
local CHUNK = 128

local function records(recs, keys)
  if #keys == 0 then return {} end
  local names = {}
  for j = 1, #keys do names[j] = recs .. keys[j] end
  return redis.call('MGET', unpack(names))
end

-- Whether a namespace holds a live item (by the store's clock).
local function any_live(base, ns, now)
  local idx, recs, start = base .. 'n:' .. ns, base .. 'r:' .. ns .. '\0', 0
  while true do
    local keys = redis.call('ZRANGE', idx, start, start + CHUNK - 1)
    if #keys == 0 then return false end
    for _, d in ipairs(records(recs, keys)) do
      if d and unexpired(select(3, header(d)), now) then return true end
    end
    start = start + CHUNK
  end
end

-- Remove an item and its index entries; drop its namespace from the registry once empty.
local function remove(base, ns, member, key, reg, exp, ttlns)
  local tag, idx = ns .. '\0' .. key, base .. 'n:' .. ns
  redis.call('DEL', base .. 'r:' .. tag, base .. 'v:' .. tag)
  redis.call('HDEL', base .. 's:' .. ns, key)
  redis.call('ZREM', idx, key)
  redis.call('ZREM', exp, tag)
  if redis.call('ZCARD', idx) == 0 then
    redis.call('ZREM', reg, member)
    redis.call('SREM', ttlns, member)
    redis.call('DEL', base .. 's:' .. ns)
  end
end
"""

# KEYS: registry, expiry, expiring. ARGV: now, now as ISO text, base, has_index, then one
#   group per write:
#   put:    'p', ns, member, key, value, ttl_ms|'', expires|'-', ttl_minutes|'-', vectors
#           (the unit float32 blobs of its indexed fields, concatenated; '' for none)
#   delete: 'd', ns, member, key
WRITE = (
    PRELUDE
    + r"""
local reg, exp, ttlns = KEYS[1], KEYS[2], KEYS[3]
local now, now_iso, base, has_index = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
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
    i = i + 9
  end
end
return 1
"""
)

# KEYS: registry, expiring. ARGV: now, base, lex min, lex max, conditions (JSON), need,
#   query vector (unit float32 blob, or ''), dims.
# Returns the shard's first `need` rows as one string (one reply to parse, not four per
# row) of NUL-separated fields: sort score (the similarity, or the update time),
# namespace, key, record. No field can hold a NUL.
SEARCH = (
    PRELUDE
    + r"""
local now, base = tonumber(ARGV[1]), ARGV[2]
local conds = cjson.decode(ARGV[5])
local filtered, passes = #conds > 0, record_test(conds)
local need, query, dims = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
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
    local dot = 0
    for d = 1, dims do dot = dot + q[d] * v[d] end
    if best == nil or dot > best then best = dot end
  end
  return best
end
local rows = {}
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
local now, base = tonumber(ARGV[1]), ARGV[2]
local deleted = 0
for _, tag in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, ARGV[3])) do
  local cut = string.find(tag, '\0', 1, true)
  local ns, key = string.sub(tag, 1, cut - 1), string.sub(tag, cut + 1)
  local d, e = redis.call('GET', base .. 'r:' .. tag), '-'
  if d then _, _, e = header(d) end
  if e ~= '-' and tonumber(e) > now then
    redis.call('ZADD', KEYS[2], e, tag)
  else
    remove(base, ns, (string.gsub(ns, '%.', '\0')), key, KEYS[1], KEYS[2], KEYS[3])
    deleted = deleted + 1
  end
end
return deleted
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

SCRIPTS: dict[str, str] = {
    "write": WRITE,
    "search": SEARCH,
    "list": LIST,
    "sweep": SWEEP,
    "flush": FLUSH,
}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}
