"""Grid carbon intensity, inference energy, and greener alternatives (regions and hardware).

Units: energy Wh, carbon kgCO2e, intensity gCO2e/kWh (location-based, lifecycle; the region
catalogue, Ember via Our World in Data, CC BY 4.0: ``sustainml/catalogue/data/REGIONS.md``).

Intensity look-up (``grid_intensity``), first hit wins:

1. ``extra_data.carbon_intensity`` of the task (``source="user"``): the user knows their own
   contract or site better than a deployment-wide setting;
2. ``$SUSTAINML_GRID_CI`` (``source="env"``), the original framework's override;
3. ``geo_location_region`` (or, when it is empty, the ``region`` requirement) as a cloud region of
   AWS, Google Cloud or Azure (``us-east-1``, ``europe-west4``, ``westeurope``, optionally
   ``aws:us-east-1``: the country whose grid it draws from, ``catalogue/data/regions.json``
   ``cloud_regions``), a country (ISO alpha-2 or alpha-3 code, name or alias; "Madrid, Spain" and
   "ES-MD" work through their parts) or a continent / "EU" / "World" row (``source="region"``, or
   ``"continent"`` when the text names a continent). A region that is none of these is an error
   listing the closest names (:class:`UnknownRegionError`), never silently the world average;
4. ``geo_location_continent`` (``source="continent"``, generation-weighted continent mean);
5. the world average, 458.29 g/kWh (Ember 2025 via OWID, ``source="world_default"``).

With an override the location is still resolved, so the comparisons with other regions keep
their continent, and ``table_g_per_kwh`` shows what the table would have said.

Greener alternatives compare the same workload (training run + inferences):

- regions: only where the work can move (data-centre devices; not edge, mobile, desktop or
  on-device work), to a cloud region (of the same provider when the current location is a cloud
  region) whose country's grid is cleaner, nearest first (great-circle distance from the current
  location's cloud regions, else same continent first), positive savings only, one per country,
  top 3;
- hardware: the devices with the lowest energy for the workload among the suitable ones (same
  device class as the current one, or every class if that class has no other suitable device;
  suitable = the model's memory footprint fits the device's memory; ``local-cpu`` is this
  machine, not a choice, and is never proposed). A device's energy follows from its peak FLOP/s
  per W at the precision: training energy = effective training FLOPs / (peak x MFU) x P x PUE;
  the energy per inference scales from the current device's by the ratio of W per peak FLOP/s
  (inference power at the class's default utilisation) and of PUE.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sustainml.catalogue import HardwareEntry, RegionEntry, hardware, regions
from sustainml.catalogue.schema import CloudRegion, cities, cloud_regions, fold
from sustainml.estimate.power import default_utilisation, device_power_w
from sustainml.estimate.training import (
    TrainingEstimate,
    default_pue,
    fmt,
    training_energy_wh,
    training_precision,
)

log = logging.getLogger(__name__)

GRID_CI_ENV: Final = "SUSTAINML_GRID_CI"
#: Inferences the workload counts when ``extra_data.inferences`` is absent: a round number small
#: enough to read per-inference figures off the totals (an assumption, not a usage forecast).
DEFAULT_INFERENCES: Final = 1000
REF_INFERENCES_DEFAULT: Final = (
    "assumption: 1,000 inferences (a round number; set extra_data.inferences to the expected total)"
)
#: Alternatives listed per kind.
ALTERNATIVES: Final = 3
#: Region rows whose figure is borrowed from the continent or the world (REGIONS.md "Countries
#: without a figure" and "Exceptions") say so in their source.
_FALLBACK_ROW = re.compile(r"(continent value|world default) used")
_PARTS = re.compile(r"[,;/|()]|\s-\s|-")


@dataclass(frozen=True)
class GridIntensity:
    """The intensity used, where it came from, and the location it belongs to."""

    g_per_kwh: float
    source: str  # user | env | region | continent | world_default
    code: str  # catalogue code of the location ("FR", "EUROPE", "WORLD")
    name: str
    continent: str  # continent of the location ("" when it is the world)
    year: int
    reference: str  # data set and year of the value used
    query: str  # the text that was looked up
    table_g_per_kwh: float  # what the table gives for the location (differs under an override)
    cloud_region: CloudRegion | None = None  # when the location is a provider's region

    def as_dict(self) -> dict[str, Any]:
        cloud = self.cloud_region
        return {
            "cloud_region": None
            if cloud is None
            else {
                "name": cloud.name,
                "provider": cloud.provider,
                "location": cloud.location,
                "source": cloud.source,
            },
            "carbon_intensity": self.g_per_kwh,
            "source": self.source,
            "code": self.code,
            "name": self.name,
            "continent": self.continent,
            "year": self.year,
            "reference": self.reference,
            "query": self.query,
            "table_carbon_intensity": self.table_g_per_kwh,
        }


class UnknownRegionError(ValueError):
    """A region text that names no cloud region, country, continent or the world."""


def find_cloud_region(text: str) -> CloudRegion | None:
    """The cloud region ``text`` names exactly (case aside): ``us-east-1``, ``aws:us-east-1``,
    ``AWS us-east-1``, ``europe-west4``, ``westeurope``."""
    key = text.strip().lower()
    if not key:
        return None
    table = cloud_regions()
    if key in table:
        return table[key]
    provider, _, rest = key.replace(":", " ").partition(" ")
    provider = {"google": "gcp", "gcloud": "gcp", "microsoft": "azure", "amazon": "aws"}.get(
        provider, provider
    )
    return table.get(f"{provider}:{rest.strip()}") if rest.strip() else None


def find_region(text: str) -> RegionEntry | None:
    """The region row ``text`` names: a cloud region's country, the whole text, then its parts
    ("Madrid, Spain" -> Spain, "ES-MD" -> ES), first part first; a city or US state where cloud data
    centres are ("Frankfurt", "Virginia") gives its country."""
    if not text.strip():
        return None
    cloud = find_cloud_region(text)
    if cloud is not None:
        return regions().get(cloud.country)
    table = regions()
    places = cities()
    for candidate in (text, *_PARTS.split(text)):
        if candidate.strip():
            entry = table.find(candidate)
            if entry is None and fold(candidate) in places:  # a city or state: its country's grid
                entry = table.get(places[fold(candidate)])
            if entry is not None:
                return entry
    return None


def closest_regions(text: str, n: int = 5) -> list[str]:
    """Up to ``n`` known region names closest to ``text`` (countries by name, cloud regions)."""
    names: dict[str, str] = {}
    for r in regions():
        for spelling in (r.name, r.code, *r.aliases):
            names.setdefault(fold(spelling), r.name if r.kind != "country" else f"{r.name} ({r.code})")
    for key, cloud in cloud_regions().items():
        if ":" not in key:
            names.setdefault(fold(key), f"{cloud.name} ({cloud.provider}, {cloud.country})")
    out: list[str] = []
    for match in difflib.get_close_matches(fold(text), list(names), n=4 * n, cutoff=0.5):
        if names[match] not in out:
            out.append(names[match])
    return out[:n]


def resolve_region(text: str, where: str = "region") -> RegionEntry | None:
    """``find_region``, but a non-empty text it cannot place is :class:`UnknownRegionError`
    naming ``where`` and the closest known names."""
    entry = find_region(text)
    if entry is None and text.strip():
        close = closest_regions(text)
        hint = f"closest: {', '.join(close)}" if close else "nothing close"
        raise UnknownRegionError(
            f"{where}: unknown region {text!r} ({hint}; a country name or ISO code, a continent, or a cloud "
            "region such as us-east-1, europe-west4, westeurope; the 'regions' configuration request lists "
            "the countries)"
        )
    return entry


def table_intensity(
    region: str, continent: str = "", where: str = "UserInput.geo_location_region"
) -> GridIntensity:
    """The region -> continent -> world chain over the catalogue, without overrides. A region text
    that names nothing known is an error (:class:`UnknownRegionError`), like an unknown continent."""
    query = ", ".join(t for t in (region.strip(), continent.strip()) if t)
    cloud = find_cloud_region(region)
    entry = resolve_region(region, where)
    if entry is not None:
        source = {"country": "region", "continent": "continent", "world": "world_default"}[entry.kind]
        return _from_entry(entry, source, query, cloud)
    area = resolve_region(continent, "UserInput.geo_location_continent")
    if area is not None and area.kind == "country":
        area = None  # a country typed as a continent: not a continent row; the region was tried
    if area is not None:
        return _from_entry(area, "continent" if area.kind == "continent" else "world_default", query)
    return _from_entry(regions().get("WORLD"), "world_default", query)


def grid_intensity(
    region: str,
    continent: str,
    *,
    user_value: float | None = None,
    env: Mapping[str, str] | None = None,
    where: str = "UserInput.geo_location_region",
    grid_ci: str | None = None,
) -> GridIntensity:
    """The intensity for a task: ``user_value`` (extra_data.carbon_intensity), then the
    deployment's override ``grid_ci`` (``Settings.grid_ci``; or ``$SUSTAINML_GRID_CI`` read from
    ``env``), then the table chain."""
    located = table_intensity(region, continent, where)
    if user_value is not None:
        return _override(located, user_value, "user", "extra_data.carbon_intensity of the task")
    forced = (grid_ci if grid_ci is not None else (env or {}).get(GRID_CI_ENV, "")).strip()
    if forced:
        return _override(located, env_intensity(forced), "env", f"environment variable {GRID_CI_ENV}")
    return located


def env_intensity(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{GRID_CI_ENV}={text!r} must be a non-negative number of gCO2e/kWh")
    return value


def carbon_kg(energy_wh: float, g_per_kwh: float) -> float:
    """kgCO2e of ``energy_wh`` on a grid of ``g_per_kwh``: Wh / 1000 x g/kWh / 1000."""
    return energy_wh / 1000.0 * g_per_kwh / 1000.0


def inference_energy_wh(power_w: float, latency_s: float, pue: float) -> float:
    """Energy of one inference: W x s x PUE / 3600."""
    return power_w * latency_s * pue / 3600.0


def saving_percent(current: float, alternative: float) -> float:
    """How much lower ``alternative`` is than ``current``, in percent (negative: higher)."""
    if current <= 0:
        return 0.0
    return round((1.0 - alternative / current) * 100.0, 2)


def has_own_figure(entry: RegionEntry) -> bool:
    return entry.kind == "country" and not _FALLBACK_ROW.search(entry.source)


def countries(continent: str | None = None) -> list[RegionEntry]:
    """Country rows (optionally of one continent), sorted by code."""
    rows = [r for r in regions() if r.kind == "country" and (continent is None or r.continent == continent)]
    return sorted(rows, key=lambda r: r.code)


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lon) points, km (haversine, Earth radius 6,371 km)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def greener_regions(
    grid: GridIntensity,
    workload_wh: float,
    training_wh: float,
    limit: int = ALTERNATIVES,
    *,
    movable: bool = True,
    why_fixed: str = "",
) -> dict[str, Any]:
    """Cloud regions whose grid is cleaner than the one used, for the same workload, nearest first
    (see the module docstring). ``movable`` False (edge, mobile, desktop or on-device work): none,
    and ``note`` says why."""
    current_kg = carbon_kg(workload_wh, grid.g_per_kwh)
    if not movable:
        note = why_fixed or "the work runs where its device is: it cannot move to another grid"
        return {"scope": "", "current_kg": current_kg, "options": [], "note": note}
    here = _coordinates(grid)
    provider = grid.cloud_region.provider if grid.cloud_region is not None else None
    best: dict[str, tuple[float, CloudRegion, RegionEntry]] = {}
    seen: set[tuple[str, str]] = set()
    for cloud in cloud_regions().values():
        if (cloud.provider, cloud.name) in seen or (provider is not None and cloud.provider != provider):
            continue
        seen.add((cloud.provider, cloud.name))
        country = regions().get(cloud.country)
        if country.code == grid.code or country.carbon_intensity >= grid.g_per_kwh:
            continue  # positive savings only
        if here is not None:
            rank = distance_km(here, (cloud.lat, cloud.lon))
        else:  # no coordinates for the current location: same continent first, then cleaner
            rank = (0.0 if country.continent == grid.continent else 1e6) + country.carbon_intensity
        if country.code not in best or rank < best[country.code][0]:
            best[country.code] = (rank, cloud, country)
    ranked = sorted(best.values(), key=lambda t: (t[0], t[2].code))[:limit]
    options = []
    for rank, cloud, country in ranked:
        kg = carbon_kg(workload_wh, country.carbon_intensity)
        options.append(
            {
                "region": country.code,
                "name": country.name,
                "cloud_region": cloud.name,
                "provider": cloud.provider,
                "location": cloud.location,
                "distance_km": round(rank) if here is not None else None,
                "carbon_intensity": country.carbon_intensity,
                "year": country.year,
                "workload_kg": kg,
                "training_kg": carbon_kg(training_wh, country.carbon_intensity),
                "saving_percent": saving_percent(current_kg, kg),
            }
        )
    scope = f"{provider} regions" if provider else "cloud regions"
    order = "nearest first" if here is not None else "same continent first"
    return {"scope": f"{scope}, {order}", "current_kg": current_kg, "options": options}


def _coordinates(grid: GridIntensity) -> tuple[float, float] | None:
    """Where the current location is: its cloud region, else the mean of its country's regions."""
    if grid.cloud_region is not None:
        return (grid.cloud_region.lat, grid.cloud_region.lon)
    points = {(c.lat, c.lon) for c in cloud_regions().values() if c.country == grid.code}
    if not points:
        return None
    return (sum(p[0] for p in points) / len(points), sum(p[1] for p in points) / len(points))


@dataclass(frozen=True)
class HardwareOption:
    device: HardwareEntry
    training_precision: str
    peak_flops_per_w: float  # at the training precision and training power
    pue: float
    training_wh: float
    inference_wh: float  # all inferences of the workload
    workload_kg: float
    training_kg: float
    saving_percent: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "hardware": self.device.name,
            "device_class": self.device.device_class,
            "training_precision": self.training_precision,
            "peak_flops_per_w": self.peak_flops_per_w,
            "pue": self.pue,
            "training_energy_wh": self.training_wh,
            "inference_energy_wh": self.inference_wh,
            "workload_energy_wh": self.training_wh + self.inference_wh,
            "training_kg": self.training_kg,
            "workload_kg": self.workload_kg,
            "saving_percent": self.saving_percent,
        }


def hardware_options(
    current: HardwareEntry,
    training: TrainingEstimate,
    *,
    inference_wh_per_inference: float,
    inferences: float,
    inference_precision: str,
    g_per_kwh: float,
    memory_mb: float,
    requested_precision: str | None,
    pue_override: float | None,
) -> tuple[str, list[HardwareOption]]:
    """Every suitable other device for the same workload, lowest workload carbon first, and the
    scope searched (``"same class"`` or ``"all classes"``)."""
    current_kg = carbon_kg(training.energy_wh + inference_wh_per_inference * inferences, g_per_kwh)
    cur_inf_w = device_power_w(current, default_utilisation(current.device_class))
    cur_inf_peak = current.peak(inference_precision)
    cur_pue = training.pue

    def suitable(d: HardwareEntry) -> bool:
        if d.name == current.name or d.device_class == "local":
            return False
        if device_power_w(d, training.utilisation) <= 0 or d.peak("fp32") <= 0:
            return False
        return memory_mb <= 0 or memory_mb <= d.memory_gb * 1000.0

    everything = [d for d in hardware() if suitable(d)]
    same = [d for d in everything if d.device_class == current.device_class]
    scope, pool = ("same class", same) if same else ("all classes", everything)

    out: list[HardwareOption] = []
    for d in pool:
        precision = training_precision(d, requested_precision)
        pue = pue_override if pue_override is not None else default_pue(d.device_class)
        train_wh = training_energy_wh(
            training.effective_flops,
            d,
            precision=precision,
            mfu=training.mfu,
            utilisation=training.utilisation,
            pue=pue,
        )
        inf_w = device_power_w(d, default_utilisation(d.device_class))
        per_inference = 0.0
        if cur_inf_w > 0 and cur_inf_peak > 0 and cur_pue > 0:
            ratio = (inf_w / d.peak(inference_precision)) / (cur_inf_w / cur_inf_peak) * (pue / cur_pue)
            per_inference = inference_wh_per_inference * ratio
        inf_wh = per_inference * inferences
        workload_kg = carbon_kg(train_wh + inf_wh, g_per_kwh)
        out.append(
            HardwareOption(
                device=d,
                training_precision=precision,
                peak_flops_per_w=d.peak(precision) / device_power_w(d, training.utilisation),
                pue=pue,
                training_wh=train_wh,
                inference_wh=inf_wh,
                workload_kg=workload_kg,
                training_kg=carbon_kg(train_wh, g_per_kwh),
                saving_percent=saving_percent(current_kg, workload_kg),
            )
        )
    out.sort(key=lambda o: (o.workload_kg, o.device.name))
    return scope, out


def find_hardware(*names: str, data_dir: Path | None = None) -> HardwareEntry | None:
    """The first catalogue device any of ``names`` names (``local-cpu``: as measured on this
    machine, the entry HW_RESOURCES uses, calibrated in ``data_dir``)."""
    table = hardware()
    for name in names:
        if name and name.strip():
            entry = table.find(name)
            if entry is not None and entry.device_class == "local":
                # This machine as measured, the figures HW_RESOURCES used: one figure per device.
                from sustainml.catalogue.localcpu import local_cpu_entry

                return local_cpu_entry(data_dir)
            if entry is not None:
                return entry
    return None


def _continents() -> set[str]:
    return {r.continent for r in regions() if r.kind == "continent"}


def _from_entry(
    entry: RegionEntry, source: str, query: str, cloud: CloudRegion | None = None
) -> GridIntensity:
    continent = entry.continent if entry.kind != "world" else ""
    return GridIntensity(
        cloud_region=cloud,
        g_per_kwh=entry.carbon_intensity,
        source=source,
        code=entry.code,
        name=entry.name,
        continent=continent,
        year=entry.year,
        reference=entry.source,
        query=query,
        table_g_per_kwh=entry.carbon_intensity,
    )


def _override(located: GridIntensity, value: float, source: str, reference: str) -> GridIntensity:
    return GridIntensity(
        g_per_kwh=value,
        source=source,
        code=located.code,
        name=located.name,
        continent=located.continent,
        year=0,
        reference=reference,
        query=located.query,
        table_g_per_kwh=located.g_per_kwh,
        cloud_region=located.cloud_region,
    )


def describe_intensity(grid: GridIntensity) -> str:
    """One line for the breakdown: which value and why."""
    if grid.source in ("user", "env"):
        return (
            f"carbon intensity = {fmt(grid.g_per_kwh)} gCO2e/kWh ({grid.reference}; the table gives "
            f"{fmt(grid.table_g_per_kwh)} for {grid.name})"
        )
    return f"carbon intensity = {fmt(grid.g_per_kwh)} gCO2e/kWh ({grid.name}, {grid.year}, {grid.source})"


__all__ = [
    "ALTERNATIVES",
    "DEFAULT_INFERENCES",
    "GRID_CI_ENV",
    "GridIntensity",
    "HardwareOption",
    "UnknownRegionError",
    "carbon_kg",
    "closest_regions",
    "countries",
    "describe_intensity",
    "distance_km",
    "env_intensity",
    "find_cloud_region",
    "find_hardware",
    "find_region",
    "greener_regions",
    "grid_intensity",
    "hardware_options",
    "has_own_figure",
    "inference_energy_wh",
    "resolve_region",
    "saving_percent",
    "table_intensity",
]
