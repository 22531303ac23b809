"""The hardware catalogue (hardware.json), local-cpu calibration and the catalogue listing."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sustainml.catalogue import HardwareEntry, UnknownEntry, hardware, localcpu
from sustainml.catalogue.listing import (
    UPSTREAM_HARDWARE_NAMES,
    CatalogueUnavailable,
    as_json,
    render_table,
    rows,
)

#: The original framework's hardware names (its `hardwares` answer), spelled exactly.
UPSTREAM_NAMES = (
    "DGX100", "V100", "H100", "H100_x2", "H100_x3", "H100_x4", "H100_x5", "H100_x8", "H200", "H20", "A800",
    "A6000", "A17Pro", "Dimensity9300", "Snapdragon8gen3", "SAM_LPDDR5PIM", "PIM_AI_1chip", "PIM_AI_4chip",
    "PIM_AI_1dimm", "PIM_AI_2dimm", "PIM_AI_4dimm", "PIM_AI_6dimm", "PIM_AI_8dimm", "PIM_AI_10dimm",
    "PIM_AI_12dimm", "PIM_AI_16dimm", "PIM_AI_24dimm", "CXL_PIM_BC", "CXL_PIM_nBC",
    "Zynq UltraScale+ ZCU102", "Zynq UltraScale+ ZCU104", "Ultra96-V2", "TySOM-3A-ZU19EG",
    "FPGA (xczu19eg-ffvb1517-2-i)",
    "PIM-AI-1chip",  # the GUI's spelling of the default
)  # fmt: skip

ESTIMABLE = {"memory_bandwidth_gbs", "memory_gb", "tdp_w", "idle_w", "peak_flops"}


def _raw() -> dict[str, Any]:
    text = resources.files("sustainml.catalogue").joinpath("data", "hardware.json").read_text("utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def test_file_has_the_loader_contract_and_documents_its_rules() -> None:
    data = _raw()
    assert data["source_note"] and data["licence"]
    assert isinstance(data["entries"], list)
    rules = data["estimation_rules"]
    for entry in data["entries"]:
        if entry["estimated"]:
            # every estimated entry names the rules it used, and each rule exists
            used = re.findall(r"estimate rules: ([^()]+) \(see estimation_rules\)", entry["source"])
            for rule_list in used:
                for rule in rule_list.split(", "):
                    assert rule in rules, (entry["name"], rule)


def test_at_least_25_devices_covering_every_class() -> None:
    catalogue = hardware()
    assert len(catalogue) >= 25
    classes = {h.device_class for h in catalogue}
    assert classes == {"cloud", "server-cpu", "desktop", "edge", "mobile", "embedded", "pim", "fpga", "local"}
    names = {h.name for h in catalogue}
    for wanted in ("V100", "A100", "A100-80GB", "H100", "H100-SXM", "H200", "L4", "T4", "A10", "L40S"):
        assert wanted in names
    assert len(catalogue.of_class("server-cpu")) >= 2
    assert {
        "Jetson-Orin-Nano",
        "Jetson-Orin-NX",
        "Jetson-AGX-Orin",
        "Raspberry-Pi-5",
        "Coral-Edge-TPU",
    } <= names
    assert {"A17Pro", "Snapdragon8gen3", "Dimensity9300"} <= names


@pytest.mark.parametrize("name", UPSTREAM_NAMES)
def test_every_upstream_name_resolves(name: str) -> None:
    entry = hardware().get(name)
    # the upstream strings are the canonical names; the GUI spelling folds onto the default
    assert entry.name == ("PIM_AI_1chip" if name == "PIM-AI-1chip" else name)


def test_upstream_reply_order_lists_only_catalogue_devices() -> None:
    assert set(UPSTREAM_HARDWARE_NAMES) == set(UPSTREAM_NAMES) - {"PIM-AI-1chip"}
    simulator = UPSTREAM_HARDWARE_NAMES[:29]
    assert list(simulator) == sorted(simulator)  # sorted simulator names first
    assert UPSTREAM_HARDWARE_NAMES[-1] == "FPGA (xczu19eg-ffvb1517-2-i)"
    for name in UPSTREAM_HARDWARE_NAMES:
        assert hardware().get(name).name == name  # canonical names are the upstream strings


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("PIM-AI-1chip", "PIM_AI_1chip"),
        ("pim ai 1chip", "PIM_AI_1chip"),
        ("nvidia a100", "A100"),
        ("NVIDIA/A100", "A100"),
        ("NVIDIA A100-SXM4-80GB", "A100-80GB"),
        ("rpi5", "Raspberry-Pi-5"),
        ("Raspberry Pi 5", "Raspberry-Pi-5"),
        ("tesla t4", "T4"),
        ("NVIDIA H100 80GB HBM3", "H100-SXM"),
        ("h100 pcie", "H100"),
        ("DGX", "DGX100"),
        ("DGX H100", "DGX100"),
        ("Apple A17 Pro", "A17Pro"),
        ("Snapdragon 8 Gen 3", "Snapdragon8gen3"),
        ("dimensity-9300", "Dimensity9300"),
        ("jetson orin nano", "Jetson-Orin-Nano"),
        ("Coral", "Coral-Edge-TPU"),
        ("ZCU102", "Zynq UltraScale+ ZCU102"),
        ("xczu19eg-ffvb1517-2-i", "FPGA (xczu19eg-ffvb1517-2-i)"),
        ("AMD EPYC 9654", "EPYC-9654"),
        ("cpu", "local-cpu"),
        ("  Local_CPU ", "local-cpu"),
    ],
)
def test_alias_folding(typed: str, expected: str) -> None:
    assert hardware().get(typed).name == expected


def test_unknown_name_lists_the_closest_names() -> None:
    with pytest.raises(UnknownEntry) as info:
        hardware().get("H1000")
    message = str(info.value)
    assert "unknown hardware 'H1000'" in message
    assert "H100" in message.split("closest:")[1]
    with pytest.raises(UnknownEntry, match=r"closest: .*PIM_AI_1chip"):
        hardware().get("PIM_AI_1chp")
    assert hardware().find("no such device") is None


def test_estimates_are_flagged_with_known_field_names() -> None:
    for h in hardware():
        for field_name in h.estimated:
            base, _, precision = field_name.partition(".")
            assert base in ESTIMABLE, (h.name, field_name)
            if precision:
                assert base == "peak_flops" and precision in h.peak_flops, (h.name, field_name)
    # devices without public datasheet figures say so
    for name in ("PIM_AI_1chip", "CXL_PIM_BC", "SAM_LPDDR5PIM"):
        assert {"peak_flops", "memory_gb", "tdp_w", "idle_w"} <= set(hardware().get(name).estimated)
    for name in ("Zynq UltraScale+ ZCU102", "Ultra96-V2", "FPGA (xczu19eg-ffvb1517-2-i)"):
        assert {"peak_flops", "tdp_w"} <= set(hardware().get(name).estimated)
    for name in ("A17Pro", "Snapdragon8gen3", "Dimensity9300"):
        assert "tdp_w" in hardware().get(name).estimated
    # a datasheet device flags only what its datasheet lacks (idle power)
    assert hardware().get("H100-SXM").estimated == ("idle_w",)


def test_peaks_and_power_are_sane() -> None:
    for h in hardware():
        assert h.peak_flops["fp32"] > 0, h.name
        assert all(v > 0 for v in h.peak_flops.values()), h.name
        assert set(h.peak_flops) <= {"fp32", "tf32", "fp16", "bf16", "int8", "int4"}, h.name
        # no reduced precision is slower than fp32 on the same device
        assert all(v >= h.peak_flops["fp32"] * 0.999 for v in h.peak_flops.values()), h.name
        assert h.memory_bandwidth_gbs > 0 and h.memory_gb > 0, h.name
        assert 0 < h.idle_w < h.tdp_w, h.name
        assert h.source and h.description, h.name
        assert h.device_class == "local" or (h.vendor and 2015 <= h.year <= 2026), h.name


def test_datasheet_anchors() -> None:
    """A few figures checked against the datasheets cited in the entries (dense, not sparse)."""
    h100 = hardware().get("H100-SXM")
    assert h100.peak("bf16") == pytest.approx(989.4e12)
    assert h100.memory_bandwidth_gbs == 3350 and h100.tdp_w == 700
    assert hardware().get("H100").peak("fp16") == pytest.approx(756e12)  # upstream's 756.5 TFLOPS device
    a100 = hardware().get("A100")
    assert (a100.peak("fp32"), a100.memory_gb, a100.tdp_w) == (19.5e12, 40, 250)
    assert hardware().get("T4").peak("int8") == 130e12
    assert hardware().get("DGX100").peak("fp16") == pytest.approx(8 * 989.4e12)
    assert hardware().get("H100_x8").memory_bandwidth_gbs == 16000  # upstream: 8 x 2,000 GB/s
    # peak() falls back to fp32 where a device has no faster path
    assert hardware().get("V100").peak("int8") == hardware().get("V100").peak("fp32")


@pytest.mark.parametrize(("name", "measured_max_w"), [("TPU-v3", 262.0), ("TPU-v4", 192.0)])
def test_google_tpus_carry_the_measured_maximum_google_publishes(name: str, measured_max_w: float) -> None:
    """Google publishes measured min/mean/max chip power for TPU v3 and v4, not a TDP: both
    generations charge the measured maximum, one convention for one vendor's chips."""
    tpu = hardware().get(name)
    assert tpu.tdp_w == measured_max_w
    assert "measured maximum" in tpu.source and "cloud.google.com/tpu/docs" in tpu.source


def test_multi_device_entries_scale_their_single_device() -> None:
    one = hardware().get("H100")
    for n in (2, 3, 4, 5, 8):
        many = hardware().get(f"H100_x{n}")
        assert many.peak("fp16") == pytest.approx(n * one.peak("fp16"))
        assert many.memory_gb == n * one.memory_gb and many.tdp_w == n * one.tdp_w


# ------------------------------------------------------------------------------------------------
# local-cpu
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("localcpu")


@pytest.fixture(scope="module")
def calibration(calibration_dir: Path) -> localcpu.Calibration:
    localcpu._memo.clear()
    return localcpu.calibrate(calibration_dir, force=True)


def test_calibration_measures_plausible_figures(calibration: localcpu.Calibration) -> None:
    # bounds wide enough for a Raspberry Pi and a 128-core server alike
    assert 1e9 < calibration.fp32_flops < 1e14
    assert 0.5 < calibration.memory_bandwidth_gbs < 2000
    assert calibration.cores == localcpu.usable_cores() >= 1
    assert calibration.memory_gb > 0.5
    assert 0 < calibration.idle_w < calibration.tdp_w
    assert calibration.power_source in ("rapl", "estimate")
    if calibration.power_source == "estimate":
        assert calibration.tdp_w == localcpu.WATTS_PER_CORE * calibration.cores
        assert calibration.estimated == ("tdp_w", "idle_w")
    assert calibration.duration_s < 5  # budget ~1-2 s; generous for a loaded CI machine
    if calibration.theoretical_fp32_flops:
        # achieved sgemm cannot beat the theoretical peak by much (turbo clocks above the listed MHz)
        assert calibration.fp32_flops < 2 * calibration.theoretical_fp32_flops


def test_calibration_is_cached_on_disk_with_the_machine_fingerprint(
    calibration: localcpu.Calibration, calibration_dir: Path
) -> None:
    path = calibration_dir / localcpu.CACHE_FILE
    stored = json.loads(path.read_text())
    assert stored["version"] == localcpu.CALIBRATION_VERSION
    assert stored["calibration"]["fingerprint"] == localcpu.fingerprint(localcpu.machine_info())
    localcpu._memo.clear()  # force the disk path, not the in-process memo
    again = localcpu.calibrate(calibration_dir)
    assert again == calibration  # same figures, not a new measurement
    assert again.measured_at == calibration.measured_at


def test_cache_for_another_machine_is_not_reused(calibration: localcpu.Calibration, tmp_path: Path) -> None:
    stale = json.loads(json.dumps({"version": localcpu.CALIBRATION_VERSION, "calibration": {}}))
    fields = {k: getattr(calibration, k) for k in calibration.__dataclass_fields__}
    fields.update(fingerprint="another-machine", fp32_flops=1.0, measured_at="2000-01-01T00:00:00+00:00")
    stale["calibration"] = fields
    (tmp_path / localcpu.CACHE_FILE).write_text(json.dumps(stale))
    localcpu._memo.clear()
    fresh = localcpu.calibrate(tmp_path)
    assert fresh.fingerprint == calibration.fingerprint
    assert fresh.fp32_flops > 1e9 and fresh.measured_at != "2000-01-01T00:00:00+00:00"
    rewritten = json.loads((tmp_path / localcpu.CACHE_FILE).read_text())
    assert rewritten["calibration"]["fingerprint"] == calibration.fingerprint


def test_corrupt_cache_is_replaced(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / localcpu.CACHE_FILE).write_text("{not json")
    localcpu._memo.clear()
    with caplog.at_level("WARNING", logger="sustainml.catalogue.localcpu"):
        fresh = localcpu.calibrate(tmp_path)
    assert "unreadable calibration cache" in caplog.text
    assert fresh.fp32_flops > 1e9
    assert json.loads((tmp_path / localcpu.CACHE_FILE).read_text())["version"] == localcpu.CALIBRATION_VERSION


def test_local_cpu_entry_is_the_measured_machine(
    calibration: localcpu.Calibration, calibration_dir: Path
) -> None:
    entry = localcpu.local_cpu_entry(calibration_dir)
    assert isinstance(entry, HardwareEntry)
    assert entry.name == "local-cpu" and entry.device_class == "local"
    assert entry.peak("fp32") == calibration.fp32_flops
    assert entry.memory_bandwidth_gbs == calibration.memory_bandwidth_gbs
    assert entry.memory_gb == calibration.memory_gb
    assert "measured on this machine" in entry.source
    assert entry.aliases == hardware().get("local-cpu").aliases
    fallback = hardware().get("local-cpu")
    assert "fallback" in fallback.description  # the JSON row is the fallback, not the measurement


def test_local_cpu_entry_falls_back_when_measuring_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(info: dict[str, Any] | None = None) -> localcpu.Calibration:
        raise RuntimeError("no BLAS")

    monkeypatch.setattr(localcpu, "measure", broken)
    localcpu._memo.clear()
    with caplog.at_level("ERROR", logger="sustainml.catalogue.localcpu"):
        entry = localcpu.local_cpu_entry(tmp_path)
    assert "calibration failed: no BLAS" in entry.description
    assert entry.peak_flops == hardware().get("local-cpu").peak_flops
    assert "calibration failed" in caplog.text


def test_default_cache_dir_follows_the_data_dir_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUSTAINML_DATA_DIR", str(tmp_path))
    assert localcpu.default_cache_dir() == tmp_path


# ------------------------------------------------------------------------------------------------
# listing
# ------------------------------------------------------------------------------------------------


def test_hardware_rows_and_json() -> None:
    table_rows = rows("hardware", measure_local=False)
    assert len(table_rows) == len(hardware())
    a100 = next(r for r in table_rows if r["name"] == "A100")
    assert a100["fp32_tflops"] == pytest.approx(19.5) and a100["int8_tops"] == pytest.approx(624)
    assert a100["memory_bandwidth_gbs"] == 1555 and a100["estimated"] == "idle"
    full = as_json("hardware", measure_local=False)
    assert json.loads(json.dumps(full)) == full  # JSON-ready
    pim = next(e for e in full if e["name"] == "PIM_AI_1chip")
    assert pim["aliases"] and isinstance(pim["estimated"], list) and pim["peak_flops"]["fp32"] == 5e12


def test_hardware_listing_measures_local_cpu(monkeypatch: pytest.MonkeyPatch, calibration_dir: Path) -> None:
    monkeypatch.setenv("SUSTAINML_DATA_DIR", str(calibration_dir))  # reuse this module's calibration
    local = next(e for e in as_json("hardware") if e["name"] == "local-cpu")
    assert "measured on this machine" in local["source"]


def test_render_tables_have_units_in_plain_headers() -> None:
    table = render_table("hardware", measure_local=False)
    headers = [str(c.header) for c in table.columns]
    assert "fp32 (TFLOPS)" in headers and "TDP (W)" in headers and "mem BW (GB/s)" in headers
    assert not any("[" in h for h in headers)
    assert table.row_count == len(hardware())
    console = Console(width=240, record=True)
    console.print(table)
    text = console.export_text()
    assert "FPGA (xczu19eg-ffvb1517-2-i)" in text and "PIM_AI_1chip" in text
    regions_table = render_table("regions")
    assert "intensity (gCO2e/kWh)" in [str(c.header) for c in regions_table.columns]


def test_unknown_catalogue_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="choose one of: models, hardware, regions"):
        rows("gpus")


def test_models_listing_works_or_says_the_file_is_missing() -> None:
    try:
        table_rows = rows("models")
    except CatalogueUnavailable as exc:
        assert "models.json" in str(exc)
        return
    assert table_rows and {"name", "params_m", "gmacs", "quality"} <= set(table_rows[0])
    assert render_table("models").row_count == len(table_rows)
    assert len(as_json("models")) == len(table_rows)
