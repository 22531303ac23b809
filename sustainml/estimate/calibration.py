"""The ``local-cpu`` calibration: efficiency factors fitted on this machine (written by
``latency_eval``, read by ``roofline.efficiency_for``).

``local-cpu``'s peak is the *achieved* numpy sgemm rate and its bandwidth a measured copy rate
(``catalogue/localcpu.py``), so its fitted factors are relative to what this machine demonstrably
does, not to a datasheet. The calibration lives in ``<SUSTAINML_DATA_DIR>/latency-calibration.json``
and is used only when it describes this machine (local-cpu fingerprint) and this onnxruntime.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final

from sustainml.catalogue.schema import HardwareEntry
from sustainml.estimate.efficiency import Efficiency, device_rates

log = logging.getLogger(__name__)

CALIBRATION_FILE: Final = "latency-calibration.json"
CALIBRATION_VERSION: Final = 1


@dataclass(frozen=True)
class LocalCalibration:
    """Efficiency factors fitted for ``local-cpu`` on one machine with one onnxruntime."""

    fingerprint: str  # catalogue.localcpu fingerprint of the machine
    onnxruntime: str
    compute: float
    memory: float
    op_overhead_s: float
    fitted_at: str
    fit_models: list[str] = field(default_factory=list)
    test_models: list[str] = field(default_factory=list)
    fit_median_ratio: float = 0.0  # measured / estimated, models used for the fit
    test_median_ratio: float = 0.0  # measured / estimated, held-out models
    test_worst_ratio: float = 0.0  # the held-out ratio furthest from 1 (either way)
    peak_flops: float = 0.0  # the local-cpu peak the factors were fitted against (0 = unknown)
    bandwidth_bytes_s: float = 0.0  # likewise its bandwidth

    def efficiency(self, hw: HardwareEntry | None = None) -> Efficiency:
        """The fitted factors; for ``hw`` measured differently since (a recalibrated local-cpu),
        rescaled so that the attained FLOP/s and bytes/s stay those that were fitted."""
        compute, memory = self.compute, self.memory
        if hw is not None and self.peak_flops > 0 and self.bandwidth_bytes_s > 0:
            peak, bandwidth = device_rates(hw)
            compute *= self.peak_flops / peak
            memory *= self.bandwidth_bytes_s / bandwidth
        return Efficiency(
            compute,
            memory,
            self.op_overhead_s,
            f"fitted on this machine {self.fitted_at} against onnxruntime {self.onnxruntime} "
            f"({len(self.fit_models)} models; held-out median measured/estimated "
            f"{self.test_median_ratio:.2f}, worst {self.test_worst_ratio:.2f})",
        )


_calibration_lock = threading.Lock()
_calibration_memo: dict[Path, tuple[tuple[int, int], LocalCalibration | None]] = {}


def calibration_path(directory: Path | None = None) -> Path:
    if directory is None:  # a caller without settings: the process environment's data directory
        from sustainml.config import environment_settings

        directory = environment_settings().data_dir
    return directory / CALIBRATION_FILE


def _machine_key() -> tuple[str, str]:
    import onnxruntime

    from sustainml.catalogue import localcpu

    return localcpu.fingerprint(localcpu.machine_info()), str(onnxruntime.__version__)


_machine_memo: list[tuple[str, str]] = []


def machine_key() -> tuple[str, str]:
    """(local-cpu fingerprint, onnxruntime version) of this process (computed once)."""
    if not _machine_memo:
        _machine_memo.append(_machine_key())
    return _machine_memo[0]


def load_local_calibration(directory: Path | None = None) -> LocalCalibration | None:
    """The saved calibration if it describes this machine and onnxruntime, else ``None``."""
    path = calibration_path(directory)
    try:
        st = path.stat()
        mtime = (st.st_mtime_ns, st.st_size)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("latency calibration %s not readable: %s", path, exc)
        return None
    with _calibration_lock:
        memo = _calibration_memo.get(path)
        if memo is not None and memo[0] == mtime:
            return memo[1]
    result: LocalCalibration | None = None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(raw, dict) and raw.get("version") == CALIBRATION_VERSION:
            cal = LocalCalibration(**raw["calibration"])
            if (cal.fingerprint, cal.onnxruntime) == machine_key():
                result = cal
            else:
                log.info("latency calibration %s describes another machine or onnxruntime; not used", path)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("ignoring unreadable latency calibration %s: %s", path, exc)
    with _calibration_lock:
        _calibration_memo[path] = (mtime, result)
    return result


def save_local_calibration(calibration: LocalCalibration, directory: Path | None = None) -> Path:
    """Write ``calibration`` atomically; returns the file."""
    path = calibration_path(directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(
        json.dumps({"version": CALIBRATION_VERSION, "calibration": asdict(calibration)}, indent=1),
        encoding="utf-8",
    )
    os.replace(tmp, path)
    return path
