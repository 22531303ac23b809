"""Hardware names: resolve what a user typed to a catalogue device, and which devices suit a
deployment target.

What people write is parsed by :func:`parse_hardware` first: a cloud instance type
(``p4d.24xlarge`` -> 8 x A100-SXM4-40GB, from the catalogue's ``instances`` table, each row citing
the provider's page), a TPU slice (``v4-8`` -> 4 x TPU v4: slices count TensorCores, 2 per chip,
except v5e slices which count chips), a count prefix (``8 x H100``, ``8 A100s``), a model-card power
note (``H100-80GB (TDP of 700W)`` -> the H100 variant rated 700 W, with 700 W as the stated power),
and ambiguous names (``A100``, ``H100``, ``V100``, ``Jetson Orin``, ``laptop CPU``): they resolve to
the most common variant for the task, training or inference (:data:`AMBIGUOUS`), and the note says
which and how to ask for another.

Resolution is a function over plain ``(canonical name, aliases)`` entries (today those of the
hardware catalogue, ``sustainml.catalogue.hardware()``), so the source can change without touching
the callers. Spellings are folded before comparison: case, spaces and
punctuation do not matter (``PIM-AI-1chip`` = ``pim ai 1chip`` = ``PIM_AI_1chip``), and a leading
vendor word or a trailing generic word is tried away when the full spelling is unknown
(``NVIDIA Jetson Orin Nano``, ``T4 GPU``). An unknown name raises :class:`UnknownHardwareError`, a
``ValueError`` whose message lists the closest known names (difflib on the folded spellings).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sustainml.catalogue import hardware
from sustainml.catalogue.schema import instances
from sustainml.estimate.hardware_spellings import AMBIGUOUS, GENERIC_SUFFIXES, VENDOR_PREFIXES, Ambiguity
from sustainml.estimate.hardware_spellings import Task as Task
from sustainml.estimate.hardware_spellings import fold as fold

#: One catalogue entry as resolution sees it: the canonical name and its aliases.
NameEntry = tuple[str, Sequence[str]]

#: Deployment targets APP_REQUIREMENTS reports (the ``deployment=`` requirement).
DEPLOYMENT_TARGETS: Final[tuple[str, ...]] = (
    "cloud", "on-premise", "desktop", "edge", "mobile", "embedded", "browser"
)  # fmt: skip

#: Other spellings of the deployment targets (folded keys), as people and extractors write them.
DEPLOYMENT_ALIASES: Final[dict[str, str]] = {
    "cloud": "cloud",
    "datacenter": "cloud",
    "datacentre": "cloud",
    "server": "cloud",
    "servers": "cloud",
    "onpremise": "on-premise",
    "onpremises": "on-premise",
    "onprem": "on-premise",
    "local": "on-premise",
    "edge": "edge",
    "iot": "edge",
    "ondevice": "edge",
    "mobile": "mobile",
    "phone": "mobile",
    "smartphone": "mobile",
    "embedded": "embedded",
    "microcontroller": "embedded",
    "mcu": "embedded",
    "embeddedmicrocontroller": "embedded",
    "browser": "browser",
    "web": "browser",
    "wasm": "browser",
    "desktop": "desktop",
    "laptop": "desktop",
    "laptops": "desktop",
    "notebook": "desktop",
    "workstation": "desktop",
    "pc": "desktop",
}

#: Deployment targets each device class serves (the catalogue's ``device_class``). A device is
#: offered for "auto" hardware only under a target its class lists. Classification by this module's
#: authors (estimates, not vendor statements): data-centre GPUs and server CPUs are cloud cards also
#: racked on premises; FPGA boards sit at the edge or in a lab; this machine's CPU is on-premise and
#: is what a browser client runs on.
CLASS_DEPLOYMENTS: Final[dict[str, tuple[str, ...]]] = {
    "cloud": ("cloud", "on-premise"),
    "server-cpu": ("cloud", "on-premise"),
    "desktop": ("desktop", "browser"),
    "edge": ("edge",),
    "mobile": ("mobile",),
    "embedded": ("embedded",),
    "pim": ("mobile", "edge"),  # upstream's PIM_AI chips target low-power devices
    "fpga": ("edge", "on-premise"),
    "local": ("on-premise", "browser", "desktop"),
}

#: Device classes a default ("auto") choice may offer for a target: parts people can buy or rent.
#: Research parts (the PIM and CXL-PIM modules of the original framework) are offered only when
#: named or when ``extra_data.allow_research_hardware`` is true.
RESEARCH_CLASSES: Final[frozenset[str]] = frozenset({"pim"})

#: Class of every catalogued device.
DEVICE_CLASSES: Final[dict[str, str]] = {hw.name: hw.device_class for hw in hardware()}

#: Deployment targets of every catalogued device, derived from its class.
DEVICE_DEPLOYMENTS: Final[dict[str, tuple[str, ...]]] = {
    hw.name: CLASS_DEPLOYMENTS.get(hw.device_class, ()) for hw in hardware()
}

_MAX_LISTED: Final = 20  # known names listed in an error when nothing is close



class UnknownHardwareError(ValueError):
    """``name`` is not a catalogue device; ``suggestions`` are the closest known names."""

    def __init__(self, name: str, suggestions: Sequence[str], known: Sequence[str], where: str = "") -> None:
        self.name = name
        self.suggestions = list(suggestions)
        prefix = f"{where}: " if where else ""
        if self.suggestions:
            hint = "closest known: " + ", ".join(self.suggestions)
        else:
            listed = ", ".join(known[:_MAX_LISTED]) + (", ..." if len(known) > _MAX_LISTED else "")
            hint = f"nothing close; known hardware: {listed}"
        super().__init__(
            f"{prefix}unknown hardware {name!r} ({hint}; "
            "the 'hardwares' configuration request lists them all)"
        )


class HardwareNames:
    """An index of device spellings built from ``(canonical name, aliases)`` entries.

    Two devices claiming the same folded spelling is a catalogue error, raised at construction
    (a silent first-wins would resolve a user's name to an arbitrary device)."""

    def __init__(self, entries: Iterable[NameEntry]) -> None:
        self._index: dict[str, str] = {}
        self._names: list[str] = []
        for name, aliases in entries:
            if name in self._names:
                raise ValueError(f"hardware {name!r} is listed twice")
            self._names.append(name)
            for spelling in (name, *aliases):
                key = fold(spelling)
                if not key:
                    raise ValueError(f"hardware {name!r} has a spelling with no letters or digits")
                other = self._index.setdefault(key, name)
                if other != name:
                    raise ValueError(f"hardware spelling {spelling!r} is claimed by {other!r} and {name!r}")

    def names(self) -> list[str]:
        """Canonical names, sorted case-insensitively (the order of ``allowed_hardware``)."""
        return sorted(self._names, key=lambda n: (n.casefold(), n))

    def lookup(self, name: str) -> str | None:
        """The canonical name ``name`` spells, or ``None``."""
        key = fold(name)
        if not key:
            return None
        for candidate in _variants(key):
            found = self._index.get(candidate)
            if found is not None:
                return found
        return None

    def resolve(self, name: str, where: str = "") -> str:
        """The canonical name ``name`` spells; :class:`UnknownHardwareError` (naming ``where``, e.g.
        the field it came from) with the closest known names otherwise."""
        found = self.lookup(name)
        if found is None:
            raise UnknownHardwareError(name, self.closest(name), self.names(), where)
        return found

    def closest(self, name: str, n: int = 3) -> list[str]:
        """Up to ``n`` canonical names whose spellings are closest to ``name`` (best first)."""
        key = fold(name)
        if not key:
            return []
        out: list[str] = []
        for match in difflib.get_close_matches(key, list(self._index), n=4 * n, cutoff=0.5):
            canonical = self._index[match]
            if canonical not in out:
                out.append(canonical)
        return out[:n]


def _variants(key: str) -> list[str]:
    """``key`` itself, then without a vendor prefix and/or a generic suffix."""
    stems = [key]
    for prefix in VENDOR_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            stems.append(key[len(prefix) :])
    out = list(stems)
    for stem in stems:
        for suffix in GENERIC_SUFFIXES:
            if stem.endswith(suffix) and len(stem) > len(suffix):
                out.append(stem[: -len(suffix)])
    return out


def catalogue_entries() -> list[NameEntry]:
    """The entries of the hardware catalogue (``sustainml.catalogue.hardware()``)."""
    return [(hw.name, hw.aliases) for hw in hardware()]


@functools.lru_cache(maxsize=1)
def catalogue_names() -> HardwareNames:
    """The index over :func:`catalogue_entries` (built once)."""
    return HardwareNames(catalogue_entries())


def resolve(name: str, where: str = "") -> str:
    """Resolve ``name`` against the hardware catalogue (see :meth:`HardwareNames.resolve`)."""
    return catalogue_names().resolve(name, where)


def normalise_deployment(target: str) -> str | None:
    """The canonical deployment target of ``target`` (``"on-prem"`` -> ``"on-premise"``), or ``None``
    when it is not a known target."""
    return DEPLOYMENT_ALIASES.get(fold(target))


@dataclass(frozen=True)
class AllowedHardware:
    """Devices allowed under a deployment target, and why."""

    devices: list[str]
    deployment: str | None  # canonical target, None = no (usable) target
    note: str  # one readable sentence for extra_data


def allowed_hardware(
    deployment: str | None,
    names: HardwareNames | None = None,
    deployments: Mapping[str, Sequence[str]] | None = None,
    *,
    research: bool = True,
) -> AllowedHardware:
    """Devices of ``names`` (default: the catalogue) that serve ``deployment`` according to
    ``deployments`` (default: :data:`DEVICE_DEPLOYMENTS`, read at call time).

    No target -> every device. An unknown target, or a target no catalogued device serves, also
    gives every device, and the note says so: leaving HW_RESOURCES an empty choice would fail the
    task for a gap in the catalogue rather than in the user's problem."""
    index = names if names is not None else catalogue_names()
    every = index.names()
    if not research:
        # Parts people can buy or rent: research modules only when asked for.
        every = [n for n in every if DEVICE_CLASSES.get(n) not in RESEARCH_CLASSES]
    if deployment is None or not deployment.strip():
        return AllowedHardware(every, None, "no deployment target stated: every catalogued device")
    target = normalise_deployment(deployment)
    if target is None:
        return AllowedHardware(
            every, None, f"unknown deployment target {deployment!r}: every catalogued device"
        )
    served = deployments if deployments is not None else DEVICE_DEPLOYMENTS
    devices = [n for n in every if target in served.get(n, ())]
    if not devices:
        return AllowedHardware(
            every, target, f"no catalogued device serves deployment={target}: every catalogued device"
        )
    return AllowedHardware(devices, target, f"devices that serve deployment={target}")


def serves(device: str, deployment: str, deployments: Mapping[str, Sequence[str]] | None = None) -> bool:
    """Whether canonical ``device`` is classified for canonical ``deployment`` (``deployments``
    default: :data:`DEVICE_DEPLOYMENTS`)."""
    served = deployments if deployments is not None else DEVICE_DEPLOYMENTS
    return deployment in served.get(device, ())


# ------------------------------------------------------------------------------------------------
# What people write: instance types, TPU slices, counts, model-card power notes, ambiguous names
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HardwareSpec:
    """What a hardware text means: the catalogue device, how many (when the text says), the power the
    text states for it, and a note when the reading involved a choice (ambiguity, instance type)."""

    written: str
    device: str  # canonical catalogue name
    count: int | None = None  # from an instance type, a TPU slice or "8 x ..."; None = not stated
    stated_power_w: float | None = None  # "(TDP of 700W)": the power the text gives per device
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "written": self.written,
            "device": self.device,
            "count": self.count,
            "stated_power_w": self.stated_power_w,
            "note": self.note,
        }


_COUNT = re.compile(r"^\s*(\d{1,5})\s*(?:[x\u00d7*]\s*|\s+)(\S.*)$", re.IGNORECASE)
_PARENS = re.compile(r"\(([^)]*)\)")
_WATTS = re.compile(
    r"(\d+(?:\.\d+)?)\s*(?:-|\u2013|to)\s*(\d+(?:\.\d+)?)\s*w\b|(\d+(?:\.\d+)?)\s*w\b", re.IGNORECASE
)
_TPU_SLICE = re.compile(
    r"^(?:(?:google|cloud)\s*)?(?:tpu\s*-?\s*)?v(\d)\s*(e|p|litepod)?\s*-\s*(\d{1,5})$", re.IGNORECASE
)
_TPU_DEVICE: Final[dict[str, str]] = {
    "2": "TPU-v2",
    "3": "TPU-v3",
    "4": "TPU-v4",
    "5e": "TPU-v5e",
    "5litepod": "TPU-v5e",
    "5p": "TPU-v5p",
}


def parse_hardware(text: str, task: Task = "inference", where: str = "") -> HardwareSpec:
    """Read a hardware text as people write it (see the module docstring). Unknown ->
    :class:`UnknownHardwareError` naming ``where`` with the closest known names."""
    written = text.strip()
    names = catalogue_names()
    exact = names.lookup(written)
    if exact is not None and fold(written) not in AMBIGUOUS:
        return HardwareSpec(written, exact)
    instance = instances().find(written)
    if instance is not None:
        return HardwareSpec(
            written,
            instance.device,
            instance.count,
            note=f"instance type {instance.name}: {instance.count} x {instance.device} ({instance.source})",
        )
    slice_ = _TPU_SLICE.match(written)
    if slice_ is not None:
        gen = slice_[1] + (slice_[2] or "").lower()
        device = _TPU_DEVICE.get(gen)
        if device is not None:
            size = int(slice_[3])
            chips = size if gen in ("5e", "5litepod") else max(1, size // 2)
            unit = "chips" if gen in ("5e", "5litepod") else "TensorCores, 2 per chip"
            return HardwareSpec(
                written, device, chips, note=f"TPU slice {written}: {size} {unit} = {chips} x {device}"
            )
    # "H100-80GB (TDP of 700W)": the power note picks the variant and is the stated power.
    power_lo = power_hi = None
    core = written
    for inside in _PARENS.findall(written):
        watts = _WATTS.search(inside)
        if watts is not None:
            if watts[3]:
                power_lo = power_hi = float(watts[3])
            else:
                power_lo, power_hi = sorted((float(watts[1]), float(watts[2])))
    if power_hi is not None:
        core = _PARENS.sub(" ", written).strip()
    count = None
    counted = _COUNT.match(core)
    if counted is not None and names.lookup(core) is None:
        count, core = int(counted[1]), counted[2].strip()
        if count < 1:
            raise ValueError(f"{where + ': ' if where else ''}device count must be >= 1 in {written!r}")
    spec = _device(core, task, power_lo, power_hi, where)
    notes = [n for n in (spec.note,) if n]
    stated = None
    if power_hi is not None:
        stated = power_hi if power_lo == power_hi else _within(spec.device, power_lo, power_hi)
        notes.append(f"stated power {stated:g} W per device from {written!r}")
    if count is not None and count > 1:
        notes.append(f"{count} devices from {written!r}")
    return HardwareSpec(written, spec.device, count, stated, "; ".join(notes))


def _within(device: str, low: float | None, high: float) -> float:
    """The device's TDP when it lies in the stated range, else the range's top."""
    tdp = hardware().get(device).tdp_w
    return tdp if low is not None and low <= tdp <= high else high


def _device(
    core: str, task: Task, power_lo: float | None, power_hi: float | None, where: str
) -> HardwareSpec:
    names = catalogue_names()
    for candidate in (core, core[:-1] if core.lower().endswith("s") and len(core) > 2 else ""):
        if not candidate:
            continue
        ambiguous = next((AMBIGUOUS[v] for v in _variants(fold(candidate)) if v in AMBIGUOUS), None)
        if ambiguous is not None:
            return _choose(core, ambiguous, task, power_lo, power_hi)
        found = names.lookup(candidate)
        if found is not None:
            return HardwareSpec(core, found)
    raise UnknownHardwareError(core, names.closest(core), names.names(), where)


def _choose(
    written: str, amb: Ambiguity, task: Task, power_lo: float | None, power_hi: float | None
) -> HardwareSpec:
    if power_hi is not None:
        low = power_lo if power_lo is not None else power_hi
        fits = [c for c in amb.candidates if low <= hardware().get(c).tdp_w <= power_hi]
        if fits:
            choice = fits[0]
            return HardwareSpec(
                written,
                choice,
                note=f"{written!r} with {_watts(power_lo, power_hi)}: {choice} "
                f"(rated {hardware().get(choice).tdp_w:g} W) among {', '.join(amb.candidates)}",
            )
    choice = amb.training if task == "training" else amb.inference
    others = ", ".join(c for c in amb.candidates if c != choice)
    ask = f"; name the part ({others}) for another" if others else ""
    return HardwareSpec(
        written,
        choice,
        note=f"{written!r} is ambiguous: {choice} assumed for {task} ({amb.why}){ask}",
    )


def _watts(low: float | None, high: float) -> str:
    return f"{high:g} W" if low is None or low == high else f"{low:g}-{high:g} W"


#: extra_data / requirement keys that say a training run is described.
TRAINING_KEYS: Final[tuple[str, ...]] = (
    "training_hours",
    "training_device_hours",
    "training_days",
    "training_tokens",
    "training_flops",
    "training_samples",
    "epochs",
)
_TRAINING_WORDS = re.compile(
    r"\b(?:train(?:s|ed|ing)?|fine-?tun\w*|pre-?train\w*|finetun\w*)\b", re.IGNORECASE
)


def task_of(text: str, values: Mapping[str, Any]) -> Task:
    """``training`` when ``values`` (extra_data or extracted requirements) carry a training input
    or the text speaks of training / fine-tuning; ``inference`` otherwise."""
    if any(values.get(k) not in (None, "") for k in TRAINING_KEYS):
        return "training"
    return "training" if _TRAINING_WORDS.search(text) else "inference"


_TPU_IN_TEXT = re.compile(r"\b(?:(?:cloud\s+)?tpu\s*)?v\d(?:e|p|litepod)?-\d{1,5}\b", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*[A-Za-z0-9]")


def hardware_in_text(text: str) -> str | None:
    """A cloud instance type or TPU slice named in free text ("on a p4d.24xlarge", "on TPU v4-32"),
    as written; None when there is none. Only these unambiguous patterns: device names in prose are
    the requirement extractor's ``hardware`` key."""
    table = instances()
    for token in _TOKEN.findall(text):
        bare = token[3:] if token.lower().startswith("ml.") else token  # SageMaker's "ml.p4d.24xlarge"
        if table.find(bare) is not None and any(ch.isdigit() for ch in bare) and len(bare) > 3:
            return str(bare)
    found = _TPU_IN_TEXT.search(text)
    return found.group(0) if found else None
