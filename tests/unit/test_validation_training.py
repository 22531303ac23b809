"""The training and forecast validation tables: every row sourced, inputs as published, the
product's estimator doing the arithmetic, unscored rows saying why."""

from __future__ import annotations

import pytest

from sustainml.catalogue import hardware
from sustainml.estimate.training import calibration
from sustainml.validation import forecast, training


def test_at_least_twenty_runs_each_citing_its_source_and_method() -> None:
    rows = training.load()
    assert len(rows) >= 20
    for row in rows:
        assert row["source"] and row["method"] and row["published_tco2e"] > 0
        assert row["device_hours"] > 0 and row["power"]["kind"] in ("measured", "tdp", "stated")
        assert (row.get("pue") is not None) or row.get("pue_setting")
        assert (row.get("intensity_kg_per_kwh") is not None) or row.get("region")
        device = training.inputs(row, forecast=False).device
        assert hardware().get(device).name == device


def test_a_row_by_hand_gpt3() -> None:
    # Patterson et al. 2021: 3,552,000 V100-hours x 330 W x PUE 1.10 = 1,289 MWh; x 0.429 kg/kWh
    gpt3 = next(r for r in training.load() if r["name"] == "GPT-3 175B")
    est, kg = training.estimate(gpt3, forecast=False)
    assert est.energy_wh == pytest.approx(3_552_000 * 330 * 1.10)
    assert kg == pytest.approx(3_552_000 * 330 * 1.10 / 1000 * 0.429)


def test_the_training_table_scores_rows_and_explains_the_rest() -> None:
    table = training.run()
    assert len(table.rows) == len(training.load())
    unscored = [r for r in table.rows if r["carbon_ratio"] is None]
    assert unscored and all(r["note"].startswith("not scored: ") for r in unscored)
    assert {c.column for c in table.criteria} == {"energy_ratio", "carbon_ratio"}


def test_the_forecast_uses_size_and_tokens_not_the_published_hours() -> None:
    llama = next(r for r in training.load() if r["name"] == "LLaMA 7B")
    given = training.inputs(llama, forecast=True)
    assert "training_device_hours" not in given.values and "training_power_w" not in given.values
    est, _ = training.estimate(llama, forecast=True)
    assert est.flops == pytest.approx(6 * 6.7e9 * 1e12)
    assert est.mfu == calibration.fits()[calibration.EARLIER].mfu(6.7e9)
    table = forecast.run()
    assert len(table.rows) == len(training.load())
    skipped = [r for r in table.rows if r["carbon_ratio"] is None]
    assert all(r["note"].startswith("not scored: ") for r in skipped)
    assert len(skipped) < len(table.rows) / 2


def test_forecast_inputs_from_a_paper_are_quoted_and_used() -> None:
    rows = training.load()
    stated = [r for r in rows if r.get("forecast_inputs")]
    assert stated
    for row in stated:
        quotes = row["forecast_inputs"]["quotes"]
        assert set(row["forecast_inputs"]["values"]) <= set(quotes) and all(quotes.values())
    t5 = next(r for r in rows if r["name"] == "T5 11B")
    given = training.inputs(t5, forecast=True)
    assert given.values["architecture"]["kind"] == "encoder-decoder" and given.values["target_tokens"] < 1e12
    est, _ = training.estimate(t5, forecast=True)
    # Each token passes one stack: fewer FLOPs than 6·N·D over the whole model.
    assert est.flops is not None and est.flops < 0.7 * 6 * 11e9 * 1e12
    llama = next(r for r in rows if r["name"] == "Llama 3.1 405B")
    assert training.estimate(llama, forecast=True)[0].mfu == llama["forecast_inputs"]["values"]["mfu"]


def test_an_unquoted_forecast_input_is_refused() -> None:
    row = {"name": "made up", "forecast_inputs": {"values": {"mfu": 0.5}, "quotes": {}}}
    with pytest.raises(ValueError, match=r"made up: forecast_inputs mfu without a quote"):
        training.paper_inputs(row)


def test_the_v100_forecast_uses_the_volta_mfu() -> None:
    gpt3 = next(r for r in training.load() if r["name"] == "GPT-3 175B")
    est, _ = training.estimate(gpt3, forecast=True)
    # 6·N·D plus attention: 6 x 96 layers x 2,048 context x 12,288 width per token (catalogue shape)
    assert est.mfu == 0.24
    assert est.flops == pytest.approx(6 * 175e9 * 300e9 + 6 * 96 * 2048 * 12288 * 300e9)


def test_every_row_names_where_its_figures_are_published() -> None:
    # A URL, an arXiv id or a DOI, and the part of the source (table, section or card heading).
    for row in training.load():
        source = row["source"]
        assert "http" in source or "arXiv:" in source or "doi:" in source, row["name"]
        parts = ("table", "section", "hardware", "training")
        assert any(word in source.lower() for word in parts), row["name"]


def test_a_run_is_counted_once() -> None:
    names = [r["name"] for r in training.load()]
    assert len(names) == len(set(names))
    # The same run under two sources is scored once in the forecast (BLOOM).
    bloom = [r for r in training.load() if r["name"].startswith("BLOOM-176B")]
    assert sum(not r.get("forecast_not_scored") for r in bloom) == 1


def test_a_row_by_hand_granite_and_its_forecast_counts_active_parameters() -> None:
    rows = {r["name"]: r for r in training.load()}
    # Granite 3.0 report, table 7: GPU-hours x 700 W x PUE 1.3, x 0.39 kgCO2eq/kWh
    dense = rows["Granite 3.0 2B"]
    est, kg = training.estimate(dense, forecast=False)
    assert est.energy_wh == pytest.approx(192_030 * 700 * 1.3)
    assert kg == pytest.approx(192_030 * 700 * 1.3 / 1000 * 0.39)
    # A mixture of experts is forecast on its active parameters (400M of 1.3B), plus attention
    # (6 x 24 layers x 4,096 sequence x 16 heads x 64 per head, per token).
    moe = rows["Granite 3.0 1B-A400M"]
    forecast_est, _ = training.estimate(moe, forecast=True)
    assert forecast_est.flops == pytest.approx(6 * 0.4e9 * 10e12 + 6 * 24 * 4096 * 16 * 64 * 10e12)
