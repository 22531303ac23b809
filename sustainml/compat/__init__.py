"""Upstream (eProsima SustainML, ``sustainml_py``) compatibility: run a node written for the original
framework on sustainml by changing only its imports.

- ``from sustainml_py.nodes.<Class> import <Class>`` ->
  ``from sustainml.compat.nodes.<Class> import <Class>``
- ``from sustainml_swig import ErrorCode, HWConstraints`` ->
  ``from sustainml.compat.sustainml_swig import ErrorCode, HWConstraints``

The node classes are our runtime nodes (``sustainml.workers.nodes``) whose callbacks receive
accessor-style wrappers (``rec.field()`` reads, ``rec.field(value)`` writes) around our records;
see ``docs/porting.md`` for the API and what differs (``extra_data`` encoding, enum values).
"""

from __future__ import annotations

from .records import (
    ByteVector,
    RecordWrapper,
    TaskId,
    extra_from_any,
    extra_to_json,
    unwrap,
    wrap,
)

__all__ = [
    "ByteVector",
    "RecordWrapper",
    "TaskId",
    "extra_from_any",
    "extra_to_json",
    "unwrap",
    "wrap",
]
