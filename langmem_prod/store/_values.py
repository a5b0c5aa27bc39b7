"""Item values: encode a mapping to the JSON text the backends store, or refuse it.

Rules:
- a value is a mapping (a JSON object); its JSON text is what is stored and measured;
- JSON types only: datetimes, sets, bytes and other objects are refused; UUIDs and enums
  are stored as their string and value (what JSON can hold of them);
- NaN and infinities are refused (JSON has no such numbers), as are NUL characters in
  strings or keys (PostgreSQL's jsonb cannot hold U+0000) and invalid Unicode;
- a value nests at most `MAX_VALUE_DEPTH` (254) objects and arrays, the value itself
  counting as one: orjson's own limit, so the usual value costs no extra check; when
  orjson refuses a value, an iterative walk (`nesting_exceeds`, no recursion, so a
  value nested 10,000 deep is an `InvalidValueError`, never a `RecursionError`) tells a
  too-deep value from the other reasons, before `json` would recurse into it;
- encoding uses orjson; what it cannot judge (a "null" that may be a NaN, integers past
  64 bits, non-string keys) goes through the standard `json`, which decides;
- the UTF-8 size of the JSON text must not exceed `max_bytes`;
- stored JSON decodes back to the same value, integers of any size included;
- messages name the namespace and key, never the value.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

import orjson

from langmem_prod.errors import InvalidValueError, ValueNotSerializableError, ValueTooLargeError

DEFAULT_MAX_VALUE_BYTES = 1 << 20
MAX_VALUE_DEPTH: Final = 254
"""How many objects and arrays a value may nest, itself included (orjson's limit)."""
_SCALARS = (str, int, float, type(None))
_FAST_CONTAINERS = frozenset((dict, list, tuple))
_CONTAINERS = (dict, list, tuple, Mapping)


def _like_orjson(obj: Any) -> Any:
    """Encode what orjson encodes natively but `json` does not: UUIDs and enums."""
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(
    allow_nan=False, ensure_ascii=False, separators=(",", ":"), default=_like_orjson
)
# An escaped NUL is "\u0000" preceded by an even number of backslashes.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_WORST_BYTES_PER_CHAR = 4
_ORJSON_OPTIONS = (
    orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_LONG_DIGITS = re.compile(r"\d{19}")
_LONG_DIGITS_BYTES = re.compile(rb"\d{19}")


def encode_value(value: Any, *, max_bytes: int, namespace: tuple[str, ...], key: str) -> str:
    """Return the JSON text of an item value, or raise a clear error.

    Args:
        value: the item's value; must be a mapping.
        max_bytes: the largest JSON encoding accepted, in UTF-8 bytes.
        namespace: the item's namespace, to name it in messages.
        key: the item's key, likewise.

    >>> encode_value({"theme": "dark", "n": 1}, max_bytes=1024, namespace=("a",), key="k")
    '{"theme":"dark","n":1}'
    """
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            raise _not_a_dict(value, namespace, key)
        value = dict(value)
    try:
        data = orjson.dumps(value, option=_ORJSON_OPTIONS)
    except TypeError:  # orjson.JSONEncodeError included
        data = None
        if nesting_exceeds(value, MAX_VALUE_DEPTH):
            raise _too_deep(namespace, key) from None
    if data is None or b"null" in data:  # orjson writes NaN as null: let json decide
        text = _encode_strictly(value, namespace, key)
        size = len(text.encode()) if len(text) * _WORST_BYTES_PER_CHAR > max_bytes else 0
    else:
        text, size = data.decode(), len(data)
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        raise InvalidValueError(
            f"the value of {_where(namespace, key)} holds a NUL character ('\\x00'), which "
            "PostgreSQL cannot store; remove it or encode the data (e.g. base64)"
        )
    if size > max_bytes:
        raise ValueTooLargeError(
            f"the value of {_where(namespace, key)} is {size} bytes as JSON, over "
            f"the store's max_value_bytes of {max_bytes}; split it or raise max_value_bytes"
        )
    return text


def check_shape(value: Any, *, namespace: tuple[str, ...], key: str) -> None:
    """Refuse a value that is not a mapping or nests deeper than `MAX_VALUE_DEPTH`.

    For code that walks a value before the store encodes it (PII redaction): it costs a
    walk of the value, which `encode_value` spares the usual value.

    >>> check_shape({"a": [1]}, namespace=("a",), key="k")
    """
    if not isinstance(value, Mapping):
        raise _not_a_dict(value, namespace, key)
    if nesting_exceeds(value, MAX_VALUE_DEPTH):
        raise _too_deep(namespace, key)


def _not_a_dict(value: Any, namespace: tuple[str, ...], key: str) -> InvalidValueError:
    return InvalidValueError(
        f"the value of {_where(namespace, key)} must be a dict (a JSON object), "
        f"not {type(value).__name__}"
    )


def _too_deep(namespace: tuple[str, ...], key: str) -> InvalidValueError:
    return InvalidValueError(
        f"the value of {_where(namespace, key)} nests objects and arrays more than "
        f"{MAX_VALUE_DEPTH} levels deep, the store's limit; flatten it"
    )


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests mappings, lists and tuples more than `limit` levels deep.

    The value itself is the first level when it is a container; anything else is a
    leaf. The walk is iterative and depth-first: it takes no call stack however deep the
    value, and a cyclic value stops at the limit.

    >>> nesting_exceeds({"a": [{"b": 1}]}, 3), nesting_exceeds({"a": [{"b": 1}]}, 2)
    (False, True)
    """
    if not isinstance(value, _CONTAINERS):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    push, pop = stack.append, stack.pop
    while stack:
        node, depth = pop()
        if depth > limit:
            return True
        deeper = depth + 1
        kind = type(node)
        if kind is dict or (kind is not list and kind is not tuple and isinstance(node, Mapping)):
            node = node.values()
        for child in node:
            if type(child) in _FAST_CONTAINERS or (
                not isinstance(child, _SCALARS) and isinstance(child, _CONTAINERS)
            ):
                push((child, deeper))
    return False


def _encode_strictly(value: dict[str, Any], namespace: tuple[str, ...], key: str) -> str:
    try:
        text = _ENCODER.encode(value)
        text.encode()
    except TypeError as exc:
        raise ValueNotSerializableError(
            f"the value of {_where(namespace, key)} is not JSON-serialisable "
            f"({_type_hint(exc)}); store strings, numbers, booleans, None, lists and dicts only"
        ) from None
    except UnicodeEncodeError:
        raise InvalidValueError(
            f"the value of {_where(namespace, key)} holds invalid Unicode (a lone surrogate)"
        ) from None
    except RecursionError:  # an enum whose value nests deeper than the walk could see
        raise InvalidValueError(
            f"the value of {_where(namespace, key)} nests too deep to encode; flatten it"
        ) from None
    except ValueError:
        raise InvalidValueError(
            f"the value of {_where(namespace, key)} holds NaN or an infinity, which JSON "
            "cannot represent; store None or a string instead"
        ) from None
    return text


def decode_value(text: str | bytes) -> dict[str, Any]:
    """Decode a stored value's JSON text (str, or UTF-8 bytes).

    orjson is several times faster than `json`, but reads integers beyond 64 bits as
    floats; a text with a run of 19+ digits goes through `json`, which keeps them exact.

    >>> decode_value('{"n": 123456789012345678901234567890}')["n"]
    123456789012345678901234567890
    """
    long = _LONG_DIGITS.search(text) if isinstance(text, str) else _LONG_DIGITS_BYTES.search(text)
    if long:
        return json.loads(text)  # type: ignore[no-any-return]
    return orjson.loads(text)  # type: ignore[no-any-return]


def _where(namespace: tuple[str, ...], key: str) -> str:
    return f"{namespace!r}/{key!r}"


def _type_hint(exc: TypeError) -> str:
    """Keep the type name from json's message ("Object of type X is not ...")."""
    message = str(exc)
    return message if message.startswith("Object of type") else "unsupported type"
