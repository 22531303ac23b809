"""What hardware a task runs on, read from a user input the way people write it: the explicit
``hardware_required``, else the ``hardware`` requirement (a key or the problem text), else "auto"
among the devices of the deployment target; and the application hints it depends on (deployment
target, model size limit), read with the requirements extractor when it is installed, else with the
small extractor here. HW_CONSTRAINTS settles its constraints with it; CARBON_FOOTPRINT reads the
device count and stated power the same way."""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final, Generic, TypeVar

from sustainml.estimate import hardware_names as hn
from sustainml.messages.types import UserInput

log = logging.getLogger(__name__)

AUTO: Final = "auto"
#: The optional requirements extractor (APP_REQUIREMENTS' ``extract``), looked up by name so that
#: this module works without it.
REQUIREMENTS_MODULE: Final = "sustainml.workers.logic.requirements"
FALLBACK_EXTRACTOR: Final = "hw_constraints fallback extractor"
#: Where ``hardware_required`` is read from, as reported to the user.
HARDWARE_FIELD: Final = "UserInput.extra_data.hardware_required"
#: Memory units to MB.
MB_PER_UNIT: Final[dict[str, float]] = {
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


@dataclass(frozen=True)
class HardwareChoice:
    """The devices HW_CONSTRAINTS settles on, and why."""

    devices: list[str]  # canonical names, or ["auto"]
    source: str  # where hardware_required came from (readable)
    specs: tuple[hn.HardwareSpec, ...] = ()  # how each named device was read
    num_devices: int | None = None  # devices per run, when stated (explicit key, text or instance type)
    task: hn.Task = "inference"
    deployment: str | None = None  # canonical target used for "auto"
    allowed: list[str] = field(default_factory=list)  # "auto" only
    allowed_note: str = ""
    notes: list[str] = field(default_factory=list)  # ambiguity and instance notes, for the user
    warnings: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # num_devices, deployment ...


def choose_hardware(
    user_input: UserInput, incoming: Mapping[str, Any], hints: AppHints | None = None
) -> HardwareChoice:
    """What hardware the task runs on: the explicit ``hardware_required`` (the template's key), else
    the ``hardware`` requirement (explicit key or the problem text), else "auto" among the
    buyable/rentable devices of the deployment target (server/cloud when none is stated).

    Shared with CARBON_FOOTPRINT, which reads the device count and stated power the same way."""
    hints = hints if hints is not None else app_hints(user_input, incoming)
    task = hn.task_of(problem_text(user_input), {**hints.requirements, **incoming})
    sources: dict[str, str] = {}
    warnings: list[str] = []
    given_count = number_of(incoming, "num_devices")
    text_count = hints.requirements.get("num_devices")
    count: int | None = None
    if given_count is not None:
        count, sources["num_devices"] = int(given_count), "UserInput.extra_data.num_devices"
    elif isinstance(text_count, int | float) and not isinstance(text_count, bool) and text_count >= 1:
        count, sources["num_devices"] = int(text_count), "the problem text (requirement num_devices)"

    raw = incoming.get("hardware_required")
    named = hints.requirements.get("hardware")
    if raw is None and isinstance(incoming.get("hardware"), str) and incoming["hardware"].strip():
        raw, field_name = incoming["hardware"], "UserInput.extra_data.hardware"
    elif raw is None and isinstance(named, str) and named.strip():
        raw, field_name = named, "the problem text (requirement hardware)"
    elif raw is None and (written := hn.hardware_in_text(problem_text(user_input))) is not None:
        raw, field_name = written, "the problem text (instance type or TPU slice)"
    else:
        field_name = HARDWARE_FIELD
    if raw is None:
        return _auto_choice(incoming, hints, task, count, sources, "no hardware named", warnings)
    items = hardware_items(raw, field_name)
    autos = [n for n in items if hn.fold(n) == AUTO]
    if not items or len(autos) == len(items):
        return _auto_choice(incoming, hints, task, count, sources, f"{field_name}={raw!r}", warnings)
    if autos:
        raise ValueError(f"{field_name}: 'auto' cannot be combined with device names, got {raw!r}")
    specs: list[hn.HardwareSpec] = []
    resolved: list[str] = []
    renamed: list[str] = []
    from_text = field_name.startswith("the problem text")
    for name in items:
        try:
            spec = hn.parse_hardware(name, task, where=field_name)
        except hn.UnknownHardwareError as exc:
            if not from_text:
                raise  # a name the user typed in a field: refused with the closest names
            # A name read from free text is not worth failing the task for: say so, choose instead.
            warnings.append(f"{exc}; the devices for the deployment were considered instead")
            return _auto_choice(
                incoming, hints, task, count, sources, f"{field_name}={raw!r} unknown", warnings
            )
        specs.append(spec)
        if spec.device != name:
            renamed.append(f"{name!r} -> {spec.device}")
        if spec.device not in resolved:
            resolved.append(spec.device)
    if count is None:
        stated = next((s for s in specs if s.count is not None), None)
        if stated is not None and stated.count is not None:
            count, sources["num_devices"] = stated.count, f"{field_name} ({stated.written!r})"
    deployment = hints.deployment
    if deployment is not None:
        target = hn.normalise_deployment(deployment.value)
        for device in resolved:
            if target is not None and not hn.serves(device, target):
                warnings.append(
                    f"{device} is not classified for deployment={target} "
                    f"(from {deployment.describe()}); kept because it was asked for explicitly"
                )
    source = field_name + (f" ({'; '.join(renamed)})" if renamed else "")
    return HardwareChoice(
        devices=resolved,
        source=source,
        specs=tuple(specs),
        num_devices=count,
        task=task,
        deployment=hn.normalise_deployment(deployment.value) if deployment else None,
        notes=[s.note for s in specs if s.note],
        warnings=warnings,
        sources=sources,
    )


#: Deployment assumed for "auto" when the user states none: most ML problems people bring are served
#: from servers, and a training run happens in a data centre.
DEFAULT_DEPLOYMENT: Final = "cloud"


def _auto_choice(
    incoming: Mapping[str, Any],
    hints: AppHints,
    task: hn.Task,
    count: int | None,
    sources: dict[str, str],
    why: str,
    warnings: list[str],
) -> HardwareChoice:
    research = incoming.get("allow_research_hardware") is True
    if hints.deployment is not None:
        target: str | None = hints.deployment.value
        origin = f"deployment={hints.deployment.value} from {hints.deployment.describe()}"
    else:
        target = DEFAULT_DEPLOYMENT
        origin = (
            f"no deployment stated: deployment={DEFAULT_DEPLOYMENT} assumed (say 'on a phone', 'at the "
            "edge', 'on our laptops' ... or set extra_data.deployment to change it)"
        )
    allowed = hn.allowed_hardware(target, research=research)
    note = allowed.note + f" ({origin})"
    if not research:
        note += "; research parts (PIM, CXL-PIM) only when named or with extra_data.allow_research_hardware"
    return HardwareChoice(
        devices=[AUTO],
        source=f"{why}: HW_RESOURCES chooses among the allowed devices",
        num_devices=count,
        task=task,
        deployment=allowed.deployment,
        allowed=allowed.devices,
        allowed_note=note,
        warnings=warnings,
        sources=sources,
    )


def hardware_items(raw: Any, field_name: str) -> list[str]:
    if isinstance(raw, str):
        items = raw.split(",")  # "T4, A100": several allowed devices in one text field
    elif isinstance(raw, list | tuple):
        items = []
        for i, item in enumerate(raw):
            if not isinstance(item, str):
                raise ValueError(f"{field_name}[{i}] must be a device name (a string), got {item!r}")
            items.append(item)
    else:
        raise ValueError(f"{field_name} must be a device name or a list of them, got {raw!r}")
    return [item.strip() for item in items if item.strip()]


def number_of(incoming: Mapping[str, Any], key: str) -> float | None:
    """``incoming[key]`` as a whole number >= 1, ``None`` when absent; ``ValueError`` naming the key."""
    from sustainml.estimate.training import number_setting

    return number_setting(incoming, key, minimum=1, strict_minimum=False, integer=True)


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
    #: every typed requirement the extractor found (``hardware``, ``num_devices``, ``region`` ...)
    requirements: Mapping[str, Any] = field(default_factory=dict)


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
        fallback.requirements,
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
        requirements=dict(requirements),
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
        ("desktop", r"laptops?\b|desktops?\b|workstations?\b|notebooks?\b"),
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
    typed: dict[str, Any] = {}
    if deployment is not None:
        typed["deployment"] = deployment.value
    return AppHints(deployment, size, FALLBACK_EXTRACTOR, requirements=typed)


def _unit_mb(unit: str) -> float:
    u = unit.lower()
    if u in MB_PER_UNIT:
        return MB_PER_UNIT[u]
    return {"k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024.0}[u[0]]
