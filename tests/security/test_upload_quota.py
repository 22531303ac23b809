"""Uploaded datasets are not kept forever: a retention and a total quota (oldest removed first)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sustainml.api.security import prune_uploads


def _file(folder: Path, name: str, size: int, age_s: float) -> Path:
    path = folder / name
    path.write_bytes(b"x" * size)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_expired_uploads_go_then_the_oldest_until_the_next_one_fits(tmp_path: Path) -> None:
    expired = _file(tmp_path, "expired.csv", 100, age_s=40 * 86_400)
    old = _file(tmp_path, "old.csv", 400, age_s=3_600)
    mid = _file(tmp_path, "mid.csv", 400, age_s=600)
    new = _file(tmp_path, "new.csv", 400, age_s=10)
    removed = prune_uploads(tmp_path, quota_bytes=1_000, incoming_bytes=200, retention_s=30 * 86_400)
    # 1200 kept + 200 incoming is over 1000: the oldest goes; 800 + 200 fits
    assert removed == [expired, old]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mid.name, new.name])


def test_nothing_is_removed_while_everything_fits(tmp_path: Path) -> None:
    a = _file(tmp_path, "a.csv", 100, age_s=60)
    assert prune_uploads(tmp_path, quota_bytes=10_000, incoming_bytes=1_000, retention_s=86_400) == []
    assert a.exists()
