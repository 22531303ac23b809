"""The forecast MFU's calibration: published runs outside the validation table, their realised MFU
and the fit per hardware group the forecast uses."""

from __future__ import annotations

import re
import statistics

import pytest

from sustainml.catalogue import hardware
from sustainml.estimate.training import calibration
from sustainml.validation import calibration as calibration_part
from sustainml.validation import training


def _family(name: str) -> str:
    """The model family a name starts with: 'Llama 3.1 8B' -> 'llama', 'DeepSeek-V3' -> 'deepseek'."""
    return re.split(r"[^a-z]+", name.lower())[0]


def test_calibration_runs_and_evaluation_rows_are_different_models() -> None:
    evaluated = {row["name"] for row in training.load()}
    calibrated = {run.model for run in calibration.RUNS}
    fold = {re.sub(r"[^a-z0-9]", "", n.lower()) for n in evaluated}
    assert not {re.sub(r"[^a-z0-9]", "", n.lower()) for n in calibrated} & fold
    # Not even a sibling of an evaluated model: no family in common (Llama, Granite, GPT, ...).
    assert not {_family(n) for n in calibrated} & {_family(n) for n in evaluated}


def test_realised_mfu_is_six_n_d_over_device_hours_at_the_catalogue_peak() -> None:
    mpt = next(r for r in calibration.RUNS if r.model == "MPT-7B")
    peak = hardware().get("A100-SXM4-40GB").peak("bf16")
    assert mpt.realised_mfu() == pytest.approx(6 * 6.7e9 * 1e12 / (440 * 9.5 * 24 * 3600 * peak))
    for run in calibration.RUNS:
        assert 0 < run.realised_mfu() < 1 and run.source and run.derivation
        assert hardware().get(run.device) is not None


def test_each_group_fit_follows_size_only_where_its_runs_show_a_size_dependence() -> None:
    fits = calibration.fits()
    assert set(fits) == {calibration.EARLIER, calibration.HOPPER}
    for fit in fits.values():
        runs = [r for r in calibration.RUNS if r.model in fit.runs]
        values = [r.realised_mfu() for r in runs]
        assert len(runs) >= 5
        if abs(fit.size_correlation) < calibration.SIZE_CORRELATION:
            assert fit.slope == 0 and fit.mfu() == pytest.approx(statistics.median(values))
        # The range holds every run of the group at its own size.
        for run in runs:
            low, high = fit.mfu_range(run.parameters)
            assert low * (1 - 1e-9) <= run.realised_mfu() <= high * (1 + 1e-9)
    hopper = fits[calibration.HOPPER]
    assert hopper.slope > 0
    # Sizes outside the calibrated ones take the nearest calibrated size's figure.
    assert hopper.mfu(1e13) == pytest.approx(hopper.mfu(hopper.size_range[1]))
    assert calibration.group_of(hardware().get("H200")) == calibration.HOPPER
    assert calibration.group_of(hardware().get("A100-80GB")) == calibration.EARLIER


def test_the_calibration_part_lists_every_run_and_each_fit() -> None:
    table = calibration_part.run()
    assert [r["model"].split(" (")[0] for r in table.rows] == [r.model for r in calibration.RUNS]
    assert not table.criteria
    for fit in calibration.fits().values():
        assert any(n.startswith(f"{fit.group}: {fit.describe()}") for n in table.notes)
    assert "realised_MFU" in table.render()
