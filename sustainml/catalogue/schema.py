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
from dataclasses import dataclass, field, replace
from functools import cache, cached_property, lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from sustainml.estimate.transformer import TransformerSpec

DeviceClass = Literal[
    "cloud", "server-cpu", "desktop", "edge", "mobile", "embedded", "pim", "fpga", "local"
]  # fmt: skip
Precision = Literal["fp32", "tf32", "fp16", "bf16", "int8", "int4"]


class UnknownEntry(KeyError):
    """A name no catalogue entry answers to; ``str()`` lists the closest names."""

    def __str__(self) -> str:
        return str(self.args[0])


@lru_cache(maxsize=8192)
def fold(name: str) -> str:
    """Case/punctuation folding used by every look-up (memoised: catalogue look-ups fold the same
    few hundred names on every task)."""
    return re.sub(r"[\s\-_.()/]+", "", name.strip().lower())


@lru_cache(maxsize=8192)
def model_fold(name: str) -> str:
    """``fold`` for model names: a decimal point between digits is kept (as ``p``), so
    ``opt-1.3b`` and ``opt-13b`` stay two models while ``Llama 3.1`` = ``llama-3.1``."""
    return fold(re.sub(r"(?<=\d)\.(?=\d)", "p", name.strip()))


@dataclass(frozen=True)
class Quality:
    metric: str  # e.g. "top-1 accuracy", "mAP@0.5:0.95", "WER", "BLEU"
    value: float
    dataset: str
    source: str  # URL or citation
    higher_is_better: bool = True


@dataclass(frozen=True)
class Component:
    """One part of a pipeline model (diffusion: denoiser, text encoders, VAE; vision-language:
    vision tower, language model), with its published parameter count and what one run costs."""

    name: str
    parameters: int
    runs: Literal["per-step", "per-token", "once"]  # per denoising step, per generated token, per request
    macs: int = 0  # multiply-accumulates of one run at the entry's reference input (0: not stated)
    architecture: dict[str, Any] | None = None  # transformer shape, when the part is one
    source: str = ""


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
    # Transformer shape (``sustainml.estimate.transformer``): entries too large for a built graph
    # have ``builder == ""`` and are costed analytically from it.
    architecture: dict[str, Any] | None = None
    languages: tuple[str, ...] = ()  # ISO 639-1 codes it handles; () = not language-specific
    context: int = 0  # longest input in tokens (0: not a token model)
    components: tuple[Component, ...] = ()  # parts of a pipeline; their parameters sum to ``parameters``
    tags: tuple[str, ...] = ()  # "base", "chat", "instruct", "moe", "distilled", ...
    default_precision: str = "fp32"  # the precision the weights are released and usually run in
    active_parameters: int = 0  # mixture-of-experts: parameters used per token as published (0: all)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def analytic(self) -> bool:
        """No ONNX graph: costed from ``architecture`` / ``components``."""
        return not self.builder

    @cached_property
    def transformer(self) -> TransformerSpec | None:
        """The shape as a ``TransformerSpec`` (the language model for a vision-language model)."""
        from sustainml.estimate.transformer import from_architecture

        if self.architecture is None:
            return None
        return from_architecture(self.architecture, where=f"model {self.name}: architecture")

    @property
    def parameters_active(self) -> int:
        """Parameters one token passes through (all of them unless mixture-of-experts)."""
        return self.active_parameters or self.parameters

    def covers(self, languages: Iterable[str]) -> bool:
        """True when the model handles every language in ``languages`` (non-language models: all)."""
        return not self.languages or all(code in self.languages for code in languages)

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
    _fold = staticmethod(fold)

    def __init__(self, entries: Iterable[E], key: str) -> None:
        self._entries: list[E] = list(entries)
        self._index: dict[str, E] = {}
        for entry in self._entries:
            names: tuple[str, ...] = (str(getattr(entry, key)), *entry.aliases)
            for name in names:
                folded = self._fold(name)
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
        return self._index.get(self._fold(name))

    def get(self, name: str) -> E:
        entry = self.find(name)
        if entry is None:
            names = sorted({str(getattr(item, self._key)) for item in self._entries})
            close = difflib.get_close_matches(
                self._fold(name), [self._fold(n) for n in names], n=5, cutoff=0.4
            )
            by_fold = {self._fold(n): n for n in names}
            hint = ", ".join(by_fold[c] for c in close) or ", ".join(names[:10])
            raise UnknownEntry(f"unknown {self.what} {name!r}; closest: {hint}")
        return entry

    resolve = get
    what = "entry"


#: A word of a model name as people write it ("Llama-3.1-8B", "meta-llama/Llama-2-7b", "SDXL").
_NAME_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*[A-Za-z0-9]|[A-Za-z0-9]")


class ModelCatalogue(_Catalogue[ModelEntry]):
    what = "model"
    _fold = staticmethod(model_fold)

    def __init__(self, entries: Iterable[ModelEntry], key: str) -> None:
        super().__init__(entries, key)
        self._by_goal: dict[str, list[ModelEntry]] = {}
        for entry in self._entries:
            for goal in entry.goals:
                self._by_goal.setdefault(goal, []).append(entry)

    def for_goal(self, goal: str, modality: str | None = None) -> list[ModelEntry]:
        found = self._by_goal.get(goal, [])
        return [m for m in found if modality is None or m.modality == modality]

    def named_in_text(self, text: str) -> ModelEntry | None:
        """The model a description names ("... with a Llama-3.1-70B-Instruct model", "Llama 2 7B
        chat", "SDXL at 1024x1024"): the longest span of up to 4 words that is a name or alias and
        looks like a model name (a digit, '-' or '/' in it, or written in capitals, and at least
        4 characters), so common words that are also aliases ("whisper", "bloom") are not taken."""
        tokens = _NAME_TOKEN.findall(text)
        for size in (4, 3, 2, 1):
            for i in range(len(tokens) - size + 1):
                span = " ".join(tokens[i : i + size])
                if len(span) < 4 or not (re.search(r"[0-9/-]", span) or span.isupper()):
                    continue
                entry = self.find(span)
                if entry is not None:
                    return entry
        return None

    def closest(self, name: str, n: int = 5) -> list[str]:
        """Names of the ``n`` entries whose names or aliases are closest to ``name``."""
        labels: dict[str, str] = {}
        for entry in self._entries:
            for label in (entry.name, *entry.aliases):
                labels.setdefault(model_fold(label), entry.name)
        close = difflib.get_close_matches(model_fold(name), list(labels), n=4 * n, cutoff=0.4)
        return list(dict.fromkeys(labels[c] for c in close))[:n]


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


def _model_entry(raw: dict[str, Any], language_sets: dict[str, list[str]]) -> ModelEntry:
    raw = _tuples(raw, "goals", "input_shape", "aliases", "estimated", "tags")
    raw["quality"] = Quality(**raw["quality"])
    langs = raw.get("languages", ())
    if isinstance(langs, str):  # "@name": a language set defined once at the top of the file
        if not langs.startswith("@") or langs[1:] not in language_sets:
            raise ValueError(f"model {raw.get('name')}: unknown language set {langs!r}")
        langs = language_sets[langs[1:]]
    raw["languages"] = tuple(langs)
    parts = tuple(Component(**c) for c in raw.get("components", ()))
    raw["components"] = parts
    if parts and sum(c.parameters for c in parts) != raw["parameters"]:
        raise ValueError(f"model {raw.get('name')}: components do not sum to parameters")
    entry = ModelEntry(**raw)
    if entry.macs <= 0 and entry.transformer is not None:
        # Analytic entry without a stated figure: one forward pass over the reference input.
        tokens = entry.transformer.encoder_context or entry.input_shape[-1]
        macs = int(entry.transformer.prefill_flops(tokens) / 2) + sum(
            c.macs for c in parts if c.runs == "once"
        )
        entry = replace(entry, macs=macs, estimated=tuple(dict.fromkeys((*entry.estimated, "macs"))))
    return entry


@cache
def models() -> ModelCatalogue:
    text = resources.files("sustainml.catalogue").joinpath("data", "models.json").read_text(encoding="utf-8")
    language_sets = dict(json.loads(text).get("language_sets", {}))
    return ModelCatalogue((_model_entry(raw, language_sets) for raw in _load("models.json")), "name")


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


@cache
def cities() -> dict[str, str]:
    """Folded city / state name -> region catalogue code (``regions.json`` key ``cities``)."""
    text = resources.files("sustainml.catalogue").joinpath("data", "regions.json").read_text(encoding="utf-8")
    raw = json.loads(text).get("cities", {})
    if not isinstance(raw, dict):
        raise ValueError("regions.json: 'cities' must be an object of name -> country code")
    table = regions()
    out: dict[str, str] = {}
    for name, code in raw.items():
        entry = table.find(str(code))
        if entry is None or entry.code != code:
            raise ValueError(f"regions.json: city {name!r} names unknown country {code!r}")
        out[fold(str(name))] = entry.code
    return out
