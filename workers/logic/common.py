"""Helpers shared by the shipped stage modules: the settings a stage's logic is bound to,
configuration replies, name normalisation, number formatting and reading the AppRequirements
record back into a typed dict."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sustainml.config import EstimationSettings, environment_settings
from sustainml.messages.types import AppRequirements, ErrorCode, HWConstraints, RequestType, ResponseType
from sustainml.workers.logic.tables import DEFAULT_HARDWARE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageLogic:
    """A stage's callbacks bound to one deployment's settings (what ``for_settings`` of a stage
    module returns, and what a node is built with)."""

    task_callback: Callable[..., None]
    configuration_callback: Callable[[RequestType, ResponseType], None]
    #: loads what the first task would otherwise wait for (the task encoder), if anything
    warm_up: Callable[[], None] | None = None


def bind(
    task_callback: Callable[..., None],
    configuration_callback: Callable[..., None],
    settings: EstimationSettings,
) -> StageLogic:
    """Both callbacks of a stage module with ``settings`` passed to every call."""
    return StageLogic(
        partial(task_callback, settings=settings), partial(configuration_callback, settings=settings)
    )


def estimation_settings(settings: EstimationSettings | None) -> EstimationSettings:
    """``settings``, or the process environment's when a module-level callback is called directly."""
    return settings if settings is not None else environment_settings().estimation


def requested_hardware(hw_constraints: HWConstraints) -> list[str]:
    """``hardware_required`` without blanks, else upstream's default device."""
    return [h.strip() for h in hw_constraints.hardware_required if h.strip()] or [DEFAULT_HARDWARE]



def norm_key(text: str) -> str:
    """Case- and punctuation-insensitive key: ``"PIM-AI 1chip"`` -> ``"pimai1chip"``."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, inner hyphens and apostrophes kept)."""
    return re.findall(r"[a-z0-9]+(?:['-][a-z0-9]+)*", text.casefold())


def format_number(value: float) -> str:
    """``50.0`` -> ``"50"``, ``33.3333`` -> ``"33.333"``: stable text for ``key=value`` strings."""
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def reply(req: RequestType, res: ResponseType, payload: dict[str, Any]) -> None:
    """A successful configuration answer: ``payload`` as JSON text."""
    res.node_id = req.node_id
    res.transaction_id = req.transaction_id
    res.success = True
    res.err_code = ErrorCode.NO_ERROR
    res.configuration = json.dumps(payload, sort_keys=True)


def reply_error(req: RequestType, res: ResponseType, message: str) -> None:
    """A failed configuration answer (upstream convention: success False, err_code 1, JSON error)."""
    res.node_id = req.node_id
    res.transaction_id = req.transaction_id
    res.success = False
    res.err_code = ErrorCode.INTERNAL_ERROR
    res.configuration = json.dumps({"error": message})
    log.info(
        "configuration request %r (transaction %d) refused: %s",
        req.configuration,
        req.transaction_id,
        message,
    )


def reply_unsupported(req: RequestType, res: ResponseType) -> None:
    reply_error(req, res, f"Unsupported configuration request: {req.configuration}")


def parse_requirements(app_requirements: AppRequirements | None) -> dict[str, float | str]:
    """The typed requirements of an AppRequirements record.

    The ``key=value`` list is the record's real content; ``extra_data["requirements"]`` holds the
    same dict typed. Numeric values come back as ``float``; unparsable numbers are logged and skipped.
    """
    out: dict[str, float | str] = {}
    if app_requirements is None:
        return out
    for item in app_requirements.app_requirements:
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            continue  # free-text requirement (e.g. from a user callback): nothing to parse
        if key.startswith("max_") or key.startswith("min_"):
            try:
                out[key] = float(value)
            except ValueError:
                log.warning("requirement %r has a non-numeric value; ignored", item)
            continue
        out[key] = value
    return out
