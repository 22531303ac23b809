"""The MLPerf validation table: every row sourced, split into fit and held-out halves, scored."""

from __future__ import annotations

from sustainml.catalogue import hardware
from sustainml.validation import mlperf


def test_every_row_cites_its_round_submitter_and_log() -> None:
    rows = mlperf.load()["rows"]
    assert len(rows) >= 15
    for row in rows:
        assert row["round"] in {"v3.0", "v3.1", "v4.0", "v4.1"} and row["submitter"]
        assert row["source"].startswith("https://github.com/mlcommons/inference_results_v")
        assert row["published_ms_per_sample"] > 0 and row["published_figure"]
        hardware().get(row["hardware"])  # every device is in the catalogue
    assert {mlperf.split_of(r) for r in rows} == {"fit", "held-out"}
    assert sum(mlperf.split_of(r) == "held-out" for r in rows) >= len(rows) / 2


def test_table_scores_every_row_and_reports_the_held_out_half() -> None:
    table = mlperf.run()
    assert len(table.rows) == len(mlperf.load()["rows"])
    assert all(isinstance(r["ratio"], float) and r["ratio"] > 0 for r in table.rows)
    held = [r for r in table.rows if r["split"] == "held-out"]
    assert held and all(r["held_out_ratio"] == r["ratio"] for r in held)
    assert all(r["held_out_ratio"] is None for r in table.rows if r["split"] == "fit")
    assert any("held-out rows" in n for n in table.notes)
