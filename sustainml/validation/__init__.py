"""``sustainml eval published``: the estimates against figures published by others.

Each part is one module of this package with a ``run() -> Table`` function, scoring one kind of
estimate against its own table of published figures (shipped next to it under ``data/``, every row
citing its source). The tables are evaluation sets only: no estimator reads them, so a calibration
can never be fitted on the rows it is scored on.

Parts, in the order they are printed (``PARTS``): ``training`` (training footprints from
device-hours), ``calibration`` (the realised MFU of other published runs, which the forecast's
default is derived from; not scored), ``forecast`` (the training runs forecast from model size and
tokens), ``parameters``
(catalogue parameter counts against published ones), ``mlperf`` (inference latency against MLPerf
Inference), ``serving`` (energy and latency per generated answer against public measurements).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from sustainml.validation.table import Criterion, Table

__all__ = ["PARTS", "Criterion", "Table", "run", "run_all"]

#: Part name -> module under ``sustainml.validation`` that defines ``run() -> Table``.
PARTS: dict[str, str] = {
    "training": "training",
    "calibration": "calibration",
    "forecast": "forecast",
    "parameters": "parameters",
    "mlperf": "mlperf",
    "serving": "serving",
}


def run(part: str) -> Table:
    """Run one part by name; an unknown name raises ``KeyError`` listing the known ones."""
    if part not in PARTS:
        raise KeyError(f"unknown part {part!r}; known: {', '.join(PARTS)}")
    module = importlib.import_module(f"sustainml.validation.{PARTS[part]}")
    table: Table = module.run()
    return table


def run_all(parts: Sequence[str] | None = None) -> list[Table]:
    """Every part (or the ones named), in ``PARTS`` order."""
    return [run(name) for name in (parts or list(PARTS))]
