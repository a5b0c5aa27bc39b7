"""Retry timing for transient backend failures: capped exponential backoff with jitter.

Rules:
- the first attempt runs at once; attempt n waits a random time in
  [0, min(max_delay, base_delay * 2**(n-1))] ("full jitter");
- after `attempts` tries the last error is raised to the caller;
- only operations that are safe to repeat are retried (every store effect is: reads,
  upserts and deletes of fixed values).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from langmem_prod.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently to retry.

    >>> delays = list(RetryPolicy(attempts=3, base_delay=0.1).delays(lambda: 1.0))
    >>> delays
    [0.1, 0.2]
    """

    attempts: int = 4
    base_delay: float = 0.05
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0:
            raise ConfigurationError("RetryPolicy needs attempts >= 1 and non-negative delays")

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """The waits between attempts (one fewer than `attempts`)."""
        for n in range(self.attempts - 1):
            yield rand() * min(self.max_delay, self.base_delay * 2**n)


NO_RETRY = RetryPolicy(attempts=1)
