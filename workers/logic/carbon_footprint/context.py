"""CARBON_FOOTPRINT: what the user said about the run (typed values, the hardware as written, the
grid and site), and the training run a user describes when no model was found."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from sustainml.catalogue import HardwareEntry
from sustainml.config import EstimationSettings
from sustainml.estimate.carbon import (
    GridIntensity,
    UnknownRegionError,
    carbon_kg,
    describe_intensity,
    find_hardware,
    grid_intensity,
)
from sustainml.estimate.embodied import embodied_share
from sustainml.estimate.hardware_choice import HardwareChoice, app_hints, choose_hardware
from sustainml.estimate.pue import DATACENTRE_CLASSES, Pue
from sustainml.estimate.pue import SETTINGS as PUE_SETTINGS
from sustainml.estimate.training import (
    TrainingEstimate,
    estimate_training,
    fmt,
    number_setting,
)
from sustainml.messages.types import (
    HWResource,
    UserInput,
)

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Context:
    """What the user said about the run, read once: typed values (explicit extra_data over the
    requirement keys of the text), the hardware as written, the grid."""

    values: dict[str, Any]
    choice: HardwareChoice
    grid: GridIntensity
    movable: bool
    why_fixed: str
    notes: list[str]  # what could not be used, and why


#: Requirement keys of the text this node reads (explicit extra_data keys of the same name win).
READ_KEYS: Final = (
    "num_devices",
    "training_hours",
    "training_tokens",
    "model_parameters",
    "training_samples",
    "epochs",
    "input_tokens",
)


def read_context(
    user_input: UserInput,
    incoming: dict[str, Any],
    device: HardwareEntry | None,
    settings: EstimationSettings,
) -> Context:
    """What the user said about the run, read once; the grid with the deployment's override."""
    hints = app_hints(user_input, incoming)
    reqs = hints.requirements
    values: dict[str, Any] = {k: reqs[k] for k in READ_KEYS if reqs.get(k) is not None}
    values.update(incoming)
    choice = choose_hardware(user_input, incoming, hints)
    if values.get("num_devices") is None and choice.num_devices is not None:
        values["num_devices"] = choice.num_devices
    region, where = user_input.geo_location_region, "UserInput.geo_location_region"
    if not region.strip():
        text = incoming.get("region") if isinstance(incoming.get("region"), str) else reqs.get("region")
        if isinstance(text, str) and text.strip():
            region = text
            where = "UserInput.extra_data.region" if incoming.get("region") else "the problem text (region)"
    user_ci = number_setting(incoming, "carbon_intensity", strict_minimum=False)
    notes: list[str] = []
    try:
        grid = grid_intensity(
            region,
            user_input.geo_location_continent,
            user_value=user_ci,
            where=where,
            grid_ci=settings.grid_ci,
        )
    except UnknownRegionError as exc:
        if not where.startswith("the problem text"):
            raise  # a region the user typed in a field: refused with the closest names
        notes.append(f"{exc}; the place read from the text is not used")
        grid = grid_intensity(
            "", user_input.geo_location_continent, user_value=user_ci, grid_ci=settings.grid_ci
        )
    fixed = device is not None and device.device_class not in DATACENTRE_CLASSES
    deployment = choice.deployment
    why = ""
    if fixed and device is not None:
        why = f"{device.name} ({device.device_class}) runs where it is: the work cannot move grid"
    elif deployment in DEVICE_SIDE:
        fixed, why = True, f"deployment={deployment} runs on the user's side: it cannot move grid"
    return Context(values, choice, grid, not fixed, why, notes)


#: Deployment targets on the user's side: no other grid to move to.
DEVICE_SIDE: Final = frozenset({"edge", "mobile", "embedded", "browser", "desktop"})


def stated_power(choice: HardwareChoice, device: HardwareEntry | None) -> float | None:
    if device is None:
        return None
    return next(
        (s.stated_power_w for s in choice.specs if s.device == device.name and s.stated_power_w), None
    )


#: Accelerators rented from one cloud only: their site is that provider's.
ONE_CLOUD: Final[dict[str, str]] = {"TPU-": "gcp", "Trainium": "aws", "Inferentia": "aws"}


def location_pue(grid: GridIntensity, device: HardwareEntry | None = None) -> Pue | None:
    """The PUE the site implies: the cloud region's provider, else the only cloud that rents the
    device (TPUs: Google Cloud; Trainium, Inferentia: AWS), else None (the class default)."""
    cloud = grid.cloud_region
    if cloud is not None:
        return PUE_SETTINGS.get(cloud.provider)
    if device is not None:
        provider = next((p for prefix, p in ONE_CLOUD.items() if device.name.startswith(prefix)), None)
        if provider is not None:
            return PUE_SETTINGS[provider]
    return None


def training_summary(
    training: TrainingEstimate, ci: float, device: HardwareEntry | None
) -> tuple[dict[str, Any], float, list[str]]:
    """The ``training`` output block (with ranges and the embodied share) and the kgCO2e."""
    kg = carbon_kg(training.energy_wh, ci)
    block: dict[str, Any] = {
        **training.as_dict(),
        "carbon_kg": kg,
        "carbon_kg_low": carbon_kg(training.energy_wh_low, ci),
        "carbon_kg_high": carbon_kg(training.energy_wh_high, ci),
    }
    lines = [
        f"training carbon = {fmt(training.energy_wh)} Wh / 1000 x {fmt(ci)} gCO2e/kWh / 1000 = "
        f"{fmt(kg)} kgCO2e (range {fmt(block['carbon_kg_low'])}-{fmt(block['carbon_kg_high'])})"
    ]
    if device is not None:
        share = embodied_share(device, training.device_hours)
        block["embodied"] = share.as_dict()
        lines.append(
            f"embodied carbon of the hardware's share = {fmt(share.per_device_kg)} kgCO2e per device x "
            f"{fmt(share.device_hours)} device-hours / ({fmt(share.lifetime_years)} years x 8760 h) = "
            f"{fmt(share.kg)} kgCO2e (range {fmt(share.low_kg)}-{fmt(share.high_kg)}; reported apart, not in "
            "carbon_footprint)"
        )
    return block, kg, lines


def stated_run(
    user_input: UserInput, incoming: dict[str, Any], hw: HWResource, settings: EstimationSettings
) -> dict[str, Any] | None:
    """The training run the user described (its length, or model size and tokens) on the hardware
    they named, when no model was found; None when they described none."""
    probe = app_hints(user_input, incoming).requirements
    keys = ("training_device_hours", "training_hours", "training_days", "training_flops", "training_tokens")
    if not any(incoming.get(k) is not None or probe.get(k) is not None for k in keys):
        return None
    device = find_hardware(hw.hw_description, data_dir=settings.data_dir)
    if device is None:
        return None  # "auto" or unknown: nothing named to run it on
    ctx = read_context(user_input, incoming, device, settings)
    training = estimate_training(
        ctx.values,
        device=device,
        forward_flops=None,
        stated_power_w=stated_power(ctx.choice, device),
        default_pue_setting=location_pue(ctx.grid, device),
    )
    block, kg, lines = training_summary(training, ctx.grid.g_per_kwh, device)
    return {
        "_carbon_kg": kg,
        "_energy_wh": training.energy_wh,
        "_intensity": ctx.grid.g_per_kwh,
        "note": "no model was found; the training run you described is still estimated on the hardware named",
        "hardware": device.name,
        "device_class": device.device_class,
        "hardware_notes": ctx.choice.notes,
        "training": block,
        "grid": {**ctx.grid.as_dict(), "notes": ctx.notes},
        "grid_ci_source": ctx.grid.source,
        "assumptions": {k: v.as_dict() for k, v in training.assumptions.items()},
        "breakdown": [*training.breakdown, describe_intensity(ctx.grid), *lines],
    }
