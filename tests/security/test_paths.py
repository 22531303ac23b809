"""Paths from users are confined to the configured directories: no traversal, no symlink escape,
no special files. Covers ``extra_data.model_path`` (ML_MODEL via ``onnxgraphs.load_user_model``),
``MLModel.model_path`` as HW_RESOURCES receives it, and the ``dataset_path`` configuration request
(ML_MODEL_METADATA via ``dataset_profile``)."""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from sustainml.config import EstimationSettings
from sustainml.messages import MLModel
from sustainml.onnxgraphs import UserModelError, load_user_model
from sustainml.workers.logic import hw_resources, ml_model
from sustainml.workers.logic.encoder.dataset_profile import (
    DatasetError,
    profile_dataset,
    resolve_dataset_path,
)

MAX = 10 * 1024 * 1024


def _tiny_onnx(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "tiny", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    _tiny_onnx(allowed / "ok.onnx")
    _tiny_onnx(outside / "secret.onnx")
    (outside / "secret.csv").write_text("a,b\n1,2\n")
    (allowed / "data.csv").write_text("a,b\n1,2\n3,4\n")
    os.symlink(outside / "secret.onnx", allowed / "escape.onnx")
    os.symlink(outside / "secret.csv", allowed / "escape.csv")
    os.symlink(outside, allowed / "outdir")
    os.symlink(allowed / "ok.onnx", allowed / "alias.onnx")  # inside -> inside: fine
    os.symlink(allowed / "loop1", allowed / "loop2")
    os.symlink(allowed / "loop2", allowed / "loop1")
    os.mkfifo(allowed / "fifo.csv")
    return {"allowed": allowed, "outside": outside}


# ---------------------------------------------------------------------------------- model_path
def test_user_model_inside_is_accepted_and_resolved(layout: dict[str, Path]) -> None:
    allowed = layout["allowed"]
    loaded = load_user_model(allowed / "ok.onnx", [allowed], MAX)
    assert loaded.path == (allowed / "ok.onnx").resolve()
    alias = load_user_model(allowed / "alias.onnx", [allowed], MAX)
    assert alias.path == (allowed / "ok.onnx").resolve()  # the real path, not the link


@pytest.mark.parametrize(
    "given",
    [
        "../outside/secret.onnx",  # traversal
        "escape.onnx",  # symlink pointing outside
        "outdir/secret.onnx",  # symlinked directory pointing outside
        "sub/../../outside/secret.onnx",
    ],
)
def test_user_model_escapes_are_refused(layout: dict[str, Path], given: str) -> None:
    allowed = layout["allowed"]
    (allowed / "sub").mkdir(exist_ok=True)
    with pytest.raises(UserModelError, match="outside the allowed directories"):
        load_user_model(allowed / given, [allowed], MAX)


def test_user_model_absolute_outside_loops_and_missing(layout: dict[str, Path]) -> None:
    allowed = layout["allowed"]
    with pytest.raises(UserModelError, match="outside the allowed directories"):
        load_user_model(layout["outside"] / "secret.onnx", [allowed], MAX)
    with pytest.raises(UserModelError, match=r"cannot be resolved|does not exist"):
        load_user_model(allowed / "loop1", [allowed], MAX)
    with pytest.raises(UserModelError, match="does not exist"):
        load_user_model(allowed / "nope.onnx", [allowed], MAX)
    with pytest.raises(UserModelError, match="not a regular file"):
        load_user_model(allowed, [allowed], MAX)
    with pytest.raises(UserModelError, match="above the limit"):
        load_user_model(allowed / "ok.onnx", [allowed], 10)
    with pytest.raises(UserModelError, match="no model directories"):
        load_user_model(allowed / "ok.onnx", [], MAX)


def test_ml_model_stage_confines_extra_data_model_path(layout: dict[str, Path]) -> None:
    allowed = layout["allowed"]
    settings = EstimationSettings(model_dirs=(allowed,))
    assert ml_model.resolve_user_path("ok.onnx", settings) == (allowed / "ok.onnx").resolve()  # looked up
    for bad in ("../outside/secret.onnx", "escape.onnx", str(layout["outside"] / "secret.onnx")):
        with pytest.raises(ValueError, match="outside the allowed directories"):
            ml_model.resolve_user_path(bad, settings)
    with pytest.raises(ValueError, match="NUL"):
        ml_model.resolve_user_path("ok.onnx\x00.txt", settings)


def test_hw_resources_refuses_a_forged_model_path(layout: dict[str, Path]) -> None:
    # HW_RESOURCES trusts no MLModel it receives: a path outside the model cache and the model
    # directories is refused, through a symlink too.
    settings = EstimationSettings(data_dir=layout["allowed"].parent / "data", model_dirs=(layout["allowed"],))
    for forged in (layout["outside"] / "secret.onnx", layout["allowed"] / "escape.onnx"):
        with pytest.raises(ValueError, match="outside the model cache and the allowed model directories"):
            hw_resources.load_model(MLModel(model="not-in-catalogue", model_path=str(forged)), {}, settings)
    loaded = hw_resources.load_model(
        MLModel(model="mine", model_path=str(layout["allowed"] / "alias.onnx")), {}, settings
    )
    assert loaded.path == (layout["allowed"] / "ok.onnx").resolve()


# ---------------------------------------------------------------------------------- dataset_path
def test_dataset_inside_is_profiled(layout: dict[str, Path]) -> None:
    allowed = layout["allowed"]
    assert resolve_dataset_path("data.csv", [allowed]) == (allowed / "data.csv").resolve()
    profile = profile_dataset("data.csv", [allowed])
    assert profile["rows"] == 2


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("../outside/secret.csv", "outside the allowed data directories"),
        ("escape.csv", "outside the allowed data directories"),
        ("outdir/secret.csv", "outside the allowed data directories"),
        ("/etc/passwd", "outside the allowed data directories"),
        ("loop1", "cannot resolve|outside|not found"),
        ("data.csv\x00.txt", "NUL"),
        ("", "no dataset path"),
        ("fifo.csv", "not a regular file"),
        ("missing.csv", "not found"),
    ],
)
def test_dataset_escapes_are_refused(layout: dict[str, Path], given: str, why: str) -> None:
    with pytest.raises(DatasetError, match=why):
        profile_dataset(given, [layout["allowed"]])
