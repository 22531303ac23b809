"""msgpack helpers: the one typed boundary around the untyped msgpack module (strict decoding, the
``extra_data`` map, checks of values of unknown fields)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgpack  # untyped: wrapped by the typed helpers below

from sustainml.messages import limits
from sustainml.messages.errors import MessageError, short_repr, typed_repr


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not allowed")


def packb(value: Any) -> bytes:
    """msgpack-encode (str as str, bytes as bin). Raises ``TypeError``/``ValueError`` on values
    msgpack cannot carry."""
    out: bytes = msgpack.packb(value, use_bin_type=True)
    return out


# How the msgpack timestamp extension (type -1) starts: fixext 4, fixext 8, ext 8 of 12 bytes.
# msgpack decodes it natively (``ext_hook`` never sees it), so it is looked for separately.
_TIMESTAMP_MARKERS: Final = (b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff")


def unpackb(data: bytes | bytearray | memoryview) -> Any:
    """msgpack-decode one complete object: str keys or bytes keys only, no extension types (the
    timestamp extension included), no trailing bytes. Raises ``ValueError`` (or a msgpack
    exception) on anything else."""
    value = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_reject_ext)
    raw = bytes(data)
    # 0xff never occurs in UTF-8 text: only bin payloads can hold these bytes by chance, and
    # only then is the decoded value walked.
    if any(marker in raw for marker in _TIMESTAMP_MARKERS):
        _reject_timestamps(value)
    return value


def _reject_timestamps(value: Any) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, msgpack.Timestamp):
            raise ValueError("msgpack extension type -1 (timestamp) is not allowed")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def unpack_extra(data: bytes) -> dict[str, Any]:
    """Decode ``extra_data`` bytes: ``b""`` is ``{}``; otherwise a msgpack map with str keys."""
    if not data:
        return {}
    value = unpackb(data)
    if not isinstance(value, dict):
        raise ValueError(f"decodes to {type(value).__name__}, not a map")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"key {short_repr(key)} is not a string")
    return value


def pack_extra(value: Mapping[str, Any], field: str = "extra_data") -> bytes:
    """Encode a map for ``extra_data``; ``MessageError`` naming ``field`` if it cannot be."""
    if not isinstance(value, Mapping):
        raise MessageError(field, f"must be a map, got {typed_repr(value)}")
    for key in value:
        if not isinstance(key, str):
            raise MessageError(field, f"map keys must be strings, got {typed_repr(key)}")
    if not value:
        return b""
    try:
        return packb(dict(value))
    except (TypeError, ValueError, OverflowError) as exc:
        raise MessageError(field, f"cannot be encoded as msgpack, got {exc}") from exc


_INT64_MIN: Final = -(2**63)
_UINT64_MAX: Final = 2**64 - 1


def check_wire_value(value: Any, path: str, error: type[MessageError] = MessageError, depth: int = 0) -> None:
    """Check a value of an unknown (extra) field: msgpack must carry it unchanged and a receiver
    must be able to decode it (str map keys, no surrogates, 64-bit ints, bounded nesting)."""
    if value is None or isinstance(value, bool | float | bytes):
        return
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise error(path, f"must be valid unicode text, got {short_repr(value)}") from exc
        return
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _UINT64_MAX:
            raise error(path, f"must fit in 64 bits, got {short_repr(value)}")
        return
    if depth >= limits.MAX_NESTING_DEPTH:
        raise error(path, f"must nest at most {limits.MAX_NESTING_DEPTH} levels deep")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_wire_value(item, f"{path}[{i}]", error, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise error(path, f"map keys must be strings, got {typed_repr(key)}")
            check_wire_value(item, f"{path}.{key}", error, depth + 1)
        return
    raise error(path, f"cannot be carried by msgpack, got {typed_repr(value)}")
