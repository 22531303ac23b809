"""Hardware names: resolve what a user typed to a catalogue device, and which devices suit a
deployment target.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from sustainml.catalogue import hardware
from sustainml.workers.logic.common import norm_key

#: One catalogue entry as resolution sees it: the canonical name and its aliases.
NameEntry = tuple[str, Sequence[str]]

#: Words a user may put before a device name ("NVIDIA A100", "UPMEM PIM-AI 1chip"); folded.
VENDOR_PREFIXES: Final[tuple[str, ...]] = (
    "nvidia",
    "upmem",
    "raspberrypifoundation",
    "google",
    "intel",
    "amd",
    "arm",
    "qualcomm",
    "apple",
    "broadcom",
    "stmicroelectronics",
    "espressif",
)

#: Generic words a user may put after a device name ("T4 GPU", "Orin Nano module"); folded.
GENERIC_SUFFIXES: Final[tuple[str, ...]] = ("gpu", "board", "module", "devkit", "sbc", "soc", "mcu", "chip")

#: Deployment targets APP_REQUIREMENTS reports (the ``deployment=`` requirement).
DEPLOYMENT_TARGETS: Final[tuple[str, ...]] = ("cloud", "on-premise", "edge", "mobile", "embedded", "browser")

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
}

#: Deployment targets each device class serves (the catalogue's ``device_class``). A device is
#: offered for "auto" hardware only under a target its class lists. Classification by this module's
#: authors (estimates, not vendor statements): data-centre GPUs and server CPUs are cloud cards also
#: racked on premises; FPGA boards sit at the edge or in a lab; this machine's CPU is on-premise and
#: is what a browser client runs on.
CLASS_DEPLOYMENTS: Final[dict[str, tuple[str, ...]]] = {
    "cloud": ("cloud", "on-premise"),
    "server-cpu": ("cloud", "on-premise"),
    "edge": ("edge",),
    "mobile": ("mobile",),
    "embedded": ("embedded",),
    "pim": ("mobile", "edge"),  # upstream's PIM_AI chips target low-power devices
    "fpga": ("edge", "on-premise"),
    "local": ("on-premise", "browser"),
}

#: Deployment targets of every catalogued device, derived from its class.
DEVICE_DEPLOYMENTS: Final[dict[str, tuple[str, ...]]] = {
    hw.name: CLASS_DEPLOYMENTS.get(hw.device_class, ()) for hw in hardware()
}

_MAX_LISTED: Final = 20  # known names listed in an error when nothing is close


def fold(text: str) -> str:
    """The comparison key of a spelling: case-folded letters and digits only."""
    return norm_key(text)


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
) -> AllowedHardware:
    """Devices of ``names`` (default: the catalogue) that serve ``deployment`` according to
    ``deployments`` (default: :data:`DEVICE_DEPLOYMENTS`, read at call time).

    No target -> every device. An unknown target, or a target no catalogued device serves, also
    gives every device, and the note says so: leaving HW_RESOURCES an empty choice would fail the
    task for a gap in the catalogue rather than in the user's problem."""
    index = names if names is not None else catalogue_names()
    every = index.names()
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
