"""Constants the shipped stage logic shares: upstream defaults and sentinels, and the unit
conventions requirements are read with. The data itself lives elsewhere, one place each: the model,
hardware and region catalogues in ``sustainml.catalogue``, the task-encoder vocabulary in
``workers/logic/encoder``, the requirement keys in ``workers/logic/requirements``.
"""

from __future__ import annotations

from typing import Final

#: "real-time" with no number: 100 ms, an interactive-response heuristic (docs/estimation.md;
#: an estimate; ~0.1 s is the classic "feels instantaneous" limit,
#: Nielsen, Usability Engineering, 1993).
REALTIME_LATENCY_MS: Final = 100.0

#: Size units to MB. Binary multiples, because that is what people mean by "fits in 2 GB" of device
#: memory (2 GB -> 2048 MB).
SIZE_UNIT_MB: Final[dict[str, float]] = {
    "kb": 1 / 1024,
    "kib": 1 / 1024,
    "kilobyte": 1 / 1024,
    "kilobytes": 1 / 1024,
    "mb": 1.0,
    "mib": 1.0,
    "megabyte": 1.0,
    "megabytes": 1.0,
    "gb": 1024.0,
    "gib": 1024.0,
    "gigabyte": 1024.0,
    "gigabytes": 1024.0,
    "tb": 1024.0 * 1024.0,
    "tib": 1024.0 * 1024.0,
    "terabyte": 1024.0 * 1024.0,
    "terabytes": 1024.0 * 1024.0,
}

#: Sentinels the original framework's GUI and downstream stages key on.
NO_MODEL: Final = "NO_MODEL"
NO_MODEL_PATH: Final = "N/A"
NO_MODEL_ERROR: Final = "No suitable model found for the given problem."
NO_MODEL_HW_ERROR: Final = "No model selected (NO_MODEL). HW resources not computed."
MODEL_PATH_SCHEME: Final = "catalogue://"

DEFAULT_HARDWARE: Final = "PIM_AI_1chip"  # upstream HW_CONSTRAINTS default
DEFAULT_MAX_MEMORY_FOOTPRINT_MB: Final = 100  # upstream HW_CONSTRAINTS default (unit: MB)
