"""The devices an estimate is made for: catalogue look-up (``local-cpu`` as measured on this
machine), the candidates a task asks for (one, several or ``auto``), and a device's description
with the efficiency factors and utilisation the estimates use for it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from sustainml.catalogue import HardwareEntry, UnknownEntry, hardware
from sustainml.estimate import power as pw
from sustainml.estimate import roofline as rl

log = logging.getLogger(__name__)

AUTO: Final = "auto"
LOCAL_CPU: Final = "local-cpu"


def hardware_names() -> list[str]:
    """Upstream's names that the catalogue holds, in upstream order, then every other device sorted."""
    from sustainml.catalogue.listing import UPSTREAM_HARDWARE_NAMES

    catalogue = [h.name for h in hardware()]
    upstream = [n for n in UPSTREAM_HARDWARE_NAMES if n in catalogue]
    rest = sorted(n for n in catalogue if n not in upstream)
    return [*upstream, *rest]


def resolve_device(name: str, data_dir: Path | None = None) -> HardwareEntry:
    """The catalogue device ``name`` spells (``local-cpu``: as measured on this machine, with the
    calibration kept in ``data_dir``)."""
    try:
        entry = hardware().get(name)
    except UnknownEntry as exc:
        raise ValueError(f"Unknown hardware {name!r}: {exc}") from exc
    if entry.name == LOCAL_CPU:
        from sustainml.catalogue.localcpu import local_cpu_entry

        return local_cpu_entry(data_dir)
    return entry


def candidate_devices(
    requested: Sequence[str], allowed: object, data_dir: Path | None = None
) -> tuple[list[HardwareEntry], str]:
    """(devices to evaluate, how they were chosen) from the requested names: one device; several;
    or ``auto`` -> ``allowed`` (``extra_data.allowed_hardware``; default: every catalogue device)."""
    if any(h.casefold() == AUTO for h in requested):
        if isinstance(allowed, list) and allowed:
            devices: list[HardwareEntry] = []
            seen: set[str] = set()
            skipped: list[str] = []
            for name in allowed:
                try:
                    entry = resolve_device(str(name), data_dir)
                except ValueError:
                    skipped.append(str(name))
                    continue
                if entry.name not in seen:
                    seen.add(entry.name)
                    devices.append(entry)
            if skipped:
                log.warning("allowed_hardware names not in the catalogue, skipped: %s", ", ".join(skipped))
            if not devices:
                raise ValueError(f"none of extra_data.allowed_hardware is a catalogue device: {allowed!r}")
            note = f"auto: {len(devices)} devices of extra_data.allowed_hardware"
            return devices, note + (f" (unknown, skipped: {', '.join(skipped)})" if skipped else "")
        return [resolve_device(h.name, data_dir) for h in hardware()], "auto: every catalogue device"
    devices = []
    for name in requested:
        entry = resolve_device(name, data_dir)
        if all(d.name != entry.name for d in devices):
            devices.append(entry)
    if len(devices) == 1:
        return devices, "hardware_required"
    return devices, f"hardware_required lists {len(devices)} devices: the best is chosen"


def hardware_info(entry: HardwareEntry, data_dir: Path | None = None) -> dict[str, Any]:
    """The catalogue entry with the efficiency factors (``local``: calibrated in ``data_dir``) and
    the utilisation the estimates use for it."""
    eff = rl.efficiency_for(entry, data_dir)
    return {
        "name": entry.name,
        "device_class": entry.device_class,
        "description": entry.description,
        "vendor": entry.vendor,
        "year": entry.year,
        "peak_flops": dict(entry.peak_flops),
        "memory_bandwidth_gbs": entry.memory_bandwidth_gbs,
        "memory_gb": entry.memory_gb,
        "tdp_w": entry.tdp_w,
        "idle_w": entry.idle_w,
        "aliases": ", ".join(entry.aliases),
        "estimated": ", ".join(entry.estimated),
        "source": entry.source,
        "efficiency": eff.to_dict(),
        "default_utilisation": pw.default_utilisation(entry.device_class),
        "power_at_default_utilisation_w": pw.device_power_w(
            entry, pw.default_utilisation(entry.device_class)
        ),
    }


__all__ = ["AUTO", "LOCAL_CPU", "candidate_devices", "hardware_info", "hardware_names", "resolve_device"]
