"""Typed entries of the three catalogues and their loaders (shared contract; data in ``data/``).

Name look-ups fold case, spaces, '-', '_' and '.', so ``PIM-AI-1chip`` = ``pim_ai_1chip`` and
``NVIDIA A100`` finds ``A100`` through its aliases. An unknown name raises ``UnknownEntry`` whose
message lists the closest known names.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Generic, Literal, Protocol, TypeVar

DeviceClass = Literal[
    "cloud", "server-cpu", "desktop", "edge", "mobile", "embedded", "pim", "fpga", "local"
]  # fmt: skip
Precision = Literal["fp32", "tf32", "fp16", "bf16", "int8", "int4"]


class UnknownEntry(KeyError):
    """A name no catalogue entry answers to; ``str()`` lists the closest names."""

    def __str__(self) -> str:
        return str(self.args[0])


def fold(name: str) -> str:
    """Case/punctuation folding used by every look-up."""
    return re.sub(r"[\s\-_.()/]+", "", name.strip().lower())


@dataclass(frozen=True)
class Quality:
    metric: str  # e.g. "top-1 accuracy", "mAP@0.5:0.95", "WER", "BLEU"
    value: float
    dataset: str
    source: str  # URL or citation
    higher_is_better: bool = True


@dataclass(frozen=True)
class ModelEntry:
    name: str  # canonical, lower-case with dashes: "resnet-50"
    family: str  # "CNN", "Transformer", "RNN", "MLP", ...
    goals: tuple[str, ...]  # task-encoder vocabulary (HF task names)
    modality: str  # input modality: image, video, text, audio, time-series, tabular
    input_shape: tuple[int, ...]  # reference input, batch 1 (e.g. (1, 3, 224, 224); tokens: (1, 128))
    input_dtype: str  # "float32" or "int64" (token ids)
    parameters: int
    macs: int  # multiply-accumulates per inference at input_shape (FLOPs = 2 x MACs)
    quality: Quality
    licence: str  # licence of the original published weights
    year: int
    source: str  # where parameters/MACs come from
    builder: str  # key of the ONNX graph builder that reproduces the architecture
    builder_args: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    estimated: tuple[str, ...] = ()  # fields that are estimates, not published figures

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def weights_mb_fp32(self) -> float:
        return self.parameters * 4 / 1e6


@dataclass(frozen=True)
class HardwareEntry:
    name: str  # canonical, as users know it: "A100", "PIM_AI_1chip", "local-cpu"
    device_class: DeviceClass
    description: str
    peak_flops: dict[str, float]  # precision -> FLOP/s (dense)
    memory_bandwidth_gbs: float  # GB/s
    memory_gb: float
    tdp_w: float
    idle_w: float
    source: str
    aliases: tuple[str, ...] = ()
    estimated: tuple[str, ...] = ()
    vendor: str = ""
    year: int = 0

    def peak(self, precision: str = "fp32") -> float:
        """Peak FLOP/s at ``precision``, falling back to fp32 when the device has no faster path."""
        return self.peak_flops.get(precision) or self.peak_flops["fp32"]


@dataclass(frozen=True)
class RegionEntry:
    code: str  # ISO 3166-1 alpha-2, or a continent code / "WORLD"
    name: str
    continent: str  # Africa, Asia, Europe, North America, Oceania, South America
    carbon_intensity: float  # gCO2e/kWh (life-cycle or direct: see the dataset's note)
    year: int
    source: str
    aliases: tuple[str, ...] = ()
    kind: Literal["country", "continent", "world"] = "country"


@dataclass(frozen=True)
class CloudRegion:
    """A cloud provider's region and the country whose grid it draws from."""

    name: str  # as the provider spells it: "us-east-1" (AWS), "us-east1" (GCP), "westeurope" (Azure)
    provider: str  # aws | gcp | azure
    location: str
    country: str  # region catalogue code
    lat: float
    lon: float
    source: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceEntry:
    """A cloud instance type (or accelerator slice): the catalogue device it carries and how many."""

    name: str  # as the provider spells it: "p4d.24xlarge", "a2-highgpu-8g", "Standard_ND96asr_v4"
    device: str  # canonical hardware catalogue name
    count: int
    provider: str  # aws | gcp | azure
    source: str
    aliases: tuple[str, ...] = ()


class _Named(Protocol):
    @property
    def aliases(self) -> tuple[str, ...]: ...


E = TypeVar("E", bound=_Named)


class _Catalogue(Generic[E]):
    def __init__(self, entries: Iterable[E], key: str) -> None:
        self._entries: list[E] = list(entries)
        self._index: dict[str, E] = {}
        for entry in self._entries:
            names: tuple[str, ...] = (str(getattr(entry, key)), *entry.aliases)
            for name in names:
                folded = fold(name)
                other = self._index.get(folded)
                if other is not None and other is not entry:
                    raise ValueError(
                        f"catalogue: {name!r} names both {getattr(other, key)!r} and {getattr(entry, key)!r}"
                    )
                self._index[folded] = entry
        self._key = key

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, name: str) -> E | None:
        return self._index.get(fold(name))

    def get(self, name: str) -> E:
        entry = self.find(name)
        if entry is None:
            names = sorted({str(getattr(item, self._key)) for item in self._entries})
            close = difflib.get_close_matches(fold(name), [fold(n) for n in names], n=5, cutoff=0.4)
            by_fold = {fold(n): n for n in names}
            hint = ", ".join(by_fold[c] for c in close) or ", ".join(names[:10])
            raise UnknownEntry(f"unknown {self.what} {name!r}; closest: {hint}")
        return entry

    resolve = get
    what = "entry"


class ModelCatalogue(_Catalogue[ModelEntry]):
    what = "model"

    def for_goal(self, goal: str, modality: str | None = None) -> list[ModelEntry]:
        return [m for m in self if goal in m.goals and (modality is None or m.modality == modality)]


class HardwareCatalogue(_Catalogue[HardwareEntry]):
    what = "hardware"

    def of_class(self, *classes: str) -> list[HardwareEntry]:
        return [h for h in self if h.device_class in classes]


class RegionCatalogue(_Catalogue[RegionEntry]):
    what = "region"

    def intensity(self, region: str) -> RegionEntry:
        return self.get(region)


def _load(name: str, key: str = "entries") -> list[dict[str, Any]]:
    text = resources.files("sustainml.catalogue").joinpath("data", name).read_text(encoding="utf-8")
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ValueError(f"catalogue data {name}: expected an object with an {key!r} list")
    return list(data[key])


def _tuples(d: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: tuple(v) if k in names and isinstance(v, list) else v for k, v in d.items()}


@cache
def models() -> ModelCatalogue:
    entries = []
    for raw in _load("models.json"):
        raw = _tuples(raw, "goals", "input_shape", "aliases", "estimated")
        raw["quality"] = Quality(**raw["quality"])
        entries.append(ModelEntry(**raw))
    return ModelCatalogue(entries, "name")


@cache
def hardware() -> HardwareCatalogue:
    return HardwareCatalogue(
        (HardwareEntry(**_tuples(r, "aliases", "estimated")) for r in _load("hardware.json")), "name"
    )


class InstanceCatalogue(_Catalogue[InstanceEntry]):
    what = "instance type"


@cache
def instances() -> InstanceCatalogue:
    """Cloud instance types of ``hardware.json`` (key ``instances``); every device they name is a
    hardware catalogue entry (checked here, so a typo in the data fails loudly)."""
    table = InstanceCatalogue(
        (InstanceEntry(**_tuples(r, "aliases")) for r in _load("hardware.json", "instances")), "name"
    )
    devices = hardware()
    for row in table:
        if devices.find(row.device) is None or devices.get(row.device).name != row.device:
            raise ValueError(
                f"hardware.json instance {row.name!r}: {row.device!r} is not a canonical device name"
            )
        if row.count < 1:
            raise ValueError(f"hardware.json instance {row.name!r}: count must be >= 1")
    return table


@cache
def regions() -> RegionCatalogue:
    return RegionCatalogue((RegionEntry(**_tuples(r, "aliases")) for r in _load("regions.json")), "code")


@cache
def cloud_regions() -> dict[str, CloudRegion]:
    """Cloud regions of ``regions.json`` (key ``cloud_regions``) by lower-case name, also as
    ``provider:name``. Names are matched exactly (case aside), not folded: AWS ``us-east-1`` and
    GCP ``us-east1`` are different places."""
    table = regions()
    out: dict[str, CloudRegion] = {}
    for raw in _load("regions.json", "cloud_regions"):
        row = CloudRegion(**_tuples(raw, "aliases"))
        entry = table.find(row.country)
        if entry is None or entry.code != row.country:
            raise ValueError(f"regions.json cloud region {row.name!r}: unknown country {row.country!r}")
        for key in (row.name, f"{row.provider}:{row.name}", *row.aliases):
            key = key.strip().lower()
            if key in out and out[key] != row:
                raise ValueError(f"regions.json: cloud region name {key!r} is listed twice")
            out[key] = row
    return out
