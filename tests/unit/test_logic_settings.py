"""The shipped stage logic takes its settings from the node, not from the process environment: two
deployments with different estimation or encoder settings give different answers in one process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sustainml.catalogue import models
from sustainml.config import ConfigError, EstimationSettings, Settings, environment_settings
from sustainml.messages.types import (
    AppRequirements,
    CO2Footprint,
    HWConstraints,
    HWResource,
    MLModel,
    MLModelMetadata,
    NodeStatus,
    RequestType,
    ResponseType,
    UserInput,
    pack_extra,
)
from sustainml.transport.memory import MemoryTransport
from sustainml.workers.logic import carbon_footprint, hw_resources, ml_model, ml_model_metadata
from sustainml.workers.logic.ml_model import model_properties
from sustainml.workers.shipped import shipped_node

SMALL = "mlp-higgs"  # 139 k parameters: quick to build and analyse


def co2_of(settings: Settings) -> CO2Footprint:
    """CARBON_FOOTPRINT of one A100 training run in France, as the deployment of ``settings`` runs it."""
    out = CO2Footprint()
    model = MLModel(model="my-cnn", model_properties=json.dumps({"macs": 4e9, "parameters": 1_000_000}))
    extra = pack_extra({"epochs": 3})
    user = UserInput(geo_location_region="France", maximum_samples=100_000, extra_data=extra)
    hw = HWResource(hw_description="A100", power_consumption=100.0, latency=0.01)
    carbon_footprint.for_settings(settings).task_callback(model, user, hw, NodeStatus(), out)
    return out


def test_two_grid_overrides_in_one_process() -> None:
    environment = dict(os.environ)
    low, high = co2_of(Settings(grid_ci="100")), co2_of(Settings(grid_ci="700"))
    assert (low.carbon_intensity, high.carbon_intensity) == (100.0, 700.0)
    assert low.energy_consumption == high.energy_consumption > 0
    assert high.carbon_footprint == pytest.approx(7 * low.carbon_footprint)
    assert low.get_extra()["grid"]["source"] == high.get_extra()["grid"]["source"] == "env"
    table = co2_of(Settings())  # no override: the table's value for France
    assert table.get_extra()["grid"]["source"] == "region" and table.carbon_intensity not in (100.0, 700.0)
    assert dict(os.environ) == environment


def test_the_intensity_request_reports_each_deployments_override() -> None:
    for grid_ci, expected in (("55", 55.0), ("", None)):
        res = ResponseType()
        request = RequestType(node_id=6, transaction_id=1, configuration="intensity, FR")
        carbon_footprint.for_settings(Settings(grid_ci=grid_ci)).configuration_callback(request, res)
        assert json.loads(res.configuration).get("env_override") == expected


def hw_of(settings: Settings) -> HWResource:
    """HW_RESOURCES of a catalogue model sent by name (its graph comes from the deployment's cache)."""
    entry = models().get(SMALL)
    model = MLModel(model=SMALL, model_properties=json.dumps(model_properties(entry)))
    out = HWResource()
    cons = HWConstraints(hardware_required=["T4"])
    hw_resources.for_settings(settings).task_callback(model, AppRequirements(), cons, NodeStatus(), out)
    return out


def test_two_data_directories_in_one_process(tmp_path: Path) -> None:
    a, b = Settings(data_dir=tmp_path / "a"), Settings(data_dir=tmp_path / "b")
    out_a, out_b = hw_of(a), hw_of(b)
    file_a, file_b = (Path(o.get_extra()["model_file"]["path"]) for o in (out_a, out_b))
    assert file_a.is_relative_to(tmp_path / "a" / "models") and file_a.is_file()
    assert file_b.is_relative_to(tmp_path / "b" / "models") and file_b.is_file()
    assert file_a.name == file_b.name  # the same graph, built into each deployment's own cache
    assert out_a.latency == out_b.latency > 0  # and the same estimate from it


def test_two_user_model_directories_in_one_process(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    (mine / "net.onnx").write_bytes(hw_resources.catalogue_file(models().get(SMALL)).read_bytes())

    def propose(model_dirs: Path) -> MLModel:
        settings = Settings(data_dir=tmp_path / "data", model_dirs=str(model_dirs))
        meta = MLModelMetadata(ml_model_metadata=["tabular-classification"])
        meta.set_extra({"model_path": "net.onnx"})
        out = MLModel()
        logic = ml_model.for_settings(settings)
        logic.task_callback(meta, AppRequirements(), HWConstraints(), None, None, None, NodeStatus(), out)
        return out

    accepted = propose(mine)
    assert Path(accepted.model_path) == (mine / "net.onnx").resolve()
    with pytest.raises(ValueError, match="allowed directories"):
        propose(other)  # the other deployment does not read that directory


def dataset_answer(settings: Settings, path: str) -> dict[str, object]:
    """ML_MODEL_METADATA's answer to a ``dataset_path`` request in the deployment of ``settings``."""
    res = ResponseType()
    request = RequestType(node_id=1, transaction_id=1, configuration=f"dataset_path, {path}")
    ml_model_metadata.for_settings(settings).configuration_callback(request, res)
    answer: dict[str, object] = json.loads(res.configuration)
    return answer


def test_two_allowed_data_directories_in_one_process(tmp_path: Path) -> None:
    environment = dict(os.environ)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    (tmp_path / "a" / "churn.csv").write_text("age,plan,churn\n34,pro,yes\n51,basic,no\n29,pro,no\n")
    a = Settings(data_dir=tmp_path, data_dirs=str(tmp_path / "a"))
    b = Settings(data_dir=tmp_path, data_dirs=str(tmp_path / "b"))
    found = dataset_answer(a, "churn.csv")
    assert found["rows"] == 3 and found["path"] == str((tmp_path / "a" / "churn.csv").resolve())
    refused = dataset_answer(b, "churn.csv")
    assert "not found" in str(refused["error"]) and str((tmp_path / "b").resolve()) in str(refused["error"])
    outside = dataset_answer(b, str(tmp_path / "a" / "churn.csv"))  # b may not read a's folder
    assert "outside the allowed data directories" in str(outside["error"])
    assert dict(os.environ) == environment


def encoded_by(settings: Settings) -> dict[str, object]:
    """ML_MODEL_METADATA's extra_data for one description, as the deployment of ``settings`` encodes it."""
    out = MLModelMetadata()
    user = UserInput(problem_short_description="Condense long quarterly reports into a few key points")
    ml_model_metadata.for_settings(settings).task_callback(user, NodeStatus(), out)
    extra: dict[str, object] = out.get_extra()
    return extra


def test_two_encoder_backends_in_one_process() -> None:
    environment = dict(os.environ)
    # The session's encoder weights, with the backend each deployment chose.
    builtin = environment_settings().with_overrides(encoder_backend="builtin")
    unknown = environment_settings().with_overrides(encoder_backend="crystal-ball")
    plain, fallen_back = encoded_by(builtin), encoded_by(unknown)
    assert plain["goal"] == fallen_back["goal"] == "summarization"
    assert plain["goal_source"] == fallen_back["goal_source"] == "builtin"
    assert "warnings" not in plain
    warnings = fallen_back["warnings"]
    assert isinstance(warnings, list) and len(warnings) == 1
    assert "SUSTAINML_ENCODER_BACKEND='crystal-ball' is not a backend" in warnings[0]
    assert dict(os.environ) == environment


def test_the_encoder_section_comes_from_its_variables(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "SUSTAINML_DATA_DIR": str(tmp_path),
            "SUSTAINML_ENCODER_BACKEND": " Ollama ",
            "SUSTAINML_ENCODER_URL": " http://llm:11434 ",
            "SUSTAINML_ENCODER_MODEL": "m",
            "SUSTAINML_ENCODER_TIMEOUT": "2.5",
            "SUSTAINML_ENCODER_API_KEY": "sk-abc",
            "SUSTAINML_DATA_DIRS": f"{tmp_path / 'x'}{os.pathsep}{os.pathsep}{tmp_path / 'y'}",
        }
    ).encoder
    assert (s.backend, s.url, s.model, s.api_key) == ("ollama", "http://llm:11434", "m", "sk-abc")
    assert s.timeout_seconds(10.0) == 2.5 and "sk-abc" not in repr(s)
    assert s.allowed_data_dirs() == [(tmp_path / "x").resolve(), (tmp_path / "y").resolve()]
    defaults = Settings.from_env({"SUSTAINML_DATA_DIR": str(tmp_path)}).encoder
    assert defaults.backend == "builtin" and defaults.timeout_seconds(10.0) == 10.0
    assert defaults.allowed_data_dirs() == [(Path.cwd() / "data").resolve(), tmp_path.resolve()]
    # A bad timeout does not stop the settings from loading: the task using it names the variable.
    for raw, message in (("soon", "SUSTAINML_ENCODER_TIMEOUT='soon' is not a number"), ("0", "> 0 seconds")):
        late = Settings.from_env({"SUSTAINML_ENCODER_TIMEOUT": raw}).encoder
        with pytest.raises(ConfigError, match=message):
            late.timeout_seconds(10.0)


def test_settings_sections_come_from_the_variables(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "SUSTAINML_DATA_DIR": str(tmp_path),
            "SUSTAINML_GRID_CI": " 42 ",
            "SUSTAINML_MODEL_DIRS": f"{tmp_path / 'x'}{os.pathsep}{tmp_path / 'y'}",
            "SUSTAINML_ENCODER_CACHE_DIR": str(tmp_path / "enc"),
        }
    )
    assert s.estimation == EstimationSettings(
        data_dir=tmp_path, model_dirs=(tmp_path / "x", tmp_path / "y"), grid_ci="42"
    )
    assert s.estimation.graph_cache_dir == tmp_path / "models"
    assert s.estimation.user_model_dirs == [(tmp_path / "x").resolve(), (tmp_path / "y").resolve()]
    assert s.encoder.cache_dir == tmp_path / "enc"
    defaults = Settings.from_env({"SUSTAINML_DATA_DIR": str(tmp_path), "SUSTAINML_CACHE_DIR": "/graphs"})
    assert defaults.estimation.graph_cache_dir == Path("/graphs")
    assert defaults.estimation.user_model_dirs == [(tmp_path / "user-models").resolve()]
    assert defaults.encoder.cache_dir == tmp_path / "cache" / "encoder"


def test_a_shipped_node_runs_its_stage_with_its_own_settings() -> None:
    node = shipped_node("carbon_footprint", settings=Settings(grid_ci="123"), transport=MemoryTransport())
    try:
        out = CO2Footprint()
        model = MLModel(model="my-cnn", model_properties=json.dumps({"macs": 4e9, "parameters": 1_000_000}))
        user = UserInput(maximum_samples=1_000, extra_data=pack_extra({"epochs": 1}))
        node.callback(model, user, HWResource(hw_description="A100", power_consumption=100.0, latency=0.01),
                      NodeStatus(), out)  # fmt: skip
        assert out.carbon_intensity == 123.0
    finally:
        node.stop()
