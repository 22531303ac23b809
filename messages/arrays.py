"""numpy arrays <-> the ``.npy`` bytes carried in ``MLModel.input_batch``.

The ``.npy`` format is self-describing (dtype, shape, order) and portable. Pickling is never
allowed in either direction, so object arrays are rejected and loading received bytes cannot run
code.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import numpy.typing as npt

from sustainml.messages.types import MessageError, short_repr


def _where(field: str, index: int | None) -> str:
    return field if index is None else f"{field}[{index}]"


def pack_array(a: npt.NDArray[Any], index: int | None = None, field: str = "input_batch") -> bytes:
    """Serialize ``a`` as ``.npy`` bytes. ``index`` (and ``field``) only name the value in errors."""
    where = _where(field, index)
    if not isinstance(a, np.ndarray):
        raise MessageError(where, f"must be a numpy.ndarray, got {type(a).__name__} {short_repr(a)}")
    if a.dtype.hasobject:
        raise MessageError(where, f"object arrays cannot be carried (no pickling), got dtype {a.dtype}")
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def unpack_array(b: bytes, index: int | None = None, field: str = "input_batch") -> npt.NDArray[Any]:
    """Deserialize ``.npy`` bytes (never unpickles). ``MessageError`` naming ``field[index]`` if the
    bytes are not a single ``.npy`` array."""
    where = _where(field, index)
    if not isinstance(b, bytes | bytearray | memoryview):
        raise MessageError(where, f"must be bytes, got {type(b).__name__} {short_repr(b)}")
    try:
        value = np.load(io.BytesIO(b), allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError/OSError/EOFError...; all mean "not .npy"
        raise MessageError(where, f"is not a valid .npy array ({exc}), got {short_repr(bytes(b))}") from exc
    if not isinstance(value, np.ndarray):  # np.load also opens .npz archives
        close = getattr(value, "close", None)
        if callable(close):
            close()
        raise MessageError(where, f"must be a single .npy array, got {type(value).__name__}")
    return value


__all__ = ["pack_array", "unpack_array"]
