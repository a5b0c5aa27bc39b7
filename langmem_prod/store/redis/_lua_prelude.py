"""The Lua prelude every shard script of the Redis store starts with: shared functions.

Rules:
- filters are evaluated on cjson-decoded values, with the rules of `store._filter`:
  JSON-typed equality, numbers ordered as numbers, strings in byte (= code point) order
  whatever the server locale, missing paths never equal; empty arrays are told from
  empty objects by a marker (`decode`), as cjson cannot; `$and`, `$or` and `$not` groups
  nest (`holds`), as deep as `store._filter.MAX_FILTER_DEPTH` allows;
- an item's record is parsed by `header` (see `_lua` for its format);
- every removal of an item (delete, sweep) goes through `remove`, and every write of a
  tenant's item through `account`, so a tenant's usage (see `_quota`) follows its items
  exactly, whatever removes them.
"""

from __future__ import annotations

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

-- Whether condition c holds for doc: a group (`c.c`: `$and` all, `$or` one, `$not` not all
-- of its children hold) or a comparison of the value at path `c.p` with `c.v`.
local holds

local function matches(doc, conds)
  for _, c in ipairs(conds) do
    if not holds(doc, c) then return false end
  end
  return true
end

holds = function(doc, c)
  local op = c.o
  if op == '$and' then return matches(doc, c.c)
  elseif op == '$not' then return not matches(doc, c.c)
  elseif op == '$or' then
    for _, x in ipairs(c.c) do
      if holds(doc, x) then return true end
    end
    return false
  end
  local actual = at_path(doc, c.p)
  local present = actual ~= MISSING
  if op == '$eq' then return present and equal(actual, c.v)
  elseif op == '$ne' then return not (present and equal(actual, c.v))
  elseif op == '$in' or op == '$nin' then
    local found = false
    if present then
      for _, x in ipairs(c.v) do if equal(actual, x) then found = true; break end end
    end
    if op == '$in' then return found end
    return not found
  elseif op == '$exists' then return present == c.v
  elseif op == '$number' then return present and type(actual) == 'number'
  end
  local cmp = nil
  if present then cmp = compare(actual, c) end
  if cmp == nil then return false
  elseif op == '$gt' then return cmp > 0
  elseif op == '$gte' then return cmp >= 0
  elseif op == '$lt' then return cmp < 0
  end
  return cmp <= 0
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

-- Tenant usage (see `_quota`): an item under ("tenants", <id>, ...) is counted in its
-- shard, in the hash '<base>u:<id>' (item "ns NUL key" -> its size) and the hash
-- '<base>q:<id>' ('bytes': the sum of sizes; 'max_items', 'max_bytes': the limits, '' or
-- absent for none). The tenant of a namespace text, or nil:
local function tenant_of(ns) return string.match(ns, '^tenants%.([^.]+)') end

-- Record an item's size (a number), or that it is gone (nil), in its tenant's usage.
-- Sizes are never 0 (the smallest value is "{}").
local function account(base, ns, tag, size)
  local tenant = tenant_of(ns)
  if not tenant then return end
  local sizes = base .. 'u:' .. tenant
  local old = tonumber(redis.call('HGET', sizes, tag) or '0')
  if size then
    redis.call('HSET', sizes, tag, size)
  elseif old > 0 then
    redis.call('HDEL', sizes, tag)
  end
  local delta = (size or 0) - old
  if delta ~= 0 then redis.call('HINCRBY', base .. 'q:' .. tenant, 'bytes', delta) end
end

-- Remove an item and its index entries and usage; drop its namespace from the registry
-- once empty.
local function remove(base, ns, member, key, reg, exp, ttlns)
  local tag, idx = ns .. '\0' .. key, base .. 'n:' .. ns
  redis.call('DEL', base .. 'r:' .. tag, base .. 'v:' .. tag)
  redis.call('HDEL', base .. 's:' .. ns, key)
  redis.call('ZREM', idx, key)
  redis.call('ZREM', exp, tag)
  account(base, ns, tag, nil)
  if redis.call('ZCARD', idx) == 0 then
    redis.call('ZREM', reg, member)
    redis.call('SREM', ttlns, member)
    redis.call('DEL', base .. 's:' .. ns)
  end
end

-- Delete up to `limit` items expired by `now` (store clock) from a shard; returns how many.
local function sweep(base, now, limit, reg, exp, ttlns)
  local deleted = 0
  for _, tag in ipairs(redis.call('ZRANGEBYSCORE', exp, '-inf', now, 'LIMIT', 0, limit)) do
    local cut = string.find(tag, '\0', 1, true)
    local ns, key = string.sub(tag, 1, cut - 1), string.sub(tag, cut + 1)
    local d, e = redis.call('GET', base .. 'r:' .. tag), '-'
    if d then _, _, e = header(d) end
    if e ~= '-' and tonumber(e) > now then
      redis.call('ZADD', exp, e, tag)
    else
      remove(base, ns, (string.gsub(ns, '%.', '\0')), key, reg, exp, ttlns)
      deleted = deleted + 1
    end
  end
  return deleted
end
"""
