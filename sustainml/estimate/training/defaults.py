"""The defaults of a training estimate and the public reference behind each (the package
docstring explains them)."""

from __future__ import annotations

from typing import Final

DEFAULT_TRAINING_SAMPLES: Final = 50_000
DEFAULT_EPOCHS: Final = 1.0
DEFAULT_MFU: Final = 0.3
MFU_RANGE: Final = (0.2, 0.4)
#: MFU of a transformer run forecast from 6·N·D on V100 (Volta) GPUs, and its range: the calibration
#: table holds no V100 run, so this is a sustained throughput (other devices: the realised MFU of
#: ``calibration``, restarts included).
VOLTA_TRANSFORMER_MFU: Final = 0.24
VOLTA_TRANSFORMER_MFU_RANGE: Final = (0.2, 0.3)
#: Device-name prefixes of the Volta generation in the hardware catalogue.
VOLTA_PREFIXES: Final = ("V100",)
#: Training sequence length when none is stated: the architecture's context, at most this.
DEFAULT_SEQUENCE_LENGTH: Final = 4096
#: Upper end of the time lost to interruptions and restarts of a forecast run (fraction of the
#: forecast time): widens the high end of the range only.
RESTART_OVERHEAD_HIGH: Final = 0.1
#: Fraction of a rated power a training run draws, low end (see the module docstring).
RATED_POWER_LOW_FRACTION: Final = 0.6
#: Training FLOPs per parameter and token of a transformer (forward 2 + backward 4).
TRANSFORMER_FLOPS_PER_PARAM_TOKEN: Final = 6.0
DEFAULT_NUM_DEVICES: Final = 1
#: Fraction of the idle-to-TDP range drawn while training.
TRAINING_UTILISATION: Final = 1.0
#: Training FLOPs per sample and epoch, in forward passes (forward + backward = 1 + 2).
TRAINING_FLOPS_FACTOR: Final = 3.0
#: Inputs that give the run's length.
TIME_KEYS: Final = ("training_device_hours", "training_hours", "training_days")
#: Training precision when none is given: the first the device has a faster path for.
TRAINING_PRECISION_PREFERENCE: Final = ("bf16", "fp16")
PRECISIONS: Final = ("fp32", "tf32", "fp16", "bf16", "int8", "int4")

PUE_DATACENTRE: Final = 1.56
PUE_ON_DEVICE: Final = 1.0
PUE_BY_CLASS: Final[dict[str, float]] = {
    "cloud": PUE_DATACENTRE,
    "server-cpu": PUE_DATACENTRE,
    "desktop": PUE_ON_DEVICE,
    "pim": PUE_DATACENTRE,
    "edge": PUE_ON_DEVICE,
    "mobile": PUE_ON_DEVICE,
    "embedded": PUE_ON_DEVICE,
    "fpga": PUE_ON_DEVICE,
    "local": PUE_ON_DEVICE,
}
PUE_UNKNOWN: Final = PUE_DATACENTRE

# The public source of each default, as it travels in extra_data.assumptions.
REF_FORWARD_FLOPS: Final = "FLOPs = 2 x MACs (one multiply-accumulate is 2 operations; docs/estimation.md)"
REF_TRAINING_FACTOR: Final = (
    "training step = forward + backward (~2 x forward) = 3 x forward FLOPs per sample; the 6*N*D rule "
    "of Kaplan et al. 2020 (arXiv:2001.08361), docs/estimation.md; optimizer and evaluation passes "
    "not counted"
)
REF_SAMPLES_DEFAULT: Final = (
    "assumption: 50,000 = size of the CIFAR-10 training split (Krizhevsky 2009), a typical small "
    "supervised data set; set extra_data.training_samples or UserInput.maximum_samples"
)
REF_EPOCHS_DEFAULT: Final = "one pass over the data (default); set extra_data.epochs"
REF_MFU_DEFAULT: Final = (
    "typical published model FLOPs utilisation: GPT-3 21.3 %, MT-NLG 30.2 %, Gopher 32.5 %, PaLM 46.2 % "
    "(Chowdhery et al. 2022, arXiv:2204.02311, table 3); up to 0.5 for large-scale training "
    "(docs/estimation.md)"
)
REF_PRECISION_DEFAULT: Final = (
    "mixed-precision training (Micikevicius et al. 2018, arXiv:1710.03740): bf16 if the device has it, "
    "else fp16, else fp32; dense peak from the hardware catalogue"
)
REF_DEVICES_DEFAULT: Final = "one device; set extra_data.num_devices"
REF_TRANSFORMER_FLOPS: Final = (
    "6 FLOPs per parameter and token (2 forward + 4 backward; Kaplan et al. 2020, arXiv:2001.08361); "
    "a mixture of experts counts its active parameters"
)
REF_VOLTA_MFU: Final = (
    "V100: Megatron-LM 8.3B sustained 15.1 PFLOP/s on 512 V100 = 29.5 TFLOP/s per GPU, 24 % of the "
    "125 TFLOP/s fp16 peak, from 39 TFLOP/s (30 %) on one GPU (Shoeybi et al. 2019, arXiv:1909.08053, "
    "section 5.1): 0.24, range 0.2-0.3"
)
REF_RESTART_OVERHEAD: Final = (
    "interruptions and restarts: Meta reports 466 job interruptions in a 54-day snapshot of a 16k-GPU "
    "run and more than 90 % effective training time (Llama 3 paper, arXiv:2407.21783, section 3.3.4): "
    "up to +10 % time, high end of the range only"
)
REF_SEQ2SEQ_FLOPS: Final = (
    "encoder-decoder: 6 FLOPs per weight and token through it; input tokens pass the encoder and the "
    "cross-attention keys/values, target tokens the rest of the decoder and the output head "
    "(sustainml.estimate.transformer.seq2seq_training_flops)"
)
REF_SEQUENCE_DEFAULT: Final = (
    "training sequence length = the architecture's context, at most 4,096: long-context models are "
    "pre-trained mostly at 4,096 tokens and extended at the end (Qwen2.5 technical report, "
    "arXiv:2412.15115, section 3); set extra_data.sequence_length"
)
REF_TARGET_TOKENS: Final = (
    "assumption: as many target (decoder) tokens as input tokens, as in translation; span-corruption "
    "pre-training has fewer (T5: about 0.22 per input token); set extra_data.target_tokens"
)
REF_POWER_RANGE: Final = (
    "a rated or stated power is an upper bound: Google's per-chip measurements put TPU v3 and v4 at 47 % "
    "(minimum) and 84-89 % (mean) of their measured maximum (123/220/262 W and 90/170/192 W, Cloud TPU "
    "docs): range 0.6-1.0 x the figure"
)
REF_UTILISATION_DEFAULT: Final = (
    "training saturates the device: usage factor 1.0 as Green Algorithms' default (Lannelongue et al. "
    "2021) and TDP as the ML CO2 Impact calculator (Lacoste et al. 2019); docs/estimation.md"
)
REF_POWER_MODEL: Final = (
    "P = idle_w + utilisation x (tdp_w - idle_w) (Cloud Carbon Footprint form, docs/estimation.md; "
    "sustainml.estimate.power)"
)
REF_PUE_DEFAULT: Final = (
    "PUE 1.56 for data-centre devices (cloud, server-cpu, pim; Uptime Institute 2024 global average via "
    "Green Algorithms), 1.0 on-device (edge, mobile, embedded, fpga, local); docs/estimation.md"
)
