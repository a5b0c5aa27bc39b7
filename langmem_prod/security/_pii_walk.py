r"""Redacting JSON values: every string at any depth, keys included, without recursion.

Rules:
- every string is redacted, dict keys included; when two keys of one object redact to
  the same text (mask mode), the later ones get " (2)", " (3)"... so no entry is lost;
- a value is read with its key as context: `{"ssn": "123456789"}` holds an SSN and
  `{"phone": 4155552671}` a phone number; integers of 9 digits or more are checked as
  their digits, and one that is PII becomes its replacement string;
- a string holding a JSON object or array (tool call arguments, JSON tool results) is
  redacted as JSON, so escapes such as `\u0040` cannot hide an address, and written
  back as JSON when something changed (left byte for byte as it was otherwise);
- base64 payloads (`data:...;base64,` URLs, 256+ characters of the base64 alphabet) are
  kept: they are binary, no rule can match inside them, and scanning them is waste;
- the values of the `keep` keys (in messages: `type`, `id`, `tool_call_id`) are kept;
- the walk keeps its own stack: depth is bounded by memory, not by Python's recursion
  limit; a JSON string nested too deep for the parser is redacted as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

RedactText = Callable[[str, str], str]  # (text, context) -> redacted text

_BASE64 = re.compile(r"[A-Za-z0-9+/]{256,}={0,2}")
_NOT_JSON = object()


def _binary(text: str) -> bool:
    if text.startswith("data:") and ";base64," in text[:256]:
        return True
    return len(text) >= 256 and _BASE64.fullmatch(text) is not None


def _json(text: str) -> Any:
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON
    return parsed if isinstance(parsed, dict | list) else _NOT_JSON


def _string(text: str, context: str, redact: RedactText, keep: frozenset[str]) -> str:
    if _binary(text):
        return text
    if text.lstrip()[:1] in ("{", "["):
        parsed = _json(text)
        if parsed is not _NOT_JSON:
            redacted = redact_tree(parsed, redact, keep=keep)
            if redacted == parsed:
                return text
            try:
                return json.dumps(redacted, ensure_ascii=False)
            except (ValueError, RecursionError):
                pass  # as deep as the parser allows but not the encoder: redact as text
    return redact(text, context)


def _integer(number: int, context: str, redact: RedactText) -> int | str:
    digits = str(number)
    if len(digits.lstrip("-")) < 9:  # shorter than any PII kind
        return number
    redacted = redact(digits, context)
    return number if redacted == digits else redacted


def _unique(key: str, taken: Mapping[Any, Any], counts: dict[str, int]) -> str:
    if key not in taken:
        return key
    n = counts.get(key, 1)
    while True:
        n += 1
        candidate = f"{key} ({n})"
        if candidate not in taken:
            counts[key] = n
            return candidate


def redact_tree(value: Any, redact: RedactText, *, keep: frozenset[str] = frozenset()) -> Any:
    """A copy of a JSON value with every string (and key) passed through `redact`.

    Tuples become lists; values that are not JSON types are kept as they are.

    >>> upper = lambda text, context: text.upper()
    >>> redact_tree({"a": ["x", {"id": "y", "b": "z"}], "n": 1}, upper, keep=frozenset({"id"}))
    {'A': ['X', {'ID': 'y', 'B': 'Z'}], 'N': 1}
    """
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, str]] = [(root, 0, value, "")]
    keys: dict[str, str] = {}  # keys repeat across objects: each is redacted once
    while stack:
        target, slot, node, context = stack.pop()
        if isinstance(node, str):
            target[slot] = _string(node, context, redact, keep)
        elif isinstance(node, bool) or not isinstance(node, int | Mapping | list | tuple):
            target[slot] = node  # None, floats, bools, and whatever is not JSON
        elif isinstance(node, int):
            target[slot] = _integer(node, context, redact)
        elif isinstance(node, Mapping):
            out: dict[Any, Any] = {}
            counts: dict[str, int] = {}
            target[slot] = out
            for key, item in node.items():
                if not isinstance(key, str):
                    out[key] = None
                    stack.append((out, key, item, context))
                    continue
                if key not in keys:
                    keys[key] = redact(key, "")
                new_key = _unique(keys[key], out, counts)
                out[new_key] = item
                if key not in keep:
                    stack.append((out, new_key, item, key))
        else:
            items: list[Any] = [None] * len(node)
            target[slot] = items
            stack.extend((items, i, item, context) for i, item in enumerate(node))
    return root[0]
