"""Token buckets on a server: the Redis script and the PostgreSQL statement, as flows (no I/O).

Rules:
- both do `_bucket.take` on their server's clock, atomically, in one round trip, so
  every process and client shares one bucket per key without races;
- Redis: a hash per key at `<prefix>:{<key>}` (one slot, so it runs on a cluster),
  refilled and taken by one script on `TIME`; an idle bucket expires once it would be
  full again; the wait comes back as text (Lua would truncate a number to an integer);
- PostgreSQL: a row per key in `{schema}.rate_buckets` (migration track
  "rate_limits"), refilled and taken by one `INSERT ... ON CONFLICT DO UPDATE` on
  `clock_timestamp()`; the row lock serializes concurrent callers; `at` never goes
  back, so a caller that waited on the lock refills nothing twice; the table is
  UNLOGGED: a take writes no WAL and waits for no flush (a third of the time of a
  logged one), and a crash only refills every bucket; it holds buckets, no tenant
  data, and tenant-bound roles get no grant on it;
- each flow returns the wait in seconds (0: granted).
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from langmem_prod.store.postgres._effects import Execute
from langmem_prod.store.postgres._schema import Migration, track_setup_gen
from langmem_prod.store.postgres._sql import Statement, render
from langmem_prod.store.redis._effects import Pipeline, script
from langmem_prod.tenancy._bucket import RateLimit

TOKEN_BUCKET = """
-- KEYS: the bucket; ARGV: rate (tokens/s), burst, cost. Returns the wait in ms, as text.
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local need = math.min(cost, burst)
local wait = 0
if tokens >= need then
  tokens = tokens - cost
else
  wait = (need - tokens) * 1000 / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
  'at', string.format('%.17g', math.max(now, at)))
-- at most ~317 years: Lua sends 1e14 and above in exponent form, which PEXPIRE refuses
redis.call('PEXPIRE', KEYS[1], math.min(math.ceil((burst - tokens) * 1000 / rate) + 1000, 1e13))
return string.format('%.17g', wait)
"""
SCRIPTS = {"rate_bucket": TOKEN_BUCKET}
SHAS = {name: hashlib.sha1(source.encode()).hexdigest() for name, source in SCRIPTS.items()}

RATE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "token buckets",
        (
            """CREATE UNLOGGED TABLE {s}.rate_buckets (
                bucket text COLLATE "C" PRIMARY KEY,
                tokens double precision NOT NULL,
                at timestamptz NOT NULL,
                wait double precision NOT NULL)""",
        ),
    ),
)
# `at` is the caller's clock_timestamp(), read before it may wait on the row's lock.
_TAKE = """
INSERT INTO {s}.rate_buckets AS b (bucket, tokens, at, wait)
VALUES (%(key)s, %(burst)s - %(cost)s, clock_timestamp(), 0)
ON CONFLICT (bucket) DO UPDATE SET (tokens, at, wait) = (
  SELECT CASE WHEN r.tokens >= r.need THEN r.tokens - %(cost)s ELSE r.tokens END,
         greatest(b.at, EXCLUDED.at),
         CASE WHEN r.tokens >= r.need THEN 0 ELSE (r.need - r.tokens) / %(rate)s END
  FROM (SELECT least(%(burst)s, b.tokens
                     + greatest(0, extract(epoch FROM EXCLUDED.at - b.at)::float8) * %(rate)s)
               AS tokens,
               least(%(cost)s, %(burst)s) AS need) r)
RETURNING wait"""


@dataclass(frozen=True, slots=True)
class RedisBuckets:
    """Token buckets on Redis under `prefix`."""

    prefix: str

    def key(self, bucket: str) -> str:
        """The Redis key of a bucket (its name in a hash tag: one slot)."""
        return f"{self.prefix}:{{{bucket}}}"

    def take_gen(
        self, bucket: str, limit: RateLimit, cost: float
    ) -> Generator[Pipeline, Any, float]:
        """Take `cost` tokens; returns the wait in seconds (0: granted)."""
        args = (repr(limit.rate), limit.burst, repr(cost))
        command = script("rate_bucket", (self.key(bucket),), args, SHAS)
        (reply,) = yield Pipeline((command,), scripted=True)
        return max(0.0, float(reply)) / 1000


@dataclass(frozen=True, slots=True)
class PgBuckets:
    """Token buckets in PostgreSQL, in `schema`."""

    schema: str

    def setup_gen(self) -> Generator[Execute, Any, None]:
        """Create or upgrade the buckets table (run in one transaction)."""
        yield from track_setup_gen(self.schema, "rate_limits", RATE_MIGRATIONS)

    def take_gen(
        self, bucket: str, limit: RateLimit, cost: float
    ) -> Generator[Execute, Any, float]:
        """Take `cost` tokens; returns the wait in seconds (0: granted)."""
        params = {"key": bucket, "burst": float(limit.burst), "cost": cost, "rate": limit.rate}
        (rows,) = yield Execute((Statement(render(_TAKE, self.schema), params),))
        return max(0.0, float(rows[0][0]))
