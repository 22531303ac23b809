"""Energy of training a model on a device: FLOPs, time, power and PUE, every assumption shown.

The CARBON_FOOTPRINT node's headline figure (the original framework's purpose: warn about the
footprint of *training* the proposed model on the proposed hardware). Units: FLOP, FLOP/s,
seconds, W, Wh.

    training FLOPs = extra_data.training_flops, else
                     6 x N x D for a transformer whose size N (model_parameters; active_parameters
                     for a mixture of experts) and tokens D (training_tokens, or training_samples x
                     epochs x input_tokens) are given, else
                     3 x forward FLOPs per sample x training samples x epochs
    time [s]       = device-hours x 3600 / num_devices when the run is described by its length:
                     training_device_hours, or num_devices x wall clock (training_hours, or
                     training_days x 24); else
                     training FLOPs / (num_devices x peak FLOP/s at the training precision x MFU)
    energy [Wh]    = num_devices x training power [W] x time [s] x PUE / 3600

Every figure has a low/high range (``energy_wh_low``/``energy_wh_high``): the product of the
ranges of its inputs (power, PUE, MFU for a forecast); a value the user states has no range.

Why each default (all overridable through ``UserInput.extra_data``; docs/estimation.md lists them
with their sources):

- **3 x forward**: the backward pass costs about twice the forward pass (gradients with respect
  to activations and to weights), so one training step on a sample is ~3 forward passes. For a
  transformer with N parameters this is the 6·N FLOPs per token of Kaplan et al. 2020
  (arXiv:2001.08361); docs/estimation.md ("CNN training = 3 x forward FLOPs x
  samples x epochs"). Forward FLOPs = 2 x MACs (section 1). Optimizer updates, data loading and
  evaluation passes are not counted.
- **Training samples**: ``extra_data.training_samples``, else ``UserInput.maximum_samples``, else
  ``UserInput.minimum_samples``, else ``DEFAULT_TRAINING_SAMPLES`` = 50,000, the size of the
  CIFAR-10 training split (Krizhevsky 2009), a typical small supervised data set. An assumption:
  tell the node your data-set size.
- **Epochs**: 1. Real runs use more; the result scales linearly.
- **Power**: a measured average (``training_power_w``), else a power cap (``power_cap_w``, at most
  the device's TDP), else the power the hardware text states (``H100-80GB (TDP of 700W)``), else
  the rated figure below. Range of a rated, stated or capped figure: 0.6-1.0 x the figure: Google
  measures its TPU v3 and v4 chips at 47 % (minimum) and 84-89 % (mean) of their measured maximum
  (123/220/262 W and 90/170/192 W, Cloud TPU documentation). The catalogue's figure for a TPU is
  that measured maximum (Google publishes no TDP for v4; TPU v3's 450 W thermal design power is
  never reached in its measurements); for a GPU it is the board's TDP.
- **MFU for a transformer forecast (6·N·D)**: the *realised* MFU of published training runs
  outside the validation tables (``calibration``: 6·N·D over their stated device-hours at the
  catalogue's bf16 peak, so restarts, evaluation and idle time are in it), by hardware group: on
  A100s and TPUs (dense bf16 peak below 500 TFLOP/s) the median of 6 runs, 0.37, range 0.26-0.48,
  with no trend in size; on the H100 class and later a log-linear fit in the (active) parameter
  count over 10 runs (0.16 at 1B, 0.24 at 8B, 0.32 at 70B; range x0.73-x1.24), since small models
  realise less of those devices' peak. On V100 (Volta, no calibration run): 0.24, range 0.2-0.3:
  Megatron-LM sustained 29.5 TFLOP/s per GPU on 512 V100 (24 % of the 125 TFLOP/s peak) from 30 %
  on one GPU (Shoeybi et al. 2019, arXiv:1909.08053, section 5.1).
- **Encoder-decoder** (T5, BART, NLLB, Whisper), when the architecture is known: 6 FLOPs per
  weight and token *through that weight*: input tokens through the encoder and the decoder's
  cross-attention keys/values, target tokens (``target_tokens``, default as many as the input)
  through the rest of the decoder and the output head; 6·N·D on the whole model would count
  every token through both stacks.
- **Attention scores**, when the architecture is known (model catalogue or
  ``extra_data.architecture``): + 6 x layers x sequence length x attention width FLOPs per token
  (Kaplan et al. 2020, table 1: the causal count), sequence length ``sequence_length`` else the
  architecture's context up to 4,096 (long-context models pre-train mostly at 4,096 tokens and
  extend at the end: Qwen2.5 technical report, arXiv:2412.15115). The calibrated MFUs count
  6·N·D only, so with this term a forecast leans high by its share (1-13 %).
- **Interruptions and restarts** of a forecast run at a steady-state MFU (the user's ``mfu``, or
  V100's throughput): up to +10 % time on the high end of the range (Meta reports more than 90 %
  effective training time with 466 interruptions in 54 days on 16k GPUs, Llama 3 paper,
  arXiv:2407.21783, section 3.3.4); the point figure assumes none. A realised MFU holds them.
- **MFU** (model FLOPs utilisation, achieved / peak) otherwise: 0.3, range 0.2-0.4. Published
  large training runs reach 0.21-0.46 (GPT-3 21.3 %, Megatron-Turing NLG 30.2 %, Gopher 32.5 %,
  PaLM 46.2 %: Chowdhery et al. 2022, arXiv:2204.02311, table 3); docs/estimation.md quotes up to 0.5 for
  large-scale training (llm-analysis README). 0.3 is the typical published value; a lower MFU
  gives a longer, costlier run, so the default errs towards warning.
- **Precision**: mixed precision (Micikevicius et al. 2018, arXiv:1710.03740), the default of
  current training recipes: bf16 where the device has a bf16 path, else fp16, else fp32; the peak
  is the hardware catalogue's dense figure at that precision.
- **Devices**: 1.
- **Power**: ``sustainml.estimate.power.device_power_w(hw, u)`` = idle + u x (TDP - idle) with
  u = 1.0: training keeps the device saturated, so it draws about its rated power; Green
  Algorithms' default usage factor is 1.0 (Lannelongue et al. 2021, doi:10.1002/advs.202100707)
  and the ML CO2 Impact calculator uses TDP (Lacoste et al. 2019, arXiv:1910.09700),
  docs/estimation.md
- **PUE**: ``extra_data.pue``, else ``extra_data.pue_setting`` (``sustainml.estimate.pue``:
  hyperscale, aws, gcp, azure, typical, on-premises, on-device; each with its source and range),
  else the provider's when the location is a cloud region, else 1.56 for devices that live in a
  data centre (``cloud``, ``server-cpu``, ``pim``: the
  PIM/CXL-PIM parts are server memory modules), the Uptime Institute 2024 global average used by
  Green Algorithms; 1.0 for on-device targets (``edge``, ``mobile``, ``embedded``, ``fpga``
  boards, ``local`` = this machine), docs/estimation.md Unknown device: 1.56
  (Green Algorithms' "unknown" default).

The code: ``defaults`` (the defaults and their references), ``inputs`` (settings read from
``extra_data``), ``work`` (how much work: given, 6·N·D forecast or 3 x forward, and the MFU) and
``footprint`` (time, power, PUE, energy and its range); their public names are re-exported here.
"""

from __future__ import annotations

from sustainml.estimate.training.defaults import (
    DEFAULT_EPOCHS,
    DEFAULT_MFU,
    DEFAULT_NUM_DEVICES,
    DEFAULT_TRAINING_SAMPLES,
    PRECISIONS,
    PUE_BY_CLASS,
    PUE_DATACENTRE,
    PUE_ON_DEVICE,
    PUE_UNKNOWN,
    RESTART_OVERHEAD_HIGH,
    TRAINING_FLOPS_FACTOR,
    TRAINING_UTILISATION,
)
from sustainml.estimate.training.footprint import (
    TrainingEstimate,
    estimate_training,
    training_energy_wh,
)
from sustainml.estimate.training.inputs import (
    Assumption,
    default_pue,
    fmt,
    number_setting,
    precision_setting,
    training_precision,
)
from sustainml.estimate.training.work import MfuDefault, transformer_mfu

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_MFU",
    "DEFAULT_NUM_DEVICES",
    "DEFAULT_TRAINING_SAMPLES",
    "PRECISIONS",
    "PUE_BY_CLASS",
    "PUE_DATACENTRE",
    "PUE_ON_DEVICE",
    "PUE_UNKNOWN",
    "RESTART_OVERHEAD_HIGH",
    "TRAINING_FLOPS_FACTOR",
    "TRAINING_UTILISATION",
    "Assumption",
    "MfuDefault",
    "TrainingEstimate",
    "default_pue",
    "estimate_training",
    "fmt",
    "number_setting",
    "precision_setting",
    "training_energy_wh",
    "training_precision",
    "transformer_mfu",
]
