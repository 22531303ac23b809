"""Every size limit of the message model, in one place.

The limits protect workers from a single oversized or hostile message: a record that breaks one is
rejected at construction (``MessageError`` naming the field) and a received body that breaks one is
rejected at decode (``DecodeError``) before it reaches any callback. The values are generous for
the data the pipeline actually carries (descriptions, model names, small ONNX models and sample
batches); anything bigger belongs in shared storage referenced by a path (``MLModel.model_path``).
"""

from __future__ import annotations

from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB

#: Longest ``str`` field or list item, in characters (not bytes).
MAX_STRING_CHARS: Final = 65_536

#: Most items in any ``list`` field (``inputs``, ``keywords``, ``input_batch`` ...).
MAX_LIST_ITEMS: Final = 1_024

#: Largest ``extra_data`` (the msgpack-encoded map), in bytes.
MAX_EXTRA_DATA_BYTES: Final = 1 * MIB

#: Largest ``MLModel.raw_model``, in bytes.
MAX_RAW_MODEL_BYTES: Final = 8 * MIB

#: Largest sum of the ``MLModel.input_batch`` items (serialized .npy arrays), in bytes.
MAX_INPUT_BATCH_BYTES: Final = 8 * MIB

#: Deepest nesting of lists/maps inside unknown (extra) fields and ``extra_data``, checked where
#: such values are walked (decode of unknown fields, encode, JSON views), so a hostile body cannot
#: exhaust the Python stack.
MAX_NESTING_DEPTH: Final = 64

#: Largest whole encoded message body (record plus, for stage messages, context and baselines).
#: Checked on encode and before unpacking on decode.
MAX_MESSAGE_BYTES: Final = 32 * MIB

__all__ = [
    "KIB",
    "MAX_EXTRA_DATA_BYTES",
    "MAX_INPUT_BATCH_BYTES",
    "MAX_LIST_ITEMS",
    "MAX_MESSAGE_BYTES",
    "MAX_NESTING_DEPTH",
    "MAX_RAW_MODEL_BYTES",
    "MAX_STRING_CHARS",
    "MIB",
]
