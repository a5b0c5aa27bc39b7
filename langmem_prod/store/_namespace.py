"""Namespaces: validation, the dot-joined text codec, and match patterns.

Rules:
- a namespace is a tuple of non-empty `str` labels (a bare `str` is refused, never split
  into one label per character) without "." or NUL (LangGraph's rules) that UTF-8 can
  encode (no lone surrogates); an item's namespace is also non-empty; a key is a `str`
  without NUL that UTF-8 can encode;
- the root label "langgraph" is refused by `put`/`aput` only (`check_put_root`): raw
  `batch` `PutOp`s and deletes pass, as in LangGraph's `InMemoryStore`;
- the text form joins labels with "."; it is unambiguous because labels have no ".";
- the namespaces under a prefix `p` are `p` itself and the texts in the half-open range
  `[p + ".", p + "/")`, because "/" is the code point after "." (byte order, COLLATE "C");
- a match pattern's "*" stands for exactly one label; prefix patterns anchor at the
  first label, suffix patterns at the last, and a namespace shorter than the pattern
  never matches.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import (
    GetOp,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    SearchOp,
    validate_op_namespace,
)
from langgraph.store.base import (
    InvalidNamespaceError as _LangGraphInvalidNamespaceError,
)

from langmem_prod.errors import InvalidInputError, InvalidKeyError, InvalidNamespaceError
from langmem_prod.store._text import has_surrogate

SEPARATOR = "."
_AFTER_SEPARATOR = "/"
WILDCARD = "*"
MAX_COUNT = 2**31 - 1
"""The largest `limit`, `offset` and `max_depth` (what every backend's integers hold)."""
RESERVED_ROOT = "langgraph"


def encode_namespace(namespace: tuple[str, ...]) -> str:
    """Return the text form of a valid namespace.

    >>> encode_namespace(("users", "u1"))
    'users.u1'
    """
    return SEPARATOR.join(namespace)


@functools.lru_cache(maxsize=4096)
def decode_namespace(text: str) -> tuple[str, ...]:
    """Return the namespace tuple of its text form.

    >>> decode_namespace("users.u1")
    ('users', 'u1')
    """
    return tuple(text.split(SEPARATOR)) if text else ()


def descendant_range(prefix: str) -> tuple[str, str]:
    """Return the half-open text range holding the strict descendants of `prefix`.

    >>> descendant_range("users")
    ('users.', 'users/')
    """
    return prefix + SEPARATOR, prefix + _AFTER_SEPARATOR


_TEXT_NAMESPACE = (
    "a namespace must be a tuple of labels, not a str (a str would be split into one "
    "label per character); pass a tuple, e.g. ('users',)"
)


def as_namespace(labels: Iterable[str]) -> tuple[str, ...]:
    """The labels as a tuple; a bare `str` is refused (it would split into characters).

    >>> as_namespace(["users", "u1"])
    ('users', 'u1')
    >>> try:
    ...     as_namespace("users")
    ... except InvalidNamespaceError as exc:
    ...     print(str(exc)[-29:])
    pass a tuple, e.g. ('users',)

    Raises:
        InvalidNamespaceError: `labels` is a `str`.
    """
    if isinstance(labels, str):
        raise InvalidNamespaceError(_TEXT_NAMESPACE)
    return tuple(labels)


def match_path(path: Sequence[str] | str) -> tuple[str, ...]:
    """A `MatchCondition` path as labels; a `str` is one label, never its characters.

    LangGraph's own tests write `MatchCondition("suffix", "public")`: the label is meant.
    (`list_namespaces(prefix="a")` is refused instead.)

    >>> match_path("public"), match_path(["a", "*"])
    (('public',), ('a', '*'))
    """
    return (path,) if isinstance(path, str) else tuple(path)


def refuse_text_namespaces(op: object) -> None:
    """Refuse an op whose namespace or prefix is a bare `str`.

    Raises:
        InvalidNamespaceError: one of them is a `str`.
    """
    if isinstance(op, SearchOp):
        if isinstance(op.namespace_prefix, str):
            raise InvalidNamespaceError(_TEXT_NAMESPACE)
    elif isinstance(getattr(op, "namespace", None), str):
        raise InvalidNamespaceError(_TEXT_NAMESPACE)


def validate_op(op: Op) -> None:
    """Check an op's namespace, key and paging as LangGraph's stores would, and more.

    Raises:
        InvalidNamespaceError: the namespace is a `str`, not a tuple; a label is empty,
            not a string, or holds ".", NUL or a lone surrogate; a written namespace is
            empty.
        InvalidKeyError: a key is not a string, or holds NUL or a lone surrogate.
        InvalidInputError: `limit`, `offset` or `max_depth` is not an int, or out of
            range (negative, or over `MAX_COUNT`).
    """
    check = _CHECKS.get(type(op))
    if check is None:
        raise InvalidInputError(
            f"unknown operation type {type(op).__name__}; "
            "use GetOp, PutOp, SearchOp or ListNamespacesOp"
        )
    namespace = getattr(op, "namespace", None)
    if namespace is None or not _known_valid(namespace):
        refuse_text_namespaces(op)
        try:
            validate_op_namespace(op)
        except _LangGraphInvalidNamespaceError as exc:
            raise InvalidNamespaceError(str(exc)) from None
        _check_encodable(op)
        if namespace is not None:
            _remember_valid(namespace)
    check(op)


def check_op_labels(op: Op) -> None:
    """Refuse an op's invalid labels before it is batched, as `BaseStore`'s methods do.

    A namespace seen valid before costs one dict lookup; `batch` still runs `validate_op`.

    >>> check_op_labels(GetOp(("users", "u1"), "k"))
    >>> check_op_labels(GetOp(("a.b",), "k"))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    langmem_prod.errors.InvalidNamespaceError: a label holds "."
    """
    namespace = getattr(op, "namespace", None)
    if namespace is not None and _known_valid(namespace):
        return
    try:
        validate_op_namespace(op)
    except _LangGraphInvalidNamespaceError as exc:
        raise InvalidNamespaceError(str(exc)) from None
    _check_encodable(op)


def validated(ops: Iterable[Op]) -> list[Op]:
    """The ops as a list, each checked by `validate_op`."""
    ops = list(ops)
    for op in ops:
        validate_op(op)
    return ops


# Namespaces whose labels passed LangGraph's check; hot namespaces skip re-checking.
_VALID_LABELS: dict[tuple[str, ...], None] = {}
_VALID_LABELS_MAX = 10_000


def _known_valid(namespace: object) -> bool:
    try:
        return namespace in _VALID_LABELS
    except TypeError:  # unhashable (a list): check it the long way
        return False


def _remember_valid(namespace: object) -> None:
    if type(namespace) is tuple:
        if len(_VALID_LABELS) >= _VALID_LABELS_MAX:
            _VALID_LABELS.clear()
        _VALID_LABELS[namespace] = None


def _check_put(op: PutOp) -> None:
    _validate_written_namespace(op.namespace)
    _validate_key(op.key)


def _check_get(op: GetOp) -> None:
    _validate_key(op.key)


def _check_search(op: SearchOp) -> None:
    _validate_paging(op.limit, op.offset)


def _check_list(op: ListNamespacesOp) -> None:
    _validate_paging(op.limit, op.offset)
    if op.max_depth is not None:
        _validate_count("max_depth", op.max_depth, minimum=1)
    for condition in op.match_conditions or ():
        if condition.match_type not in ("prefix", "suffix"):
            raise InvalidInputError(
                f"unknown match_type {condition.match_type!r}; use 'prefix' or 'suffix'"
            )


_CHECKS: dict[type, Callable[[Any], None]] = {
    PutOp: _check_put,
    GetOp: _check_get,
    SearchOp: _check_search,
    ListNamespacesOp: _check_list,
}


def _validate_written_namespace(namespace: tuple[str, ...]) -> None:
    if not isinstance(namespace, tuple) or not namespace:
        raise InvalidNamespaceError(
            "an item's namespace must be a non-empty tuple of labels, e.g. ('memories', 'u1')"
        )


def check_put_root(namespace: tuple[str, ...]) -> None:
    """Refuse the root label LangGraph reserves, as `BaseStore.put` does (not `batch`).

    >>> check_put_root(("langgraph", "x"))  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    langmem_prod.errors.InvalidNamespaceError: the root label 'langgraph' is reserved
    """
    if isinstance(namespace, tuple) and namespace and namespace[0] == RESERVED_ROOT:
        raise InvalidNamespaceError(
            f"the root label {RESERVED_ROOT!r} is reserved by LangGraph; choose another root"
        )


def _check_encodable(op: Op) -> None:
    """Refuse labels UTF-8 cannot encode (LangGraph's check has just passed them)."""
    paths: list[Sequence[str]]
    if isinstance(op, ListNamespacesOp):
        paths = [c.path for c in op.match_conditions or ()]
    else:
        paths = [op.namespace_prefix if isinstance(op, SearchOp) else op.namespace]
    for path in paths:
        if any(has_surrogate(label) for label in path):
            raise InvalidNamespaceError(
                "a namespace label holds a lone surrogate (U+D800-U+DFFF), which UTF-8 "
                "cannot encode; pass valid Unicode text"
            )


def _validate_key(key: object) -> None:
    if not isinstance(key, str):
        raise InvalidKeyError(f"an item key must be a str, not {type(key).__name__}")
    if "\x00" in key:
        raise InvalidKeyError("an item key cannot contain NUL characters ('\\x00')")
    if has_surrogate(key):
        raise InvalidKeyError(
            "an item key holds a lone surrogate (U+D800-U+DFFF), which UTF-8 cannot "
            "encode; pass valid Unicode text"
        )


def _validate_paging(limit: object, offset: object) -> None:
    _validate_count("limit", limit, minimum=0)
    _validate_count("offset", offset, minimum=0)


def _validate_count(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
        raise InvalidInputError(f"{name} must be an int from {minimum} to {MAX_COUNT}")


@dataclass(frozen=True, slots=True)
class NamespaceMatch:
    """A conjunction of match conditions, as label positions to compare.

    Attributes:
        min_depth: the fewest labels a matching namespace has.
        from_start: (0-based position, label) pairs counted from the first label.
        from_end: (1-based position from the end, label) pairs; 1 is the last label.
        fixed_prefix: the labels every match starts with (a prefix pattern's labels
            before its first wildcard), usable as a range scan.
    """

    min_depth: int
    from_start: tuple[tuple[int, str], ...]
    from_end: tuple[tuple[int, str], ...]
    fixed_prefix: tuple[str, ...]

    def matches(self, namespace: Sequence[str]) -> bool:
        """Whether `namespace` satisfies every condition.

        >>> m = compile_match((MatchCondition("prefix", ("a", "*")),))
        >>> m.matches(("a", "x", "y")), m.matches(("a",))
        (True, False)
        """
        depth = len(namespace)
        return (
            depth >= self.min_depth
            and all(namespace[i] == label for i, label in self.from_start)
            and all(namespace[depth - i] == label for i, label in self.from_end)
        )


def compile_match(conditions: Sequence[MatchCondition] | None) -> NamespaceMatch:
    """Turn LangGraph match conditions into label-position comparisons.

    >>> compile_match((MatchCondition("suffix", ("v1",)),)).from_end
    ((1, 'v1'),)
    """
    min_depth = 0
    from_start: list[tuple[int, str]] = []
    from_end: list[tuple[int, str]] = []
    fixed_prefix: tuple[str, ...] = ()
    for condition in conditions or ():
        path = match_path(condition.path)
        min_depth = max(min_depth, len(path))
        if condition.match_type == "prefix":
            from_start.extend((i, label) for i, label in enumerate(path) if label != WILDCARD)
            leading = path[: path.index(WILDCARD)] if WILDCARD in path else path
            if len(leading) > len(fixed_prefix):
                fixed_prefix = leading
        else:
            n = len(path)
            from_end.extend((n - i, label) for i, label in enumerate(path) if label != WILDCARD)
    return NamespaceMatch(min_depth, tuple(from_start), tuple(from_end), fixed_prefix)
