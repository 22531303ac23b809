"""The serving validation table: every row sourced with its measured conditions, estimated through
the same scenario path as HW_RESOURCES, scored on energy and latency per answer."""

from __future__ import annotations

import pytest

from sustainml.catalogue import hardware
from sustainml.estimate import serving as sv
from sustainml.validation import serving


def test_every_row_cites_its_source_and_measured_conditions() -> None:
    data = serving.load()
    rows = data["rows"]
    assert len(rows) >= 20
    for row in rows:
        assert row["source"].startswith("https://github.com/ml-energy/")
        assert row["measured"] and row["engine"] in sv.ENGINES and row["split"] in ("fit", "held-out")
        assert row["published_energy_j"] > 0 and row["published_latency_s"] > 0
        assert row["batch_size"] >= 1 and row["num_devices"] >= 1
        if row["kind"] == "diffusion":
            assert row["model"] in data["diffusion_models"]
        else:
            assert row["model"] in data["architectures"] and row["model"] in data["architecture_sources"]
    assert sum(r["split"] == "held-out" for r in rows) >= len(rows) // 2


def test_rows_are_estimated_like_hw_resources_does() -> None:
    row = next(
        r for r in serving.load()["rows"] if hardware().find(r["hardware"]) is not None and r["kind"] == "llm"
    )
    est = serving.estimate_row(row)
    scenario = est["scenario"]
    assert scenario["batch_size"] == row["batch_size"] and scenario["num_devices"] == row["num_devices"]
    assert scenario["output_tokens"] == row["output_tokens"] and scenario["engine"] == row["engine"]
    assert est["energy_per_inference_j"] == pytest.approx(
        est["power_w_all_devices"] * est["latency_per_inference_s"] / row["batch_size"]
    )


def test_table_reports_both_ratios_and_the_held_out_rows() -> None:
    table = serving.run()
    assert len(table.rows) == len(serving.load()["rows"])
    scored = [r for r in table.rows if r["estimated_j"] is not None]
    assert scored and all(r["energy_ratio"] > 0 and r["latency_ratio"] > 0 for r in scored)
    for r in table.rows:
        if r["split"] == "fit":
            assert r["held_out_energy_ratio"] is None
    unscored = len(table.rows) - len(scored)
    assert sum("not estimated" in n for n in table.notes) == unscored
