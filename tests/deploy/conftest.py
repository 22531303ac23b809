"""Fixtures of the deployment tests: the local PostgreSQL fixture of the pipeline tests, reused
(loaded from tests/pipeline/conftest.py by path: the test folders are not packages)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("_sustainml_pipeline_conftest", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


postgres_url = _load(Path(__file__).resolve().parents[1] / "pipeline" / "conftest.py").postgres_url
