"""Embodied carbon: the share of the hardware's manufacturing emissions a run uses up.

    share [kgCO2e] = embodied kgCO2e per device x devices x run hours / (lifetime years x 8,760 h)

i.e. manufacturing emissions spread evenly over the hardware's life, counting a device busy for its
whole life (a lower bound on the share: idle time would raise it). Figures per device class, each a
value with a low-high range (kgCO2e per device, host share included for accelerators):

- **data-centre accelerators** (``cloud``): 985.5, range 462.5-985.5. High/value: EcoLogits'
  hardware defaults, 273 kgCO2e per GPU plus an 8-GPU server at 5,700 kgCO2e (712.5 per GPU), 5-year
  life (EcoLogits methodology, https://ecologits.ai/latest/methodology/). Low: the BLOOM footprint
  study, 150 kgCO2e per A100 plus 2,500 kgCO2e per 8-GPU node (312.5 per GPU) (Luccioni, Viguier,
  Ligozat, "Estimating the Carbon Footprint of BLOOM", JMLR 2023, arXiv:2211.02001).
- **server CPUs**: 750 per socket, range 500-1,500 (estimate: a two-socket server of 1,000-3,000
  kgCO2e, the order of magnitude of vendors' server product carbon footprints), 5-year life.
- **laptop and desktop CPUs** (``desktop``, ``local``): 200 per machine, range 100-350, 4-year life
  (estimate: the manufacturing share of laptops' life-cycle footprints in manufacturers' product
  environmental reports, about 150-350 kgCO2e in total, most of it production).
- **phones** (``mobile``): 50, range 30-70, 3-year life (estimate, same kind of reports).
- **edge modules, FPGA boards, PIM modules**: 30, range 10-60, 5-year life (estimate: no published
  product carbon footprint; a board of a phone's order of size).
- **microcontroller boards** (``embedded``): 1, range 0.2-5, 5-year life (estimate).

Upstream's multi-GPU entries count their GPUs: ``H100_xN`` = N devices, ``DGX100`` and ``DGX-A100``
= 8.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from sustainml.catalogue.schema import HardwareEntry

HOURS_PER_YEAR: Final = 8760.0


@dataclass(frozen=True)
class ClassFigure:
    kg: float
    low: float
    high: float
    lifetime_years: float
    source: str


_ECOLOGITS: Final = (
    "EcoLogits hardware defaults: 273 kgCO2e per GPU + 5,700 kgCO2e per 8-GPU server, 5-year life "
    "(https://ecologits.ai/latest/methodology/); low end: BLOOM study, 150 kgCO2e per GPU + 2,500 per 8-GPU "
    "node (Luccioni et al., JMLR 2023, arXiv:2211.02001)"
)

BY_CLASS: Final[dict[str, ClassFigure]] = {
    "cloud": ClassFigure(273.0 + 5700.0 / 8, 150.0 + 2500.0 / 8, 273.0 + 5700.0 / 8, 5.0, _ECOLOGITS),
    "server-cpu": ClassFigure(
        750.0, 500.0, 1500.0, 5.0, "estimate: half of a two-socket server's 1,000-3,000 kgCO2e, 5-year life"
    ),
    "desktop": ClassFigure(
        200.0, 100.0, 350.0, 4.0, "estimate: production share of laptop life-cycle reports, 4-year life"
    ),
    "local": ClassFigure(
        200.0, 100.0, 350.0, 4.0, "estimate: production share of laptop life-cycle reports, 4-year life"
    ),
    "mobile": ClassFigure(50.0, 30.0, 70.0, 3.0, "estimate: production share of phone life-cycle reports"),
    "edge": ClassFigure(30.0, 10.0, 60.0, 5.0, "estimate: no published product carbon footprint"),
    "fpga": ClassFigure(30.0, 10.0, 60.0, 5.0, "estimate: no published product carbon footprint"),
    "pim": ClassFigure(30.0, 10.0, 60.0, 5.0, "estimate: no published product carbon footprint"),
    "embedded": ClassFigure(1.0, 0.2, 5.0, 5.0, "estimate: a microcontroller board"),
}
_MULTI = re.compile(r"_x(\d+)$")


def units_of(device: HardwareEntry) -> int:
    """Physical devices one catalogue entry stands for (upstream's aggregates)."""
    m = _MULTI.search(device.name)
    if m:
        return int(m[1])
    return 8 if device.name.startswith("DGX") else 1


@dataclass(frozen=True)
class EmbodiedShare:
    kg: float
    low_kg: float
    high_kg: float
    per_device_kg: float
    lifetime_years: float
    device_hours: float
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "carbon_kg": self.kg,
            "carbon_kg_low": self.low_kg,
            "carbon_kg_high": self.high_kg,
            "per_device_kg": self.per_device_kg,
            "lifetime_years": self.lifetime_years,
            "device_hours": self.device_hours,
            "formula": "per-device kgCO2e x device-hours / (lifetime years x 8760 h)",
            "source": self.source,
        }


def embodied_share(device: HardwareEntry, device_hours: float) -> EmbodiedShare:
    """The embodied kgCO2e that ``device_hours`` of ``device`` use up (see the module docstring)."""
    fig = BY_CLASS.get(device.device_class, BY_CLASS["edge"])
    hours = device_hours * units_of(device)
    fraction = hours / (fig.lifetime_years * HOURS_PER_YEAR)
    return EmbodiedShare(
        kg=fig.kg * fraction,
        low_kg=fig.low * fraction,
        high_kg=fig.high * fraction,
        per_device_kg=fig.kg,
        lifetime_years=fig.lifetime_years,
        device_hours=hours,
        source=f"{device.device_class}: {fig.source}",
    )


__all__ = ["BY_CLASS", "EmbodiedShare", "embodied_share", "units_of"]
