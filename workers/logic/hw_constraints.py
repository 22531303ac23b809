"""HW_CONSTRAINTS: the user's hardware constraints, exactly as the upstream node template.

``max_memory_footprint`` (MB, default 100) and ``hardware_required`` (default ``["PIM_AI_1chip"]``)
come from the UserInput's ``extra_data``; the whole incoming ``extra_data`` is forwarded unchanged
(``hf_token``, ``model_family`` ... reach HW_RESOURCES).
"""

from __future__ import annotations

from typing import Any

from sustainml.messages.types import (
    ULONG_MAX,
    HWConstraints,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
)
from sustainml.workers.logic.common import reply_unsupported
from sustainml.workers.logic.tables import DEFAULT_HARDWARE, DEFAULT_MAX_MEMORY_FOOTPRINT_MB


def task_callback(user_input: UserInput, node_status: NodeStatus, hw_constraints: HWConstraints) -> None:
    incoming = user_input.get_extra()
    hw_constraints.max_memory_footprint = _memory_mb(incoming.get("max_memory_footprint"))
    hw_constraints.hardware_required = _hardware_list(incoming.get("hardware_required"))
    hw_constraints.set_extra(dict(incoming))


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    reply_unsupported(req, res)


def _memory_mb(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_MAX_MEMORY_FOOTPRINT_MB
    try:
        if isinstance(value, bool):
            raise TypeError("a boolean is not a size")
        mb = int(value)  # the template's int(): "512" and 512.0 are accepted
    except (TypeError, ValueError) as exc:
        raise ValueError(f"extra_data.max_memory_footprint must be a number of MB, got {value!r}") from exc
    if not 0 <= mb <= ULONG_MAX:
        raise ValueError(
            f"extra_data.max_memory_footprint must be between 0 and {ULONG_MAX} MB, got {value!r}"
        )
    return mb


def _hardware_list(value: Any) -> list[str]:
    if value is None:
        return [DEFAULT_HARDWARE]
    if isinstance(value, str):
        value = value.strip()
        return [value] if value else [DEFAULT_HARDWARE]
    if isinstance(value, list | tuple):
        names = [str(v).strip() for v in value if str(v).strip()]
        return names if names else [DEFAULT_HARDWARE]
    raise ValueError(f"extra_data.hardware_required must be a string or a list of strings, got {value!r}")
