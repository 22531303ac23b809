"""What ``sustainml catalogue models|hardware|regions [--json]`` prints.

- ``rows(kind)``: one flat dict per entry with the table's columns (numbers in the units the headers
  name), in catalogue order.
- ``render_table(kind, wide=...)``: those rows as a rich ``Table`` (all columns, or with
  ``wide=False`` those that fit 80 columns); every cell is plain ``Text``, so names with brackets
  are never read as markup.
- ``as_json(kind)``: every field of every entry (JSON-ready), for ``--json``.

``local-cpu`` is listed as measured on this machine (``localcpu.local_cpu_entry``: cached, about
1 s the first time) unless ``measure_local=False``. A catalogue whose data file is missing raises
``CatalogueUnavailable`` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Literal, cast, get_args

from rich import box
from rich.table import Table
from rich.text import Text

from sustainml.catalogue import schema
from sustainml.catalogue.schema import HardwareEntry, ModelEntry, RegionEntry

Kind = Literal["models", "hardware", "regions"]
KINDS: tuple[str, ...] = get_args(Kind)

#: The names upstream's HW_RESOURCES answers to ``hardwares``, in its order: sorted simulator
#: names, sorted FPGA boards, then the DFKI predictor's device (the original framework's answer).
_UPSTREAM_SIMULATOR = (
    "DGX100", "V100", "H100", "H100_x2", "H100_x3", "H100_x4", "H100_x5", "H100_x8", "H200", "H20",
    "A800", "A6000", "A17Pro", "Dimensity9300", "Snapdragon8gen3", "SAM_LPDDR5PIM", "PIM_AI_1chip",
    "PIM_AI_4chip", "PIM_AI_1dimm", "PIM_AI_2dimm", "PIM_AI_4dimm", "PIM_AI_6dimm", "PIM_AI_8dimm",
    "PIM_AI_10dimm", "PIM_AI_12dimm", "PIM_AI_16dimm", "PIM_AI_24dimm", "CXL_PIM_BC", "CXL_PIM_nBC",
)  # fmt: skip
_UPSTREAM_FPGA = ("Zynq UltraScale+ ZCU102", "Zynq UltraScale+ ZCU104", "Ultra96-V2", "TySOM-3A-ZU19EG")
UPSTREAM_HARDWARE_NAMES: tuple[str, ...] = (
    *sorted(_UPSTREAM_SIMULATOR),
    *sorted(_UPSTREAM_FPGA),
    "FPGA (xczu19eg-ffvb1517-2-i)",
)


class CatalogueUnavailable(RuntimeError):
    """A catalogue's data file is missing or unreadable; ``str()`` says which and why."""


def _check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"unknown catalogue {kind!r}; choose one of: {', '.join(KINDS)}")
    return cast(Kind, kind)


def _models() -> list[ModelEntry]:
    try:
        return list(schema.models())
    except FileNotFoundError as exc:
        raise CatalogueUnavailable(
            "the model catalogue is not available: sustainml/catalogue/data/models.json is missing"
        ) from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise CatalogueUnavailable(f"the model catalogue (models.json) is invalid: {exc}") from exc


def _hardware(measure_local: bool) -> list[HardwareEntry]:
    entries = list(schema.hardware())
    if not measure_local:
        return entries
    from sustainml.catalogue.localcpu import LOCAL_CPU, local_cpu_entry

    return [local_cpu_entry() if e.name == LOCAL_CPU else e for e in entries]


def _regions() -> list[RegionEntry]:
    return list(schema.regions())


# ------------------------------------------------------------------------------------------------
# Rows
# ------------------------------------------------------------------------------------------------


def _model_row(m: ModelEntry) -> dict[str, Any]:
    q = m.quality
    return {
        "name": m.name,
        "family": m.family,
        "goals": ", ".join(m.goals),
        "modality": m.modality,
        "input": "x".join(str(d) for d in m.input_shape),
        "params_m": m.parameters / 1e6,
        "gmacs": m.macs / 1e9,
        "quality": f"{q.metric} {q.value:g} ({q.dataset})",
        "licence": m.licence,
        "year": m.year,
        "estimated": ", ".join(m.estimated),
    }


def _tera(value: float | None) -> float | None:
    return None if value is None else value / 1e12


_SHORT = {
    "peak_flops": "peaks",
    "memory_bandwidth_gbs": "mem BW",
    "memory_gb": "memory",
    "tdp_w": "TDP",
    "idle_w": "idle",
}


def _short_estimated(fields: tuple[str, ...]) -> str:
    """``("peak_flops.fp32", "idle_w")`` -> ``"fp32, idle"`` (the table's form; JSON keeps the names)."""
    return ", ".join(_SHORT.get(f, f.removeprefix("peak_flops.")) for f in fields)


def _hardware_row(h: HardwareEntry) -> dict[str, Any]:
    half = h.peak_flops.get("fp16") or h.peak_flops.get("bf16")
    return {
        "name": h.name,
        "class": h.device_class,
        "vendor": h.vendor,
        "fp32_tflops": _tera(h.peak_flops.get("fp32")),
        "fp16_tflops": _tera(half),
        "int8_tops": _tera(h.peak_flops.get("int8")),
        "memory_bandwidth_gbs": h.memory_bandwidth_gbs,
        "memory_gb": h.memory_gb,
        "tdp_w": h.tdp_w,
        "idle_w": h.idle_w,
        "year": h.year or None,
        "estimated": _short_estimated(h.estimated),
    }


def _basis(r: RegionEntry) -> str:
    """Where a region's figure comes from, in a few words (the full text is in ``source``)."""
    if r.kind == "world":
        return "dataset (world)"
    if r.kind == "continent":
        return "generation-weighted mean"
    if "world default used" in r.source:
        return "fallback: world"
    if "continent value used" in r.source:
        return f"fallback: {r.continent}"
    return "dataset"


def _region_row(r: RegionEntry) -> dict[str, Any]:
    return {
        "code": r.code,
        "name": r.name,
        "continent": r.continent,
        "kind": r.kind,
        "carbon_intensity": r.carbon_intensity,
        "year": r.year,
        "basis": _basis(r),
    }


def rows(kind: str, *, measure_local: bool = True) -> list[dict[str, Any]]:
    """Table rows of one catalogue, in catalogue order."""
    kind = _check_kind(kind)
    if kind == "models":
        return [_model_row(m) for m in _models()]
    if kind == "hardware":
        return [_hardware_row(h) for h in _hardware(measure_local)]
    return [_region_row(r) for r in _regions()]


# ------------------------------------------------------------------------------------------------
# JSON
# ------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def as_json(kind: str, *, measure_local: bool = True) -> list[dict[str, Any]]:
    """Every field of every entry, JSON-ready (tuples become lists)."""
    kind = _check_kind(kind)
    entries: list[Any]
    if kind == "models":
        entries = _models()
    elif kind == "hardware":
        entries = _hardware(measure_local)
    else:
        entries = _regions()
    return [_jsonable(asdict(e)) for e in entries]


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------


def _num(value: Any) -> str:
    """Compact human figure: thousands separators for big values, 3 significant digits for small."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    x = float(value)
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


# (row key, header, right-aligned number?)
_COLUMNS: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "models": (
        ("name", "model", False),
        ("family", "family", False),
        ("goals", "goals", False),
        ("modality", "modality", False),
        ("input", "input shape", False),
        ("params_m", "params (M)", True),
        ("gmacs", "MACs (G)", True),
        ("quality", "quality", False),
        ("licence", "licence", False),
        ("year", "year", True),
        ("estimated", "estimated", False),
    ),
    "hardware": (
        ("name", "device", False),
        ("class", "class", False),
        ("vendor", "vendor", False),
        ("fp32_tflops", "fp32 (TFLOPS)", True),
        ("fp16_tflops", "fp16/bf16 (TFLOPS)", True),
        ("int8_tops", "int8 (TOPS)", True),
        ("memory_bandwidth_gbs", "mem BW (GB/s)", True),
        ("memory_gb", "memory (GB)", True),
        ("tdp_w", "TDP (W)", True),
        ("idle_w", "idle (W)", True),
        ("year", "year", True),
        ("estimated", "estimated", False),
    ),
    "regions": (
        ("code", "code", False),
        ("name", "region", False),
        ("continent", "continent", False),
        ("kind", "kind", False),
        ("carbon_intensity", "intensity (gCO2e/kWh)", True),
        ("year", "year", True),
        ("basis", "basis", False),
    ),
}

_TITLES = {
    "models": "Model catalogue ({n} architectures; MACs per inference at the reference input)",
    "hardware": "Hardware catalogue ({n} devices; dense peaks; 'estimated' names unpublished figures)",
    "regions": "Grid carbon intensity ({n} regions; Ember / Our World in Data, CC BY 4.0)",
}


#: The columns of the default table, chosen to fit 80 columns (``--wide`` shows them all): row
#: key, a short header with the unit, the widest a text cell may be (longer ones end in "…").
NARROW: dict[str, tuple[tuple[str, str, int | None], ...]] = {
    "models": (("name", "model", 26), ("goals", "goals", 26), ("params_m", "params M", None),
               ("gmacs", "GMACs", None), ("year", "year", None)),
    "hardware": (("name", "device", 26), ("class", "class", 9), ("fp16_tflops", "fp16 TFLOPS", None),
                 ("memory_bandwidth_gbs", "BW GB/s", None), ("memory_gb", "mem GB", None),
                 ("tdp_w", "TDP W", None)),
    "regions": (("code", "code", 12), ("name", "region", 30), ("continent", "continent", 13),
                ("carbon_intensity", "gCO2e/kWh", None), ("year", "year", None)),
}  # fmt: skip


def render_table(kind: str, *, measure_local: bool = True, wide: bool = True) -> Table:
    """The catalogue as a rich table (plain-text cells, units in the headers): every column, or
    with ``wide=False`` the few that fit an 80-column terminal (long names cut with "…")."""
    kind = _check_kind(kind)
    data = rows(kind, measure_local=measure_local)
    fmt: dict[bool, Callable[[Any], str]] = {True: _num, False: lambda v: "" if v is None else str(v)}
    title = _TITLES[kind].format(n=len(data))
    numeric_keys = {key for key, _h, numeric in _COLUMNS[kind] if numeric}
    if wide:
        table = Table(title=title, title_justify="left")
        columns = [(key, numeric) for key, _h, numeric in _COLUMNS[kind]]
        for _key, header, numeric in _COLUMNS[kind]:
            table.add_column(Text(header), justify="right" if numeric else "left", overflow="fold")
    else:
        table = Table(
            title=title + "\n(more columns: --wide; every field: --json)",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        columns = [(key, key in numeric_keys) for key, _h, _w in NARROW[kind]]
        for key, header, width in NARROW[kind]:
            numeric = key in numeric_keys
            table.add_column(
                Text(header),
                justify="right" if numeric else "left",
                no_wrap=True,
                overflow="ellipsis",
                max_width=width,
                min_width=len(header) if numeric else None,
            )
    for row in data:
        table.add_row(*(Text(fmt[numeric](row.get(key))) for key, numeric in columns))
    return table
