"""Device power while running inference: ``idle + utilisation x (TDP - idle)``.

The linear form is the one Cloud Carbon Footprint (after Etsy's Cloud Jewels) uses for servers:
power rises linearly from the idle draw to the rated maximum with utilisation
(docs/estimation.md, "Power"). ``idle_w`` and ``tdp_w`` come from the hardware catalogue
(``local-cpu``: RAPL when readable, else the Green Algorithms per-core estimate).

Default utilisation per device class (``DEFAULT_UTILISATION``), i.e. the average fraction of the
idle-to-TDP range drawn *while an inference runs*:

- 0.5 for every class that serves requests (cloud GPUs, server CPUs, laptop and desktop CPUs, edge
  boards, mobile SoCs, PIM, FPGA boards, this machine): Cloud Carbon Footprint's average-utilisation
  fallback of 50 % (LBNL 2016 US data-centre energy report) and CodeCarbon's "constant" CPU mode
  of 50 % of TDP (docs/estimation.md, "Power"). A single small-batch inference rarely saturates a
  large accelerator, and a busy server interleaves several; half the dynamic range is the
  published middle ground, not a measurement.
- 1.0 for ``embedded`` micro-controllers: they have no power management worth modelling while
  computing and run the inference loop at full clock (assumption; their whole range is a few
  hundred mW, so the choice barely moves any total).

Callers may pass their own utilisation (e.g. ``extra_data.utilisation``); it is clamped to [0, 1].
"""

from __future__ import annotations

from typing import Final

from sustainml.catalogue.schema import HardwareEntry

#: Source text of the defaults (travels in ``extra_data`` next to the value used).
UTILISATION_SOURCE: Final = (
    "Cloud Carbon Footprint average-utilisation fallback 50 % (LBNL 2016) / CodeCarbon constant mode "
    "50 % of TDP; embedded MCUs 100 % (assumption: full clock while computing)"
)

#: Average utilisation of the idle-to-TDP range while an inference runs, by device class.
DEFAULT_UTILISATION: Final[dict[str, float]] = {
    "cloud": 0.5,
    "server-cpu": 0.5,
    "desktop": 0.5,
    "edge": 0.5,
    "mobile": 0.5,
    "embedded": 1.0,
    "pim": 0.5,
    "fpga": 0.5,
    "local": 0.5,
}

#: Used for a device class missing from ``DEFAULT_UTILISATION``.
FALLBACK_UTILISATION: Final = 0.5


def default_utilisation(device_class: str) -> float:
    """The documented utilisation of ``device_class`` (``FALLBACK_UTILISATION`` if unknown)."""
    return DEFAULT_UTILISATION.get(device_class, FALLBACK_UTILISATION)


def device_power_w(hw: HardwareEntry, utilisation: float) -> float:
    """Average power in W of ``hw`` at ``utilisation`` (clamped to [0, 1]):
    ``idle_w + utilisation x (tdp_w - idle_w)``. A catalogue idle above TDP is treated as TDP."""
    if utilisation != utilisation:  # NaN
        raise ValueError("utilisation must be a number between 0 and 1, got NaN")
    u = min(max(float(utilisation), 0.0), 1.0)
    tdp = max(float(hw.tdp_w), 0.0)
    idle = min(max(float(hw.idle_w), 0.0), tdp)
    return idle + u * (tdp - idle)


__all__ = [
    "DEFAULT_UTILISATION",
    "FALLBACK_UTILISATION",
    "UTILISATION_SOURCE",
    "default_utilisation",
    "device_power_w",
]
