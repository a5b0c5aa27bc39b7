"""The Redis driver's effect: commands and shard scripts sent in one pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from langmem_prod.store.redis._lua import SHAS

Command = tuple[Any, ...]


class Pipeline(NamedTuple):
    """Send `commands` in one round trip (one per node on a cluster), in order.

    A command is its arguments, e.g. ("GET", key); `script` makes one that runs a
    shard script. With `atomic`, a standalone server runs them as one MULTI/EXEC
    transaction; a cluster cannot span slots, so there each script stays atomic on its
    own shard. `scripted` says whether any command is a script. Answered with one reply
    per command.
    """

    commands: tuple[Command, ...]
    atomic: bool = False
    scripted: bool = False


def script(
    name: str, keys: tuple[str, ...], args: tuple[Any, ...], shas: Mapping[str, str] = SHAS
) -> Command:
    """The command running script `name` (of `_lua.SCRIPTS` by default) on `keys`' slot."""
    return ("EVALSHA", shas[name], len(keys), *keys, *args)
