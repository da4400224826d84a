"""Fast JSON for request bodies and answers: orjson when installed, else the standard `json`.

orjson comes with langsmith (so with langchain-core) on CPython; it encodes and decodes a chat
body several times faster than `json`. Its decode error is a `json.JSONDecodeError`, so
`_http.classify` reads a malformed answer the same either way.

Example:
    >>> dumps({"a": [1, "b"]}), loads(b'{"a": 1}')
    (b'{"a":[1,"b"]}', {'a': 1})
    >>> dumps({"temperature": float("nan")})
    Traceback (most recent call last):
    ...
    ValueError: Out of range float values are not JSON compliant: nan
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["dumps", "loads"]


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _has_non_finite(value: Any) -> bool:
    """Whether `value` (dicts, lists and scalars, any depth) holds a NaN or an infinity."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


loads: Callable[[bytes | str], Any]

try:
    import orjson
except ImportError:  # pragma: no cover - orjson comes with langsmith on CPython
    dumps = _std_dumps
    loads = json.loads
else:

    def dumps(value: Any) -> bytes:
        """`value` as compact UTF-8 JSON (orjson; `json` for what orjson refuses or rewrites).

        orjson writes NaN and infinities as `null`; where `null` appears and the value holds
        such a float, `json` encodes it instead and refuses it (`ValueError`), so a bad number
        is never sent as "unset". A real `null`, or the word in a text, keeps orjson's bytes.
        """
        try:
            data = orjson.dumps(value)
        except TypeError:  # non-str keys, ints over 64 bits, ...: `json` decides
            return _std_dumps(value)
        return _std_dumps(value) if b"null" in data and _has_non_finite(value) else data

    loads = orjson.loads
