"""HW_CONSTRAINTS: the user's hardware constraints, as the upstream node template, resolved and explained.

From ``UserInput.extra_data`` (the template's keys, same defaults) plus what the problem text says:

- ``hardware_required``: a device name, a list of them, or a comma-separated string; each resolved
  against the hardware catalogue (``hardware_names``: aliases, case/space/punctuation folding) to
  its canonical name. Unknown -> ``ValueError`` listing the closest known names (the runtime fails
  the task with that message). Absent -> ``PIM_AI_1chip`` (template default). ``"auto"``, ``""`` or
  ``[]`` -> ``["auto"]``: HW_RESOURCES chooses, among ``extra_data.allowed_hardware`` = the devices
  whose catalogue class serves the deployment target (``hardware_names.CLASS_DEPLOYMENTS``: mobile ->
  mobile SoCs and PIM, edge -> edge boards, PIM and FPGAs, cloud -> data-centre GPUs and server CPUs,
  embedded -> microcontrollers; no target -> all).
- ``max_memory_footprint`` (MB, 0 = no limit): the user's value and the application's model size
  limit (``max_model_size_mb``); the smaller non-zero one wins. Neither stated -> 100 (template
  default); the user's explicit 0 with no size limit -> 0.
- The deployment target and size limit are the application requirements. The callback keeps the
  upstream signature ``(user_input, node_status, hw_constraints)`` and so does not receive the
  APP_REQUIREMENTS record: it derives both from the same user input with the requirements
  extractor (``sustainml.workers.logic.requirements.extract`` when installed, else the small
  extractor of ``sustainml.estimate.hardware_choice``); explicit ``extra_data`` keys
  ``deployment`` / ``max_model_size_mb`` win over the text.

Output ``extra_data``: the WHOLE incoming map (``hf_token``, ``model_family`` ... reach HW_RESOURCES),
plus ``constraint_sources`` (where each value came from, readable), ``allowed_hardware`` (auto only)
and ``constraint_warnings`` (only when there is something to warn about). Those three keys are
overwritten if the user sent them.

Configuration requests: ``hardwares`` -> HW_RESOURCES's reply (the same function);
``hardware_info, <name>`` -> HW_RESOURCES's catalogue entry plus the ``deployments`` the device serves
(the name read here as people write it, ``read_as`` and ``count`` saying how for an instance type,
a TPU slice or an ambiguous name; an unknown one lists the closest known names); anything else fails with the
upstream convention.

Reading the hardware and the application hints is shared with CARBON_FOOTPRINT:
``sustainml.estimate.hardware_choice``; the names as people write them:
``sustainml.estimate.hardware_names``. Settings: the node's ``Settings.estimation`` (the
``local-cpu`` calibration of ``hardware_info``), handed in by ``for_settings``.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from functools import partial
from typing import Any, Final

from sustainml.config import EstimationSettings, Settings
from sustainml.estimate import hardware_names as hn
from sustainml.estimate.hardware_choice import (
    AUTO,
    FALLBACK_EXTRACTOR,
    HARDWARE_FIELD,
    MB_PER_UNIT,
    AppHints,
    Derived,
    HardwareChoice,
    app_hints,
    choose_hardware,
    hardware_items,
    number_of,
)
from sustainml.messages.types import (
    ULONG_MAX,
    HWConstraints,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
)
from sustainml.workers.logic.common import (
    StageLogic,
    estimation_settings,
    format_number,
    reply,
    reply_error,
    reply_unsupported,
)
from sustainml.workers.logic.tables import DEFAULT_MAX_MEMORY_FOOTPRINT_MB

log = logging.getLogger(__name__)

SOURCES_KEY: Final = "constraint_sources"
WARNINGS_KEY: Final = "constraint_warnings"
ALLOWED_KEY: Final = "allowed_hardware"
NOTES_KEY: Final = "hardware_notes"


def for_settings(settings: Settings) -> StageLogic:
    """The callbacks of one deployment (only ``hardware_info`` reads ``settings.estimation``)."""
    return StageLogic(task_callback, partial(configuration_callback, settings=settings.estimation))


def task_callback(user_input: UserInput, node_status: NodeStatus, hw_constraints: HWConstraints) -> None:
    incoming = user_input.get_extra()
    hints = app_hints(user_input, incoming)
    sources: dict[str, str] = {}
    warnings: list[str] = list(hints.warnings)
    out_extra = dict(incoming)  # the template's contract: everything received goes on

    choice = choose_hardware(user_input, incoming, hints)
    hardware = choice.devices
    sources["hardware_required"] = choice.source
    sources.update(choice.sources)
    warnings += choice.warnings
    if choice.notes:
        out_extra[NOTES_KEY] = choice.notes
    else:
        out_extra.pop(NOTES_KEY, None)
    if choice.num_devices is not None and number_of(incoming, "num_devices") is None:
        out_extra["num_devices"] = choice.num_devices  # what the text or instance type said
    if hardware == [AUTO]:
        out_extra[ALLOWED_KEY] = choice.allowed
        sources[ALLOWED_KEY] = choice.allowed_note

    memory, sources["max_memory_footprint"] = memory_limit(
        incoming, hints.max_model_size_mb, device_memory_limit(choice)
    )
    sources["requirements_extractor"] = hints.extractor

    hw_constraints.hardware_required = hardware
    hw_constraints.max_memory_footprint = memory
    out_extra[SOURCES_KEY] = sources
    if warnings:
        out_extra[WARNINGS_KEY] = warnings
    else:
        out_extra.pop(WARNINGS_KEY, None)
    if hardware != [AUTO]:
        out_extra.pop(ALLOWED_KEY, None)  # a stale user value must not look like our answer
    hw_constraints.set_extra(out_extra)


def device_memory_limit(choice: HardwareChoice) -> tuple[float, str] | None:
    """(MB, why) the chosen hardware holds: device memory x devices; for "auto" the largest allowed
    device's (HW_RESOURCES then checks the fit on the device it picks). MB = GB x 1000, as
    HW_RESOURCES' ``max_hw_memory_footprint``."""
    from sustainml.catalogue import hardware

    names = choice.allowed if choice.devices == [AUTO] else choice.devices
    entries = [hardware().get(n) for n in names if hardware().find(n) is not None]
    if not entries:
        return None
    best = max(entries, key=lambda h: h.memory_gb)
    count = choice.num_devices or 1
    mb = best.memory_gb * 1000.0 * count
    what = "the largest allowed device" if choice.devices == [AUTO] else "the chosen hardware"
    per = (
        f"{count} x {format_number(best.memory_gb)} GB"
        if count > 1
        else f"{format_number(best.memory_gb)} GB"
    )
    return mb, f"memory of {what}: {best.name} {per} = {format_number(mb)} MB (no limit stated)"


def configuration_callback(
    req: RequestType, res: ResponseType, *, settings: EstimationSettings | None = None
) -> None:
    # The device estimates (numpy, onnx: ~30 MB) are imported here, not at module level: tasks never
    # need them, and a worker that only runs tasks stays small.
    from sustainml.estimate.devices import hardware_names

    text = req.configuration.strip()
    keyword, _, argument = text.partition(",")
    keyword, argument = keyword.strip(), argument.strip()
    if text == "hardwares":
        reply(req, res, {"hardwares": ", ".join(hardware_names())})
    elif keyword == "hardware_info":
        if not argument:
            reply_error(req, res, "hardware_info needs a device name: 'hardware_info, <name>'")
            return
        try:
            spec = hn.parse_hardware(argument)
        except (hn.UnknownHardwareError, ValueError) as exc:
            reply_error(req, res, str(exc))
            return
        info = hardware_info(spec.device, settings)
        if spec.note:  # an instance type, a TPU slice, an ambiguous name: say how it was read
            info["read_as"] = spec.note
        if spec.count is not None:
            info["count"] = spec.count
        reply(req, res, info)
    else:
        reply_unsupported(req, res)


def hardware_info(name: str, settings: EstimationSettings | None = None) -> dict[str, Any]:
    """HW_RESOURCES's ``hardware_info`` reply for canonical ``name``, plus the deployment targets the
    device serves (what this node filters "auto" hardware by)."""
    from sustainml.estimate import devices  # see configuration_callback

    data_dir = estimation_settings(settings).data_dir
    info = devices.hardware_info(devices.resolve_device(name, data_dir), data_dir)
    info["deployments"] = ", ".join(hn.DEVICE_DEPLOYMENTS.get(name, ()))
    return info


# ------------------------------------------------------------------------------------------------
# hardware_required
# ------------------------------------------------------------------------------------------------


def hardware_required(incoming: Mapping[str, Any], task: hn.Task = "inference") -> tuple[list[str], str]:
    """(canonical device names or ``["auto"]``, where they came from) for ``hardware_required``
    alone (no requirement keys): the template's key read as people write it."""
    raw = incoming.get("hardware_required")
    if raw is None:
        return [AUTO], "no hardware named: HW_RESOURCES chooses among the allowed devices"
    items = hardware_items(raw, HARDWARE_FIELD)
    autos = [n for n in items if hn.fold(n) == AUTO]
    if not items or len(autos) == len(items):
        return [AUTO], f"{HARDWARE_FIELD}={raw!r}: HW_RESOURCES chooses among the allowed devices"
    if autos:
        raise ValueError(f"{HARDWARE_FIELD}: 'auto' cannot be combined with device names, got {raw!r}")
    resolved: list[str] = []
    for name in items:
        device = hn.parse_hardware(name, task, where=HARDWARE_FIELD).device
        if device not in resolved:
            resolved.append(device)
    return resolved, HARDWARE_FIELD


# ------------------------------------------------------------------------------------------------
# max_memory_footprint
# ------------------------------------------------------------------------------------------------

_MEM_FIELD: Final = "UserInput.extra_data.max_memory_footprint"


def memory_limit(
    incoming: Mapping[str, Any],
    size_limit: Derived[float] | None,
    derived: tuple[float, str] | None = None,
) -> tuple[int, str]:
    """(max_memory_footprint in MB, where it came from): the smaller non-zero of the user's value
    and the application's model size limit; neither stated -> the memory of the chosen hardware
    (``derived``), and only without one the template default."""
    raw = incoming.get("max_memory_footprint")
    user = None if raw is None or (isinstance(raw, str) and not raw.strip()) else parse_memory_mb(raw)
    candidates: list[tuple[int, str]] = []
    if user is not None and user > 0:
        candidates.append((user, _MEM_FIELD))
    if size_limit is not None and size_limit.value > 0:
        # Whole MB (the field is an unsigned integer), rounded down so the limit is never loosened,
        # but at least 1: 0 would mean "no limit".
        mb = max(1, math.floor(size_limit.value))
        mb = min(mb, ULONG_MAX)
        exact = format_number(size_limit.value)
        candidates.append((mb, f"app requirement max_model_size_mb={exact} from {size_limit.describe()}"))
    if candidates:
        value, source = min(candidates, key=lambda c: c[0])  # first (the user's) wins a tie
        others = [s for v, s in candidates if s != source]
        if others:
            source += f"; smaller than {others[0]}"
        return value, source
    if user == 0:
        return 0, f"{_MEM_FIELD}=0 (no limit)"
    if derived is not None and derived[0] > 0:
        return min(max(1, math.floor(derived[0])), ULONG_MAX), derived[1]
    return DEFAULT_MAX_MEMORY_FOOTPRINT_MB, (
        f"default {DEFAULT_MAX_MEMORY_FOOTPRINT_MB} MB (the upstream node template's; no limit stated)"
    )


_MEMORY_TEXT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b)?\s*", re.IGNORECASE)


def parse_memory_mb(value: Any) -> int:
    """A user's memory limit in whole MB: a number (the template's ``int()``: 512.7 -> 512), a
    numeric string, or a string with a unit (``"2 GB"`` -> 2048)."""
    if isinstance(value, bool):
        raise ValueError(f"{_MEM_FIELD} must be a number of MB, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{_MEM_FIELD} must be a finite number of MB, got {value!r}")
        mb = int(value)
    elif isinstance(value, str):
        m = _MEMORY_TEXT.fullmatch(value)
        if m is None:
            raise ValueError(f"{_MEM_FIELD} must be a number of MB (or e.g. '2 GB'), got {value!r}")
        mb = int(float(m[1]) * MB_PER_UNIT[(m[2] or "mb").lower()])
    else:
        raise ValueError(f"{_MEM_FIELD} must be a number of MB, got {value!r}")
    if not 0 <= mb <= ULONG_MAX:
        raise ValueError(f"{_MEM_FIELD} must be between 0 and {ULONG_MAX} MB, got {value!r}")
    return mb


# ------------------------------------------------------------------------------------------------
# Application requirements (deployment target, model size limit) from the user input
# ------------------------------------------------------------------------------------------------


__all__ = [
    "ALLOWED_KEY",
    "AUTO",
    "FALLBACK_EXTRACTOR",
    "NOTES_KEY",
    "SOURCES_KEY",
    "WARNINGS_KEY",
    "AppHints",
    "HardwareChoice",
    "app_hints",
    "choose_hardware",
    "configuration_callback",
    "for_settings",
    "hardware_info",
    "hardware_required",
    "memory_limit",
    "parse_memory_mb",
    "task_callback",
]
