r"""Text the backends can store: strings UTF-8 can encode, checked before any I/O.

Rules:
- a Python `str` may hold surrogate code points (U+D800 to U+DFFF, e.g. `"\ud800"`, or
  bytes decoded with `errors="surrogateescape"`); UTF-8 cannot encode them, so psycopg,
  redis-py and Lua would each fail in their own way (`UnicodeEncodeError`, a driver or
  script error); every label, key, filter, query and id is checked with `has_surrogate`
  and refused with the caller's own error class (`InvalidNamespaceError`,
  `InvalidKeyError`, `InvalidFilterError`, `InvalidInputError`);
- an ASCII string is answered without looking at it (CPython knows it is ASCII).
"""

from __future__ import annotations


def has_surrogate(text: str) -> bool:
    r"""Whether `text` holds a surrogate code point, which UTF-8 cannot encode.

    >>> has_surrogate("café"), has_surrogate("a\ud800"), has_surrogate("\U0001f600")
    (False, True, False)
    """
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False
