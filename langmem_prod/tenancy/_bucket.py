"""Token buckets as values: the limits, the checks and the math every limiter shares (no I/O).

Rules:
- a `RateLimit` is `rate` tokens a second (a number from 1e-6 to 1e9) and a bucket of
  `burst` tokens (an int from 1 to 1e9); a bucket starts full;
- a request takes `cost` tokens (a number > 0 and at most 1e9; not a bool, NaN or an
  infinity, which are refused with `InvalidInputError`): it goes through when
  the bucket, refilled at `rate` since it was last touched, holds `min(cost, burst)`
  tokens, and then takes all of `cost`; otherwise it takes nothing and must wait
  `(min(cost, burst) - tokens) / rate` seconds. A request larger than the burst thus
  goes through on a full bucket and leaves it in debt, so the average rate holds and no
  request is refused forever;
- a bucket is named by a key (a tenant id): a non-empty string of at most 256
  characters without NUL, lone surrogates or the hash-tag braces `{` and `}` (the Redis
  bucket's key puts it between braces, so it stays in one cluster slot);
- time is passed in (seconds on any monotonic clock); the Redis script and the
  PostgreSQL statement do the same arithmetic on their server's clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from langmem_prod.errors import ConfigurationError, InvalidInputError, RateLimitedError
from langmem_prod.store._text import has_surrogate

MAX_KEY_CHARS = 256
MIN_RATE, MAX_RATE = 1e-6, 1e9
MAX_TOKENS = 1_000_000_000


def _positive(value: object, top: float) -> float | None:
    """`value` as a float when it is a number in (0, top] (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int past the float range
        return None
    return number if 0 < number <= top else None  # NaN fails both comparisons


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`rate` tokens a second into a bucket of `burst` tokens.

    Example:
        >>> RateLimit(10, 20)
        RateLimit(rate=10.0, burst=20)
        >>> RateLimit(float("nan"), 1)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        langmem_prod.errors.ConfigurationError: a rate limit's rate must be a number ...
    """

    rate: float
    burst: int

    def __post_init__(self) -> None:
        rate = _positive(self.rate, MAX_RATE)
        if rate is None or rate < MIN_RATE:
            raise ConfigurationError(
                f"a rate limit's rate must be a number of tokens a second from {MIN_RATE:g} "
                f"to {MAX_RATE:g}"
            )
        burst = self.burst
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_TOKENS:
            raise ConfigurationError(f"a rate limit's burst must be an int from 1 to {MAX_TOKENS}")
        object.__setattr__(self, "rate", rate)


def rate_limit(rate: float | None, burst: int | None) -> RateLimit | None:
    """The limit of a `rate` and `burst` (None: one second's worth); None when `rate` is.

    >>> rate_limit(2.5, None), rate_limit(None, 5)
    (RateLimit(rate=2.5, burst=3), None)
    """
    if rate is None:
        return None
    if burst is None:
        per_second = _positive(rate, MAX_RATE)
        burst = max(1, math.ceil(per_second)) if per_second is not None else 1
    return RateLimit(rate, burst)


def check_rate_settings(rate: object, burst: object) -> None:
    """A tenant's `rate_per_second` and `burst` settings, each None or valid.

    >>> check_rate_settings(0, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    langmem_prod.errors.ConfigurationError: rate_per_second must be a number from 1e-06 ...
    """
    if rate is not None:
        number = _positive(rate, MAX_RATE)
        if number is None or number < MIN_RATE:
            raise ConfigurationError(
                f"rate_per_second must be a number from {MIN_RATE:g} to {MAX_RATE:g}, or None"
            )
    if burst is not None and (
        isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_TOKENS
    ):
        raise ConfigurationError(f"burst must be an int from 1 to {MAX_TOKENS}, or None")


def check_cost(cost: object) -> float:
    """A request's cost: a number of tokens > 0 and at most `MAX_TOKENS`.

    >>> check_cost(3)
    3.0
    >>> check_cost(float("nan"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    langmem_prod.errors.InvalidInputError: a rate-limit cost must be a number of tokens > 0 ...
    """
    tokens = _positive(cost, MAX_TOKENS)
    if tokens is None:
        raise InvalidInputError(
            f"a rate-limit cost must be a number of tokens > 0 and at most {MAX_TOKENS} "
            "(not a bool, NaN or an infinity)"
        )
    return tokens


def check_key(key: object) -> str:
    """A bucket's key (a tenant id), checked before it reaches a server.

    >>> check_key("acme")
    'acme'
    """
    if (
        not isinstance(key, str)
        or not key
        or len(key) > MAX_KEY_CHARS
        or "\x00" in key
        or "{" in key
        or "}" in key
        or has_surrogate(key)
    ):
        raise InvalidInputError(
            f"a rate-limit key (a tenant id) must be a non-empty string of at most "
            f"{MAX_KEY_CHARS} characters without NUL, '{{', '}}' or lone surrogates"
        )
    return key


class Bucket(NamedTuple):
    """A bucket's state: `tokens` left (negative: in debt) at time `at` (seconds)."""

    tokens: float
    at: float


def take(bucket: Bucket | None, now: float, limit: RateLimit, cost: float) -> tuple[Bucket, float]:
    """Refill `bucket` to `now` and take `cost`: the new state and the wait (0: granted).

    >>> limit = RateLimit(1, 2)
    >>> state, wait = take(None, 0.0, limit, 2)
    >>> state, wait
    (Bucket(tokens=0.0, at=0.0), 0.0)
    >>> take(state, 0.5, limit, 1)
    (Bucket(tokens=0.5, at=0.5), 0.5)
    """
    if bucket is None:
        tokens = float(limit.burst)
    else:
        elapsed = max(0.0, now - bucket.at)
        tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.rate)
    need = min(cost, limit.burst)
    if tokens >= need:
        return Bucket(tokens - cost, now), 0.0
    return Bucket(tokens, now), (need - tokens) / limit.rate


def refusal(key: str, limit: RateLimit, wait: float) -> RateLimitedError:
    """The error of a refused request, with the wait in `retry_after` (seconds)."""
    return RateLimitedError(
        f"tenant {key!r} is over its rate limit ({limit.rate:g}/s, burst {limit.burst}); "
        f"retry in {wait:.3f} s",
        retry_after=wait,
    )
