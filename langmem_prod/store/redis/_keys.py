r"""Redis key layout: cluster-safe shards, item records, namespace indexes, the registry.

Rules:
- every namespace belongs to one of `shards` shards (CRC32 of its text); all keys of a
  shard carry the same hash tag `{<prefix>:<n>}`, so a namespace's items, its index, the
  shard's namespace registry and expiry index live in one hash slot, and one Lua script
  can update them atomically, on Redis Cluster too;
- an item's record is a string at `<prefix>:{tag}:r:<namespace text>\0<key>`
  (namespace text has no NUL, so the first NUL ends it); with an index, its vectors
  are a string at `...:v:<namespace text>\0<key>`; both expire natively with the item;
- a namespace's index is a sorted set `...:n:<namespace text>` of its keys scored by
  minus `updated_at` (µs), so a forward range is newest first, ties in key byte order;
- a namespace's access statistics are a hash `...:s:<namespace text>`, key to
  "<hits> <last read µs>";
- the registry of a shard is a sorted set of namespaces written as their labels joined
  by NUL, so its lexicographic order is LangGraph's tuple order ("a", "b") < ("a-c",),
  and a namespace with its descendants is the range [text, text + "\1");
- a shard's expiry index scores `namespace\0key` by expiry time (µs, store clock);
- a tenant's usage, in the shard of its namespaces ("tenants", <id>, ...): a hash
  `...:u:<id>` of `namespace\0key` to the item's size, and a hash `...:q:<id>` of the
  sizes' sum (`bytes`) and the limits (`max_items`, `max_bytes`; see `_quota`);
- with an index, the first shard's `...:distance` holds the distance type its vectors
  were written for (recorded by the first `setup()`, checked by every later one).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from langmem_prod.errors import ConfigurationError

DEFAULT_PREFIX = "langmem"
DEFAULT_SHARDS = 16
REGISTRY_ALL = ("-", "+")


def registry_member(namespace_text: str) -> str:
    r"""The registry form of a namespace: labels joined by NUL.

    >>> registry_member("users.u1")
    'users\x00u1'
    """
    return namespace_text.replace(".", "\x00")


def registry_range(prefix_text: str) -> tuple[str, str]:
    r"""ZRANGEBYLEX bounds of a namespace and its descendants.

    >>> registry_range("users")
    ('[users', '(users\x01')
    """
    member = registry_member(prefix_text)
    return "[" + member, "(" + member + "\x01"


@dataclass(frozen=True)
class KeyLayout:
    """Where one store keeps its keys."""

    prefix: str = DEFAULT_PREFIX
    shards: int = DEFAULT_SHARDS
    _bases: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "{}\x00"):
            raise ConfigurationError("the key prefix must be non-empty, without braces or NUL")
        if (
            isinstance(self.shards, bool)
            or not isinstance(self.shards, int)
            or not 1 <= self.shards <= 16384
        ):
            raise ConfigurationError("shards must be an int between 1 and 16384")
        bases = tuple(f"{self.prefix}:{{{self.prefix}:{n}}}:" for n in range(self.shards))
        object.__setattr__(self, "_bases", bases)

    @property
    def bases(self) -> tuple[str, ...]:
        """The key base of every shard ("<prefix>:{<prefix>:<n>}:")."""
        return self._bases

    def base(self, namespace_text: str) -> str:
        """The key base of the shard holding a namespace."""
        return self._bases[zlib.crc32(namespace_text.encode()) % self.shards]

    @staticmethod
    def registry(base: str) -> str:
        """The namespace registry of a shard."""
        return base + "reg"

    @staticmethod
    def expiry(base: str) -> str:
        """The expiry index of a shard."""
        return base + "exp"

    @staticmethod
    def expiring(base: str) -> str:
        """The set of a shard's namespaces that have held items with a TTL."""
        return base + "ttl"

    @property
    def distance(self) -> str:
        """The distance type the store's vectors were written for (in the first shard)."""
        return self._bases[0] + "distance"

    def shard_keys(self, base: str) -> tuple[str, str, str]:
        """The keys every shard script declares: registry, expiry, expiring."""
        return self.registry(base), self.expiry(base), self.expiring(base)
