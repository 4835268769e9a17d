"""Local checks of ids and meta maps, so that a mistake fails at the call, not in a batch."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

MAX_ID_BYTES = 256
MAX_META_ENTRIES = 16
MAX_META_KEY_BYTES = 64
MAX_META_VALUE_BYTES = 1024

# Categories the server refuses that Python's Unicode tables know for certain. Unassigned code
# points (Cn) are left to the server: its Unicode version may be newer than Python's.
_REFUSED = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co"}


def _bad_character(text: str, allow_percent: bool) -> str | None:
    for ch in text:
        if ch == "%" and not allow_percent:
            return "'%'"
        if unicodedata.category(ch) in _REFUSED:
            return f"U+{ord(ch):04X}"
    return None


def check_id(value: object, what: str) -> str:
    """Return `value` if it is a valid presence id (1-256 UTF-8 bytes, no `%`, no control character)."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    size = len(value.encode("utf-8", "surrogatepass"))
    if not 1 <= size <= MAX_ID_BYTES:
        raise ValueError(f"{what} must be 1-{MAX_ID_BYTES} bytes of UTF-8, got {size}")
    bad = _bad_character(value, allow_percent=False)
    if bad:
        raise ValueError(f"{what} holds a character ids may not hold: {bad}")
    return value


def check_meta(meta: Mapping[str, str] | None, what: str = "meta") -> dict[str, str] | None:
    """Return a copy of `meta` if it is a valid meta map (at most 16 string entries of bounded size)."""
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise TypeError(f"{what} must be a mapping of str to str")
    if len(meta) > MAX_META_ENTRIES:
        raise ValueError(f"{what} holds {len(meta)} entries, at most {MAX_META_ENTRIES} allowed")
    copy: dict[str, str] = {}
    for key, value in meta.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError(f"{what} keys and values must be str")
        key_size = len(key.encode("utf-8", "surrogatepass"))
        if not 1 <= key_size <= MAX_META_KEY_BYTES:
            raise ValueError(f"{what} key {key[:64]!r} must be 1-{MAX_META_KEY_BYTES} bytes of UTF-8")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_META_VALUE_BYTES:
            raise ValueError(f"{what}[{key!r}] exceeds {MAX_META_VALUE_BYTES} bytes of UTF-8")
        bad = _bad_character(key, allow_percent=True) or _bad_character(value, allow_percent=True)
        if bad:
            raise ValueError(f"{what} entry {key[:64]!r} holds a character meta may not hold: {bad}")
        copy[key] = value
    return copy
