"""The realised MFU of published training runs, and the forecast default derived from them.

Each row is a pre-training run whose developers state the model's size, its training tokens, the
accelerator and the device-hours (or devices x wall clock). Its *realised* MFU is

    6 x N x D / (device-hours x 3600 x the device's dense bf16 peak)

with N the (active) parameters and D the tokens: what a forecast from size, tokens and hardware
has to divide by, since the hours hold everything the run spent (restarts, evaluation, idle
time), not only its steady-state throughput. The peak is the hardware catalogue's, the one the
forecast divides by; attention FLOPs are not counted here.

The rows fall into two hardware groups: devices with a dense bf16 peak of ``HOPPER_PEAK_FLOPS``
or more (H100, H800, H200 and later) realise a lower fraction of their peak than A100s and TPUs.
Each group's fit follows the model size (log-linear in N, clamped to the group's sizes) where its
rows show a size dependence (|r| of at least ``SIZE_CORRELATION``; on the H100 class small models
realise less), else it is the median of its rows; its range multiplies the point by the lowest and
highest realised / fitted ratio of those rows (docs/estimation.md lists them). No row is a run of
the validation table (``sustainml eval published``), and a test checks they stay disjoint.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import cache
from typing import Final

from sustainml.catalogue import HardwareEntry, hardware
from sustainml.estimate.training.defaults import TRANSFORMER_FLOPS_PER_PARAM_TOKEN

#: Dense bf16 peak from which a device counts in the Hopper-and-later group (H100 PCIe: 756 TFLOP/s;
#: the A100's 312 and TPU v4's 275 are below it).
HOPPER_PEAK_FLOPS: Final = 5e14
HOPPER: Final = "H100 class and later"
EARLIER: Final = "A100 and TPU class"
#: |Pearson's r| between log10(size) and realised MFU from which a group's fit follows the size.
SIZE_CORRELATION: Final = 0.5
_H800_AS_H100: Final = (
    "the H800 is not in the hardware catalogue: it is the export variant of the H100 SXM with the "
    "same tensor-core peak and NVLink cut to 400 GB/s, so H100-SXM's peak is used"
)


@dataclass(frozen=True)
class CalibrationRun:
    """One published training run. ``parameters`` are the active parameters of a mixture of
    experts; ``device_hours`` is as stated or devices x wall clock (``derivation``)."""

    model: str
    parameters: float
    tokens: float
    hardware: str
    device: str  # the hardware catalogue's name
    device_hours: float
    derivation: str
    source: str
    mixture_of_experts: bool = False
    note: str = ""

    def flops(self) -> float:
        return TRANSFORMER_FLOPS_PER_PARAM_TOKEN * self.parameters * self.tokens

    def entry(self) -> HardwareEntry:
        return hardware().get(self.device)

    def realised_mfu(self) -> float:
        return self.flops() / (self.device_hours * 3600.0 * self.entry().peak("bf16"))

    def group(self) -> str:
        return group_of(self.entry())


def group_of(device: HardwareEntry) -> str:
    """The calibration group of ``device``, by its dense bf16 peak."""
    return HOPPER if device.peak("bf16") >= HOPPER_PEAK_FLOPS else EARLIER


RUNS: Final[tuple[CalibrationRun, ...]] = (
    CalibrationRun(
        "MPT-7B", 6.7e9, 1e12, "440 A100-40GB", "A100-SXM4-40GB", 440 * 9.5 * 24,
        "440 GPUs x 9.5 days x 24 h",
        "MosaicML MPT-7B model card (huggingface.co/mosaicml/mpt-7b), Training Configuration: 'trained on "
        "440 A100-40GBs for about 9.5 days'; Model Description: 6.7B parameters, 1T tokens",
    ),
    CalibrationRun(
        "Falcon-7B", 7e9, 1.5e12, "384 A100 40GB", "A100-SXM4-40GB", 384 * 14 * 24,
        "384 GPUs x 14 days ('about two weeks') x 24 h",
        "TII Falcon-7B model card (huggingface.co/tiiuae/falcon-7b), Training Procedure: 'trained on 384 "
        "A100 40GB GPUs ... took about two weeks'; Training Data: 1,500B tokens; 7B parameters",
    ),
    CalibrationRun(
        "Falcon-40B", 40e9, 1e12, "384 A100 40GB", "A100-SXM4-40GB", 384 * 60 * 24,
        "384 GPUs x 60 days ('two months') x 24 h",
        "TII Falcon-40B model card (huggingface.co/tiiuae/falcon-40b), Training Procedure: 'trained on 384 "
        "A100 40GB GPUs ... Training started in December 2022 and took two months'; 1,000B tokens; 40B "
        "parameters",
    ),
    CalibrationRun(
        "Falcon-180B", 180e9, 3.5e12, "A100 40GB", "A100-SXM4-40GB", 7.0e6,
        "~7,000,000 GPU-hours as stated",
        "Hugging Face blog 'Spread Your Wings: Falcon 180B is here' (huggingface.co/blog/falcon-180b): "
        "'trained on 3.5 trillion tokens on up to 4096 GPUs ... for a total of ~7,000,000 GPU hours'; "
        "GPUs: A100 40GB (Falcon-180B model card, Training Procedure)",
    ),
    CalibrationRun(
        "StarCoderBase", 15.5e9, 1e12, "512 A100 80GB", "A100-80GB", 320_256,
        "320,256 GPU-hours of pre-training as stated",
        "BigCode StarCoder model card (huggingface.co/bigcode/starcoder), Hardware: 512 A100, 24 days, "
        "320,256 GPU hours of pre-training (StarCoderBase) + 11,208 of Python fine-tuning; Li et al. 2023, "
        "arXiv:2305.06161: 15.5B parameters, 1 trillion tokens",
    ),
    CalibrationRun(
        "PaLM 540B", 540.35e9, 780e9, "TPU v4", "TPU-v4", 6144 * 1200 + 3072 * 336,
        "6144 chips x 1200 h + 3072 chips x 336 h",
        "Chowdhery et al. 2022, 'PaLM', arXiv:2204.02311: 'We trained PaLM-540B on 6144 TPU v4 chips for "
        "1200 hours and 3072 TPU v4 chips for 336 hours including some downtime and repeated steps' "
        "(its carbon-emissions discussion); table 1: 540.35B parameters; 780 billion training tokens",
    ),
    CalibrationRun(
        "Phi-3-mini", 3.8e9, 3.3e12, "512 H100-80G", "H100-SXM", 512 * 7 * 24,
        "512 GPUs x 7 days x 24 h",
        "Microsoft Phi-3-mini-4k-instruct model card (huggingface.co/microsoft/Phi-3-mini-4k-instruct, "
        "April 2024), Training: 3.8B parameters, 'GPUs: 512 H100-80G', 'Training time: 7 days', "
        "'Training data: 3.3T tokens'",
    ),
    CalibrationRun(
        "Phi-3-medium", 14e9, 4.8e12, "512 H100-80G", "H100-SXM", 512 * 42 * 24,
        "512 GPUs x 42 days x 24 h",
        "Microsoft Phi-3-medium-4k-instruct model card (huggingface.co/microsoft/Phi-3-medium-4k-instruct), "
        "Training: 14B parameters, 'GPUs: 512 H100-80G', 'Training time: 42 days', 'Training data: 4.8T "
        "tokens'",
    ),
    CalibrationRun(
        "Phi-4", 14e9, 9.8e12, "1920 H100-80G", "H100-SXM", 1920 * 21 * 24,
        "1920 GPUs x 21 days x 24 h",
        "Microsoft phi-4 model card (huggingface.co/microsoft/phi-4), Training: '14B parameters, dense "
        "decoder-only', 'GPUs: 1920 H100-80G', 'Training time: 21 days', 'Training data: 9.8T tokens'",
    ),
    CalibrationRun(
        "DeepSeek LLM 67B", 67e9, 1e12, "H800", "H100-SXM", 300_600,
        "300.6K GPU-hours per trillion tokens as stated",
        "DeepSeek-AI 2024, 'DeepSeek-V2', arXiv:2405.04434, 'Training Costs' (p. 16): 'for training on "
        "each trillion tokens, DeepSeek 67B requires 300.6K GPU hours' on the H800 cluster",
        note=_H800_AS_H100,
    ),
    CalibrationRun(
        "DeepSeek-V2", 21e9, 1e12, "H800", "H100-SXM", 172_800,
        "172.8K GPU-hours per trillion tokens as stated",
        "DeepSeek-AI 2024, 'DeepSeek-V2', arXiv:2405.04434, 'Training Costs' (p. 16): 'DeepSeek-V2 needs "
        "only 172.8K GPU hours' per trillion tokens on the H800 cluster; 21B of 236B parameters activated "
        "per token",
        mixture_of_experts=True,
        note=_H800_AS_H100,
    ),
    CalibrationRun(
        "DeepSeek-V3", 37e9, 14.8e12, "2048 H800", "H100-SXM", 2_664_000,
        "2,664K GPU-hours of pre-training as stated",
        "DeepSeek-AI 2024, 'DeepSeek-V3 Technical Report', arXiv:2412.19437, table 1: pre-training 2664K "
        "H800 GPU hours (of 2788K with context extension and post-training); 14.8T tokens; 37B of 671B "
        "parameters activated per token",
        mixture_of_experts=True,
        note=_H800_AS_H100 + "; trained in FP8 mixed precision, counted against the bf16 peak as a "
        "forecast divides by it",
    ),
    CalibrationRun(
        "JetMoE-8B", 2.2e9, 1.25e12, "96 H100", "H100-SXM", 30_000,
        "30,000 GPU-hours as stated",
        "Shen et al. 2024, 'JetMoE: Reaching Llama2 Performance with 0.1M Dollars', arXiv:2404.07413, "
        "abstract: 'using 1.25T tokens ... and 30,000 H100 GPU hours'; MyShell's JetMoE page "
        "(research.myshell.ai/jetmoe): 2.2B active parameters, 'a 96xH100 GPU cluster for 2 weeks'",
        mixture_of_experts=True,
    ),
    CalibrationRun(
        "SmolLM2-1.7B", 1.7e9, 11e12, "256 H100", "H100-SXM", 140_000,
        "~140k GPU-hours as stated",
        "Hugging Face SmolLM2 team, HuggingFaceTB/SmolLM2-1.7B-Instruct discussion #20 (answer of the "
        "Smol Models Research org): 'approximate gpu hours ... 1.7B (train for 11T): 140k'; model card "
        "(huggingface.co/HuggingFaceTB/SmolLM2-1.7B), Hardware: H100 GPUs",
    ),
    CalibrationRun(
        "SmolLM2-360M", 0.36e9, 4e12, "128 H100", "H100-SXM", 20_000,
        "~20k GPU-hours as stated",
        "the same answer: '360M (train for 4T): 20k'; model card "
        "(huggingface.co/HuggingFaceTB/SmolLM2-360M), Hardware: 128 H100",
    ),
    CalibrationRun(
        "SmolLM2-135M", 0.135e9, 2e12, "H100", "H100-SXM", 5_000,
        "~5k GPU-hours as stated",
        "the same answer: '135M (train for 2T): 5k', adding that smaller models would reach a better "
        "throughput per GPU on fewer nodes; model card (huggingface.co/HuggingFaceTB/SmolLM2-135M), "
        "Hardware: H100 GPUs",
    ),
)  # fmt: skip


@dataclass(frozen=True)
class GroupFit:
    """The realised MFU of one hardware group. ``slope`` 0: the median of its rows (``intercept``);
    else ``intercept + slope x log10(N)``, N clamped to the group's sizes. The range multiplies the
    point by the lowest and highest ratio realised / fitted among the group's rows."""

    group: str
    intercept: float
    slope: float
    low_factor: float
    high_factor: float
    size_range: tuple[float, float]
    size_correlation: float  # Pearson's r between log10(N) and the realised MFU
    runs: tuple[str, ...]

    def mfu(self, parameters: float | None = None) -> float:
        """The point figure for a model of ``parameters`` (unknown: the geometric middle of the
        group's sizes)."""
        if not self.slope:
            return self.intercept
        if parameters is None or parameters <= 0:
            parameters = math.sqrt(self.size_range[0] * self.size_range[1])
        size = min(max(parameters, self.size_range[0]), self.size_range[1])
        return self.intercept + self.slope * math.log10(size)

    def mfu_range(self, parameters: float | None = None) -> tuple[float, float]:
        point = self.mfu(parameters)
        return point * self.low_factor, point * self.high_factor

    def describe(self) -> str:
        form = (
            f"median {self.intercept:.3f}"
            if not self.slope
            else f"{self.intercept:.3f} + {self.slope:.3f} x log10(N), N within "
            f"{self.size_range[0]:.3g}-{self.size_range[1]:.3g}"
        )
        return (
            f"{form}; range x{self.low_factor:.2f}-x{self.high_factor:.2f}; r(log N, MFU) = "
            f"{self.size_correlation:.2f} over {len(self.runs)} runs"
        )


@cache
def fits() -> dict[str, GroupFit]:
    """Group name -> its fit over ``RUNS``: log-linear in size where the group's rows show a size
    dependence (|r| of at least ``SIZE_CORRELATION``), else their median."""
    by_group: dict[str, list[CalibrationRun]] = {}
    for run in RUNS:
        by_group.setdefault(run.group(), []).append(run)
    return {group: _fit(group, runs) for group, runs in by_group.items()}


def _fit(group: str, runs: list[CalibrationRun]) -> GroupFit:
    xs = [math.log10(r.parameters) for r in runs]
    ys = [r.realised_mfu() for r in runs]
    r_value = statistics.correlation(xs, ys)
    if abs(r_value) >= SIZE_CORRELATION:
        slope, intercept = statistics.linear_regression(xs, ys)
    else:
        slope, intercept = 0.0, statistics.median(ys)
    fitted = [intercept + slope * x for x in xs]
    ratios = [y / f for y, f in zip(ys, fitted, strict=True)]
    sizes = [r.parameters for r in runs]
    return GroupFit(
        group, intercept, slope, min(ratios), max(ratios), (min(sizes), max(sizes)), r_value,
        tuple(r.model for r in runs),
    )  # fmt: skip


def fit_for(device: HardwareEntry) -> GroupFit:
    """The fit of ``device``'s group."""
    return fits()[group_of(device)]


def reference(fit: GroupFit, parameters: float | None) -> str:
    """The source of a calibrated default, as it travels in extra_data.assumptions."""
    return (
        f"realised MFU (6*N*D / (device-hours x bf16 peak)) of {len(fit.runs)} published runs on "
        f"{fit.group} ({', '.join(fit.runs)}): {fit.describe()}; for N = "
        f"{'unknown' if parameters is None else f'{parameters:.3g}'}: {fit.mfu(parameters):.3f} "
        "(sustainml.estimate.training.calibration, docs/estimation.md); holds restarts, evaluation and "
        "idle time"
    )
