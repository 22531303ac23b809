"""Where dataset files may be read from and which file types are read, for the layers above the
workers (the HTTP API stores uploads where ML_MODEL_METADATA's ``dataset_path`` request can read
them) without their importing stage logic.

The rules themselves belong to the task encoder (``sustainml.workers.logic.encoder.dataset_profile``),
which applies them when it reads a file; this module only hands them on, and imports the encoder
when called, not at import: the encoder package loads numpy and its classifier's code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sustainml.config import Settings


def dataset_formats() -> dict[str, str]:
    """The readable file extensions (lower case, with the dot), each with its format name."""
    from sustainml.workers.logic.encoder.dataset_profile import FORMATS

    return dict(FORMATS)


def allowed_data_dirs(settings: Settings | None = None) -> list[Path]:
    """The allowed data directories of ``settings`` (the process environment's without), resolved,
    in the order a relative path is tried (``SUSTAINML_DATA_DIRS``, else ``./data`` and the
    settings data directory)."""
    from sustainml.workers.logic.encoder.dataset_profile import allowed_dirs

    return allowed_dirs(settings.encoder if settings is not None else None)
