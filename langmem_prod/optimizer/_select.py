"""Which units to keep under a token budget: pure arithmetic over costs and scores.

Rules:
- pinned units are always kept; if they alone exceed the budget, the budget is too small;
- then the recent units, newest first, while they fit;
- then the others by importance (ties: the newer first), while they fit, and only those
  at or above the threshold;
- when everything fits, everything is kept and nothing needs a summary.
"""

from __future__ import annotations

from collections.abc import Sequence

from langmem_prod.errors import InvalidInputError
from langmem_prod.optimizer._units import Unit


class BudgetTooSmallError(InvalidInputError):
    """The messages that must be kept do not fit in the token budget."""


def select(
    units: Sequence[Unit],
    costs: Sequence[int],
    scores: Sequence[float],
    budget: int,
    threshold: float,
) -> set[int]:
    """The indexes of the units to keep.

    >>> from langmem_prod.optimizer._units import Unit
    >>> found = [Unit([0], pinned=True), Unit([1]), Unit([2]), Unit([3], recent=True)]
    >>> sorted(select(found, [5, 5, 5, 5], [1.0, 0.9, 0.1, 0.2], 15, 0.3))
    [0, 1, 3]
    """
    kept = {i for i, unit in enumerate(units) if unit.pinned}
    used = sum(costs[i] for i in kept)
    if used > budget:
        raise BudgetTooSmallError(
            f"the pinned messages (leading system messages and the last human message) need "
            f"{used} tokens, more than the {budget} available; raise max_tokens"
        )
    recent = [i for i, u in enumerate(units) if u.recent and not u.pinned]
    others = [i for i, u in enumerate(units) if not (u.recent or u.pinned or u.orphan)]
    others.sort(key=lambda i: (-scores[i], -units[i].positions[0]))
    others = [i for i in others if scores[i] >= threshold]
    for i in sorted(recent, key=lambda i: -units[i].positions[0]) + others:
        if used + costs[i] <= budget:
            kept.add(i)
            used += costs[i]
    return kept
