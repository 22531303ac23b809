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
  extractor below); explicit ``extra_data`` keys ``deployment`` / ``max_model_size_mb`` win over
  the text.

Output ``extra_data``: the WHOLE incoming map (``hf_token``, ``model_family`` ... reach HW_RESOURCES),
plus ``constraint_sources`` (where each value came from, readable), ``allowed_hardware`` (auto only)
and ``constraint_warnings`` (only when there is something to warn about). Those three keys are
overwritten if the user sent them.

Configuration requests: ``hardwares`` -> HW_RESOURCES's reply (the same function);
``hardware_info, <name>`` -> HW_RESOURCES's catalogue entry plus the ``deployments`` the device serves
(the name resolved here, so an unknown one lists the closest known names); anything else fails with the
upstream convention.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, Generic, TypeVar

from sustainml.messages.types import (
    ULONG_MAX,
    HWConstraints,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
)
from sustainml.workers.logic import hardware_names as hn
from sustainml.workers.logic.common import format_number, reply, reply_error, reply_unsupported
from sustainml.workers.logic.tables import DEFAULT_HARDWARE, DEFAULT_MAX_MEMORY_FOOTPRINT_MB

log = logging.getLogger(__name__)

AUTO: Final = "auto"
SOURCES_KEY: Final = "constraint_sources"
WARNINGS_KEY: Final = "constraint_warnings"
ALLOWED_KEY: Final = "allowed_hardware"

REQUIREMENTS_MODULE: Final = "sustainml.workers.logic.requirements"
FALLBACK_EXTRACTOR: Final = "hw_constraints fallback extractor"


def task_callback(user_input: UserInput, node_status: NodeStatus, hw_constraints: HWConstraints) -> None:
    incoming = user_input.get_extra()
    hints = app_hints(user_input, incoming)
    sources: dict[str, str] = {}
    warnings: list[str] = list(hints.warnings)
    out_extra = dict(incoming)  # the template's contract: everything received goes on

    hardware, sources["hardware_required"] = hardware_required(incoming)
    if hardware == [AUTO]:
        target = hints.deployment.value if hints.deployment else None
        allowed = hn.allowed_hardware(target)
        out_extra[ALLOWED_KEY] = allowed.devices
        why = allowed.note
        if hints.deployment is not None:
            why += f" (deployment={hints.deployment.value} from {hints.deployment.describe()})"
        sources[ALLOWED_KEY] = why
    elif hints.deployment is not None:
        target = hn.normalise_deployment(hints.deployment.value)
        for device in hardware:
            if target is not None and not hn.serves(device, target):
                warnings.append(
                    f"{device} is not classified for deployment={target} "
                    f"(from {hints.deployment.describe()}); kept because it was asked for explicitly"
                )

    memory, sources["max_memory_footprint"] = memory_limit(incoming, hints.max_model_size_mb)
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


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    # HW_RESOURCES's module (numpy, onnx: ~30 MB) is imported here, not at module level: tasks never
    # need it, and a worker that only runs tasks stays small.
    from sustainml.workers.logic import hw_resources as hr

    text = req.configuration.strip()
    keyword, _, argument = text.partition(",")
    keyword, argument = keyword.strip(), argument.strip()
    if text == "hardwares":
        reply(req, res, {"hardwares": ", ".join(hr.hardware_names())})
    elif keyword == "hardware_info":
        if not argument:
            reply_error(req, res, "hardware_info needs a device name: 'hardware_info, <name>'")
            return
        try:
            name = hn.resolve(argument)
        except hn.UnknownHardwareError as exc:
            reply_error(req, res, str(exc))
            return
        reply(req, res, hardware_info(name))
    else:
        reply_unsupported(req, res)


def hardware_info(name: str) -> dict[str, Any]:
    """HW_RESOURCES's ``hardware_info`` reply for canonical ``name``, plus the deployment targets the
    device serves (what this node filters "auto" hardware by)."""
    from sustainml.workers.logic import hw_resources as hr  # see configuration_callback

    info = hr.hardware_info(hr.resolve_device(name))
    info["deployments"] = ", ".join(hn.DEVICE_DEPLOYMENTS.get(name, ()))
    return info


# ------------------------------------------------------------------------------------------------
# hardware_required
# ------------------------------------------------------------------------------------------------

_FIELD: Final = "UserInput.extra_data.hardware_required"


def hardware_required(incoming: Mapping[str, Any]) -> tuple[list[str], str]:
    """(canonical device names or ``["auto"]``, where they came from)."""
    raw = incoming.get("hardware_required")
    if raw is None:  # absent, or JSON null
        return [DEFAULT_HARDWARE], f"default {DEFAULT_HARDWARE} (the upstream node template's)"
    if isinstance(raw, str):
        items = raw.split(",")  # "T4, A100": several allowed devices in one text field
    elif isinstance(raw, list | tuple):
        items = []
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                raise ValueError(f"{_FIELD}[{i}] must be a device name (a string), got {item!r}")
            items.append(item)
    else:
        raise ValueError(f"{_FIELD} must be a device name or a list of them, got {raw!r}")
    names = [item.strip() for item in items if item.strip()]
    autos = [n for n in names if hn.fold(n) == AUTO]
    if not names or len(autos) == len(names):
        return [AUTO], f"{_FIELD}={raw!r}: HW_RESOURCES chooses among the allowed devices"
    if autos:
        raise ValueError(f"{_FIELD}: 'auto' cannot be combined with device names, got {raw!r}")
    resolved: list[str] = []
    renamed: list[str] = []
    for name in names:
        canonical = hn.resolve(name, where=_FIELD)
        if canonical != name:
            renamed.append(f"{name!r} -> {canonical}")
        if canonical not in resolved:
            resolved.append(canonical)
    return resolved, _FIELD + (f" ({'; '.join(renamed)})" if renamed else "")


# ------------------------------------------------------------------------------------------------
# max_memory_footprint
# ------------------------------------------------------------------------------------------------

_MEM_FIELD: Final = "UserInput.extra_data.max_memory_footprint"


def memory_limit(incoming: Mapping[str, Any], size_limit: Derived[float] | None) -> tuple[int, str]:
    """(max_memory_footprint in MB, where it came from): the smaller non-zero of the user's value
    and the application's model size limit; the template default when neither is stated."""
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
    return DEFAULT_MAX_MEMORY_FOOTPRINT_MB, (
        f"default {DEFAULT_MAX_MEMORY_FOOTPRINT_MB} MB (the upstream node template's; no limit stated)"
    )


_MB_PER_UNIT: Final[dict[str, float]] = {
    # Binary multiples, the project's convention for "fits in 2 GB" (tables.SIZE_UNIT_MB).
    "kb": 1 / 1024,
    "kib": 1 / 1024,
    "mb": 1.0,
    "mib": 1.0,
    "gb": 1024.0,
    "gib": 1024.0,
    "tb": 1024.0 * 1024.0,
    "tib": 1024.0 * 1024.0,
}
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
        mb = int(float(m[1]) * _MB_PER_UNIT[(m[2] or "mb").lower()])
    else:
        raise ValueError(f"{_MEM_FIELD} must be a number of MB, got {value!r}")
    if not 0 <= mb <= ULONG_MAX:
        raise ValueError(f"{_MEM_FIELD} must be between 0 and {ULONG_MAX} MB, got {value!r}")
    return mb


# ------------------------------------------------------------------------------------------------
# Application requirements (deployment target, model size limit) from the user input
# ------------------------------------------------------------------------------------------------


V = TypeVar("V", str, float)


@dataclass(frozen=True)
class Derived(Generic[V]):
    """A requirement value and where it was found."""

    value: V
    origin: str  # "UserInput.extra_data.<key>" or "the problem text"
    evidence: str = ""  # the words it was read from

    def describe(self) -> str:
        return f"{self.origin} ({self.evidence!r})" if self.evidence else self.origin


@dataclass(frozen=True)
class AppHints:
    deployment: Derived[str] | None
    max_model_size_mb: Derived[float] | None
    extractor: str  # which extractor produced them
    warnings: tuple[str, ...] = ()


def app_hints(user_input: UserInput, incoming: Mapping[str, Any]) -> AppHints:
    """The deployment target and model size limit the application requirements state.

    With the requirements extractor (``extract(description, definition, extra) -> Extraction``, the
    one APP_REQUIREMENTS uses) when it is installed; an invalid explicit requirement in
    ``extra_data`` is the user's error and raises ``ValueError`` as it does in APP_REQUIREMENTS. Any
    other failure of that module falls back to the small extractor here, logged and reported in
    ``extra_data.constraint_warnings``."""
    text = problem_text(user_input)
    extract = _external_extractor()
    if extract is None:
        return fallback_extract(text, incoming)
    try:
        result = extract(
            description=user_input.problem_short_description,
            definition=user_input.problem_definition,
            extra=dict(incoming),
        )
    except ValueError:
        raise
    except Exception as exc:  # another module's defect: do not fail the task for it, say so
        return _fall_back(text, incoming, exc)
    try:
        return _hints_from(result.requirements, result.evidence)
    except Exception as exc:  # an Extraction of another shape than the one coded against
        return _fall_back(text, incoming, exc)


def problem_text(user_input: UserInput) -> str:
    parts = (user_input.problem_short_description, user_input.problem_definition)
    return " ".join(p.strip() for p in parts if p.strip())


def _external_extractor() -> Callable[..., Any] | None:
    """``extract`` of the requirements package (or of its ``extract`` module), if installed."""
    try:
        module = importlib.import_module(REQUIREMENTS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != REQUIREMENTS_MODULE:  # the package exists but something it imports does not
            log.warning("%s cannot be imported (%s); using the fallback extractor", REQUIREMENTS_MODULE, exc)
        return None
    extract = getattr(module, "extract", None)
    if extract is None or isinstance(extract, ModuleType):
        try:
            extract = getattr(importlib.import_module(f"{REQUIREMENTS_MODULE}.extract"), "extract", None)
        except ModuleNotFoundError:
            return None
    return extract if callable(extract) else None


def _fall_back(text: str, incoming: Mapping[str, Any], exc: Exception) -> AppHints:
    log.warning("%s.extract failed (%s); using the fallback extractor", REQUIREMENTS_MODULE, exc)
    fallback = fallback_extract(text, incoming)
    return AppHints(
        fallback.deployment,
        fallback.max_model_size_mb,
        FALLBACK_EXTRACTOR,
        (f"{REQUIREMENTS_MODULE}.extract failed ({type(exc).__name__}: {exc}); used the fallback",),
    )


def _hints_from(requirements: Mapping[str, Any], evidence: Mapping[str, Any]) -> AppHints:
    """AppHints from an Extraction's typed requirements and evidence spans (``text``, ``source`` =
    description / definition / extra_data, ``field`` = the extra_data key)."""

    def origin(key: str, value: V) -> Derived[V]:
        span = evidence.get(key)
        source, field = getattr(span, "source", ""), getattr(span, "field", None)
        if source == "extra_data" and field:
            where = f"UserInput.extra_data.{field}"
        elif source in ("description", "definition"):
            where = f"the problem {source}"
        else:
            where = "the problem text"
        return Derived(value, where, str(getattr(span, "text", "")))

    deployment = requirements.get("deployment")
    size = requirements.get("max_model_size_mb")
    return AppHints(
        origin("deployment", deployment) if isinstance(deployment, str) and deployment else None,
        origin("max_model_size_mb", float(size))
        if isinstance(size, int | float) and not isinstance(size, bool) and size > 0
        else None,
        f"{REQUIREMENTS_MODULE}.extract",
    )


# The fallback extractor: the two requirements this node needs, nothing more. Targets are tried
# most constraining first, so "trained in the cloud, runs on phones" gives mobile.
_DEPLOYMENT_TEXT: Final[tuple[tuple[str, re.Pattern[str]], ...]] = tuple(
    (target, re.compile(rf"\b(?:{pattern})", re.IGNORECASE))
    for target, pattern in (
        ("embedded", r"embedded|micro-?controllers?|mcus?\b|firmware|arduino|esp32|stm32|cortex-m"),
        ("mobile", r"mobile|smart-?phones?|phones?\b|android|ios\b|iphones?|tablets?\b"),
        ("browser", r"browsers?\b|web-?assembly|wasm\b|client-side"),
        ("edge", r"edge\b|on-?device|jetson|raspberry|iot\b|drones?\b|robots?\b|cameras? on site"),
        ("on-premise", r"on-?prem(?:ise|ises)?\b|in-house|(?:local|own|our) servers?"),
        ("cloud", r"cloud|data-? ?cent(?:er|re)s?|aws\b|azure|gcp\b|servers?\b"),
    )
)
_BOUND: Final = (
    r"under|below|less than|smaller than|within|at most|max(?:imum)?|up to|no more than|"
    r"limit(?:ed)? (?:of|to)|fits? (?:in(?:to)?|within|on)|<=?"
)
_SIZE_TEXT: Final = re.compile(
    rf"(?P<bound>(?:{_BOUND})\s*)?(?<![\w.])(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[kmgt]i?b|"
    r"kilobytes?|megabytes?|gigabytes?|terabytes?)\b",
    re.IGNORECASE,
)
_MEMORY_WORDS: Final = re.compile(r"memory|\bram\b|model size|footprint|storage|flash|weights", re.IGNORECASE)
_WINDOW: Final = 40


def fallback_extract(text: str, incoming: Mapping[str, Any]) -> AppHints:
    """Deployment target and model size limit from ``extra_data`` keys, else from ``text``."""
    deployment: Derived[str] | None = None
    given = incoming.get("deployment")
    if isinstance(given, str) and given.strip():
        deployment = Derived(given.strip(), "UserInput.extra_data.deployment")
    else:
        for target, pattern in _DEPLOYMENT_TEXT:
            found = pattern.search(text)
            if found:
                deployment = Derived(target, "the problem text", found.group(0))
                break

    size: Derived[float] | None = None
    given_size = incoming.get("max_model_size_mb")
    if isinstance(given_size, int | float) and not isinstance(given_size, bool) and given_size > 0:
        size = Derived(float(given_size), "UserInput.extra_data.max_model_size_mb")
    else:
        for m in _SIZE_TEXT.finditer(text):
            window = text[max(0, m.start() - _WINDOW) : m.end() + _WINDOW]
            if not (m["bound"] or _MEMORY_WORDS.search(window)):
                continue  # "a 2 GB dataset" is not a limit
            mb = float(m["num"]) * _unit_mb(m["unit"])
            if mb > 0 and (size is None or mb < size.value):
                size = Derived(mb, "the problem text", m.group(0).strip())
    return AppHints(deployment, size, FALLBACK_EXTRACTOR)


def _unit_mb(unit: str) -> float:
    u = unit.lower()
    if u in _MB_PER_UNIT:
        return _MB_PER_UNIT[u]
    return {"k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024.0}[u[0]]
