"""Which servers the Redis store runs on: Redis >= 7 or Valkey >= 8, no modules needed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langmem_prod.errors import FeatureUnavailableError

MIN_REDIS = (7, 0)
MIN_VALKEY = (8, 0)


def _version(text: object) -> tuple[int, ...]:
    return tuple(int(part) for part in str(text).split(".")[:2] if part.isdigit())


def check_server(info: Mapping[str, Any]) -> None:
    """Refuse servers older than Redis 7 / Valkey 8 (a cluster answers per node).

    >>> check_server({"redis_version": "7.0.15"})
    >>> check_server({"redis_version": "6.2.0"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    langmem_prod.errors.FeatureUnavailableError: ... the server is Redis 6.2.0
    """
    nodes = info.values() if all(isinstance(v, Mapping) for v in info.values()) and info else [info]
    for node in nodes:
        if "valkey_version" in node:
            name, version, minimum = "Valkey", node["valkey_version"], MIN_VALKEY
        else:
            name, version, minimum = "Redis", node.get("redis_version", "0"), MIN_REDIS
        if _version(version) < minimum:
            raise FeatureUnavailableError(
                f"this Redis store needs Redis >= {MIN_REDIS[0]}.0 or Valkey >= "
                f"{MIN_VALKEY[0]}.0; the server is {name} {version}"
            )
