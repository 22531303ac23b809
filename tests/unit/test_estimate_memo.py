"""The per-process estimate memos: a cached answer equals a fresh one, and a different input misses."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sustainml.catalogue import hardware, models
from sustainml.estimate import memo
from sustainml.estimate import roofline as rl
from sustainml.estimate.model_files import analysed, catalogue_file
from sustainml.messages.types import AppRequirements, HWConstraints
from sustainml.workers.logic import ml_model
from sustainml.workers.logic.hw_resources import evaluation
from sustainml.workers.logic.ml_model import candidates


def test_memo_is_bounded_and_least_recently_used_goes_first() -> None:
    m = memo.Memo[int]("test.lru", 2)
    m.get("a", lambda: 1)
    m.get("b", lambda: 2)
    assert m.get("a", lambda: 10) == 1  # hit: "a" is now the most recent
    m.get("c", lambda: 3)  # evicts "b"
    assert m.get("b", lambda: 20) == 20
    assert m.get("a", lambda: 30) == 30  # "a" went when "b" came back
    assert len(m) == 2


def test_memo_compares_pinned_objects_by_identity() -> None:
    m = memo.Memo[str]("test.identity", 8)
    first, equal = {"x": 1}, {"x": 1}
    assert m.get("k", lambda: "first", (first,)) == "first"
    assert m.get("k", lambda: "other", (first,)) == "first"
    assert m.get("k", lambda: "equal", (equal,)) == "equal"


def test_memo_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="size"):
        memo.Memo[int]("test.size", 0)


def test_clear_all_empties_every_memo() -> None:
    m = memo.Memo[int]("test.clear", 4)
    m.get("a", lambda: 1)
    memo.clear_all()
    assert len(m) == 0
    assert "test.clear" in memo.stats()


def _context() -> ml_model.Context:
    return ml_model.Context.build(
        "image-classification", {}, AppRequirements(), HWConstraints(hardware_required=["auto"])
    )


def test_cached_screening_equals_a_fresh_one_and_another_precision_misses() -> None:
    ctx = _context()
    entry = models().get("resnet-50")
    memo.clear_all()
    need = candidates.memory_needed_mb(entry, ctx, "fp32")[0]
    fresh = candidates.device_fits(entry, ctx, "fp32", need)
    misses = candidates._fits.misses
    cached = candidates.device_fits(entry, ctx, "fp32", need)
    assert cached == fresh
    assert candidates._fits.misses == misses
    # The uncached path gives the same answer device by device.
    assert list(fresh) == [ml_model.device_fit(entry, d, ctx, "fp32", need) for d in ctx.devices]
    half = candidates.device_fits(entry, ctx, "fp16", candidates.memory_needed_mb(entry, ctx, "fp16")[0])
    assert candidates._fits.misses == misses + 1
    assert half != fresh
    # Another task shape (batch) misses too.
    ctx.batch = 8
    batched = candidates.device_fits(entry, ctx, "fp32", need)
    assert candidates._fits.misses == misses + 2
    assert batched[0].latency_s > fresh[0].latency_s


def test_cached_roofline_equals_a_fresh_one_and_another_device_misses() -> None:
    entry = models().get("resnet-18")
    report = analysed(catalogue_file(entry), 1)
    t4, a100 = hardware().get("T4"), hardware().get("A100")
    memo.clear_all()
    first = evaluation._roofline(report, t4, "fp32", None, None)
    assert evaluation._roofline(report, t4, "fp32", None, None) is first
    fresh = rl.estimate(report, t4, "fp32", rl.efficiency_for(t4, None))
    assert first.to_dict() == fresh.to_dict()
    misses = evaluation._rooflines.misses
    other = evaluation._roofline(report, a100, "fp32", None, None)
    assert evaluation._rooflines.misses == misses + 1
    assert other.latency_s != first.latency_s
    # An entry with the same name and other figures is another device: it misses.
    faster = replace(t4, memory_bandwidth_gbs=t4.memory_bandwidth_gbs * 2)
    evaluation._roofline(report, faster, "fp32", None, None)
    assert evaluation._rooflines.misses == misses + 2


def test_cached_analysis_is_the_same_report_and_another_batch_misses() -> None:
    path = catalogue_file(models().get("resnet-18"))
    memo.clear_all()
    one = analysed(path, 1)
    assert analysed(path, 1) is one
    four = analysed(path, 4)
    assert four is not one
    assert four.flops > one.flops
