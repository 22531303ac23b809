"""``sustainml eval logic``: the shipped stage callbacks chained in one process, outcomes counted."""

from __future__ import annotations

from sustainml.bench import logic


def test_each_description_runs_the_six_stages_and_gets_an_outcome() -> None:
    report = logic.evaluate(
        [
            "detect defects in photos of welded seams",
            "fine-tune a 7B chat model on 8 A100s for 3 days in Germany",
            "SDXL at 1024x1024, 30 steps on an L4",
        ]
    )
    assert [r.outcome for r in report.runs] == ["answered", "answered", "answered"]
    assert all(set(r.seconds) == set(logic.STAGES) for r in report.runs)
    assert report.runs[2].model == "stable-diffusion-xl-base-1.0" and report.runs[2].hardware == "L4"
    data = report.to_json()
    assert data["outcomes"] == {"answered": 3} and data["not_answered"] == []
    assert data["total_ms"]["median"] > 0
    assert "whole chain" in report.render()


def test_a_failing_stage_is_reported_with_its_error() -> None:
    run = logic.run_one("classify support emails", {"hardware_required": "nowhere-9000"})
    assert run.outcome == "failed" and run.detail.startswith("HW_CONSTRAINTS: ")
    assert "nowhere-9000" in run.detail and "HW_RESOURCES" not in run.seconds
    report = logic.LogicReport([logic.run_one("classify support emails"), run])
    assert report.to_json()["outcomes"] == {"answered": 1, "failed": 1}
    assert "failed: 'classify support emails'" in report.render()


def test_the_default_set_is_the_encoders_held_out_descriptions() -> None:
    texts = logic.held_out_descriptions()
    assert len(texts) >= 200 and all(isinstance(t, str) and t for t in texts)
