"""Where `PreferenceMemory` keeps a user's data in a LangGraph store: namespaces, keys, ids.

Layout under a configurable root (default `("fspo", "preferences")`), one subtree per user:

```
(*root, <encoded user id>, "examples")   key = example id   the user's shots
(*root, <encoded user id>, "choices")    key = choice id    every recorded A/B choice
(*root, <encoded user id>, "meta")       key = "description" cached RAT user description
```

Every write puts whole items under keys no other write shares (a new id, or the id the caller
chose), so no item is ever read, modified and written back: concurrent writers cannot lose
each other's updates. Order ("oldest first", "newest k") is the store's own: see `_engines`.

Generated ids sort by creation time (16 hex digits of nanoseconds since the epoch, then 8
random hex digits).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = [
    "DEFAULT_ROOT",
    "UserNamespaces",
    "decode_user_id",
    "encode_user_id",
    "new_record_id",
]

DEFAULT_ROOT: tuple[str, ...] = ("fspo", "preferences")
"""Namespace prefix under which every user's subtree lives."""

_EXAMPLES = "examples"
_CHOICES = "choices"
_META = "meta"
DESCRIPTION_KEY = "description"

_USER_LABEL_MARK = "u"
_ID_HEX_TIME = 16
_ID_HEX_RANDOM = 8


def encode_user_id(user_id: str) -> str:
    """Encode any string into one LangGraph namespace label, reversibly.

    Labels may not contain "." nor be empty, so the id's UTF-8 bytes (lone surrogates
    included) are written in unpadded URL-safe base64 (`A-Z a-z 0-9 - _`) behind a
    leading `u`: never empty, never a ".", and two different ids never share a label.

    Example:
        >>> encode_user_id("a.b")
        'uYS5i'
        >>> decode_user_id(encode_user_id("ada@example.com"))
        'ada@example.com'
    """
    raw = user_id.encode("utf-8", "surrogatepass")
    return _USER_LABEL_MARK + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_user_id(label: str) -> str:
    """Invert `encode_user_id`.

    Raises:
        ValueError: `label` was not produced by `encode_user_id`.
    """
    if not label.startswith(_USER_LABEL_MARK):
        msg = f"{label!r} is not an encoded user id (it must start with {_USER_LABEL_MARK!r})."
        raise ValueError(msg)
    body = label[len(_USER_LABEL_MARK) :]
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
        user_id = raw.decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError) as e:
        msg = f"{label!r} is not an encoded user id: {e}"
        raise ValueError(msg) from e
    if encode_user_id(user_id) != label:
        msg = f"{label!r} is not an encoded user id (not in canonical form)."
        raise ValueError(msg)
    return user_id


@dataclass(frozen=True, slots=True)
class UserNamespaces:
    """The namespaces of one user's subtree."""

    user: tuple[str, ...]
    """The user's root: a prefix of every namespace below."""
    examples: tuple[str, ...]
    choices: tuple[str, ...]
    meta: tuple[str, ...]

    @classmethod
    def of(cls, root: tuple[str, ...], user_id: str) -> UserNamespaces:
        """Namespaces of `user_id` under `root`."""
        user = (*root, encode_user_id(user_id))
        return cls(user, (*user, _EXAMPLES), (*user, _CHOICES), (*user, _META))


_clock_lock = threading.Lock()
_last_ns = 0


def new_record_id() -> tuple[str, datetime]:
    """A new record id that sorts after every id made earlier in this process, and its time.

    The time part is strictly increasing within a process (a clock that stalls or steps back
    does not reorder ids); across processes ids sort by wall-clock time.
    """
    global _last_ns  # noqa: PLW0603 - one process-wide monotonic clock
    with _clock_lock:
        now = max(time.time_ns(), _last_ns + 1)
        _last_ns = now
    suffix = secrets.token_hex(_ID_HEX_RANDOM // 2)
    return f"{now:0{_ID_HEX_TIME}x}{suffix}", _nanos_to_datetime(now)


def _nanos_to_datetime(nanos: int) -> datetime:
    seconds, rest = divmod(nanos, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1_000)
