"""ONNX graphs for every catalogue model, their static analysis, and users' own models.

- ``cache.build(entry)`` / ``cache.model_path(entry)``: the entry's architecture-faithful graph
  (seeded random weights, marked synthetic in ``metadata_props``), built once and cached by
  content hash; ``cache.model_bytes(path, limit)`` for ``raw_model``.
- ``analyze.analyze(model, batch_size)``: per-operator MACs/FLOPs, parameters, bytes moved and
  activation memory of any ONNX model (the input of the roofline estimate).
- ``usermodel.load_user_model(path | bytes, allowed_dirs, max_bytes)``: validation of a user's model.
- ``builders.example_inputs(model, batch)``: deterministic inputs for any of these graphs.
- ``layers.GraphBuilder`` (on ``graph.BaseGraphBuilder``) writes the graphs; the architectures are
  in ``vision`` (a package, one module per family), ``text``, ``audio`` and ``tabular``; the
  per-operator counting rules of the analysis in ``opcosts``.

    from sustainml.onnxgraphs import analyze, build
    report = analyze(build("resnet-50").path, batch_size=8)
    report.macs, report.parameters, report.peak_activation_bytes
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sustainml.lazy import lazy_attributes

# Reading reports needs no onnx; building, caching and validating graphs do. Those names load
# their module (and onnx, ~20 MB) on first use, so an idle worker does not carry them.
from sustainml.onnxgraphs.analyze import AnalysisError, ModelReport, OpCost, OpTypeSummary, analyze

if TYPE_CHECKING:
    from sustainml.onnxgraphs.builders import BUILDERS, build_graph, example_inputs, inference_definition
    from sustainml.onnxgraphs.cache import (
        BuildResult,
        ModelTooLarge,
        build,
        cache_key,
        default_cache_dir,
        model_bytes,
        model_path,
    )
    from sustainml.onnxgraphs.usermodel import UserModel, UserModelError, load_user_model

_LAZY = {
    **dict.fromkeys(("BUILDERS", "build_graph", "example_inputs", "inference_definition"), "builders"),
    **dict.fromkeys(
        (
            "BuildResult",
            "ModelTooLarge",
            "build",
            "cache_key",
            "default_cache_dir",
            "model_bytes",
            "model_path",
        ),
        "cache",
    ),
    **dict.fromkeys(("UserModel", "UserModelError", "load_user_model"), "usermodel"),
}


__getattr__ = lazy_attributes(__name__, _LAZY)


__all__ = [
    "BUILDERS",
    "AnalysisError",
    "BuildResult",
    "ModelReport",
    "ModelTooLarge",
    "OpCost",
    "OpTypeSummary",
    "UserModel",
    "UserModelError",
    "analyze",
    "build",
    "build_graph",
    "cache_key",
    "default_cache_dir",
    "example_inputs",
    "inference_definition",
    "load_user_model",
    "model_bytes",
    "model_path",
]
