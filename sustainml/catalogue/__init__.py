"""The catalogues: models, hardware and grid carbon intensity — one place each.

Every entry carries its public source; figures that are not published are flagged as estimates
(``estimated`` lists the field names), never invented silently. The data lives in
``sustainml/catalogue/data/`` (JSON), is loaded once per process and validated on load.

    from sustainml.catalogue import models, hardware, regions
    models().get("resnet-50"); hardware().resolve("nvidia a100"); regions().intensity("DE")
"""

from __future__ import annotations

from sustainml.catalogue.schema import (
    HardwareCatalogue,
    HardwareEntry,
    ModelCatalogue,
    ModelEntry,
    Quality,
    RegionCatalogue,
    RegionEntry,
    UnknownEntry,
    hardware,
    models,
    regions,
)

__all__ = [
    "HardwareCatalogue",
    "HardwareEntry",
    "ModelCatalogue",
    "ModelEntry",
    "Quality",
    "RegionCatalogue",
    "RegionEntry",
    "UnknownEntry",
    "hardware",
    "models",
    "regions",
]
