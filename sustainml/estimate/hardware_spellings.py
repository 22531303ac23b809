"""Spellings people write for hardware: the folded comparison key, the vendor and generic words
tried away, and the names that stand for several catalogue devices (with the variant chosen per
task, training or inference, and why)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal


def fold(text: str) -> str:
    """The comparison key of a spelling: case-folded letters and digits only."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


#: Words a user may put before a device name ("NVIDIA A100", "UPMEM PIM-AI 1chip"); folded.
VENDOR_PREFIXES: Final[tuple[str, ...]] = (
    "nvidia",
    "upmem",
    "raspberrypifoundation",
    "google",
    "intel",
    "amd",
    "arm",
    "qualcomm",
    "apple",
    "broadcom",
    "stmicroelectronics",
    "espressif",
)

#: Generic words a user may put after a device name ("T4 GPU", "Orin Nano module"); folded.
GENERIC_SUFFIXES: Final[tuple[str, ...]] = ("gpu", "board", "module", "devkit", "sbc", "soc", "mcu", "chip")


Task = Literal["training", "inference"]


@dataclass(frozen=True)
class Ambiguity:
    """A name several catalogue devices answer to, and the variant chosen for each task."""

    candidates: tuple[str, ...]  # canonical names, most common first
    training: str
    inference: str
    why: str


#: Folded names that stand for several devices. The choice per task, and why (the notes travel
#: with every answer): training clusters are built from SXM/NVLink parts (DGX/HGX systems, the
#: cloud training instances AWS p4d/p5, GCP a2/a3, Azure ND), and large-model training since 2021
#: mostly used the 80 GB A100 (Meta's RSC and the Llama model cards, BLOOM on Jean Zay); the
#: widest-rented A100 for inference is the 40 GB SXM4 of AWS p4d and GCP a2-highgpu.
AMBIGUOUS: Final[dict[str, Ambiguity]] = {}


def _ambiguous(
    keys: Sequence[str], candidates: Sequence[str], training: str, inference: str, why: str
) -> None:
    entry = Ambiguity(tuple(candidates), training, inference, why)
    for key in keys:
        AMBIGUOUS[fold(key)] = entry


_ambiguous(
    ("A100", "NVIDIA A100", "Tesla A100", "A100 GPU"),
    ("A100-80GB", "A100-SXM4-40GB", "A100", "A100-80GB-PCIe"),
    "A100-80GB",
    "A100-SXM4-40GB",
    "'A100' is four parts (SXM4 40/80 GB at 400 W, PCIe 40 GB at 250 W, PCIe 80 GB at 300 W); training "
    "clusters use the SXM4 80 GB part, rented inference mostly the SXM4 40 GB (AWS p4d, GCP a2-highgpu)",
)
_ambiguous(
    ("A100 40GB", "A100-40GB", "A100 40G"),
    ("A100-SXM4-40GB", "A100"),
    "A100-SXM4-40GB",
    "A100-SXM4-40GB",
    "'A100 40GB' is the SXM4 part (400 W, AWS p4d, GCP a2-highgpu) or the PCIe card (250 W); the SXM4 "
    "part is the common one",
)
_ambiguous(
    ("A100 80GB", "A100-80G", "A100 80G"),
    ("A100-80GB", "A100-80GB-PCIe"),
    "A100-80GB",
    "A100-80GB",
    "'A100 80GB' is the SXM4 part (400 W) or the PCIe card (300 W); the SXM4 part is the common one",
)
_ambiguous(
    ("H100", "NVIDIA H100", "H100 80GB", "H100-80GB", "H100 GPU"),
    ("H100-SXM", "H100", "H100-NVL"),
    "H100-SXM",
    "H100-SXM",
    "'H100' is the SXM5 part (700 W; DGX/HGX H100, AWS p5, GCP a3, Azure ND H100 v5), the PCIe card "
    "(350 W; the catalogue's 'H100', upstream's name) or the NVL card (400 W); SXM5 is the common one",
)
_ambiguous(
    ("V100", "Tesla V100", "NVIDIA V100", "NVIDIA Tesla V100"),
    ("V100-SXM2", "V100"),
    "V100-SXM2",
    "V100",
    "'V100' is the SXM2 part (300 W; DGX-1, AWS p3, used for training) or the PCIe card (250 W; "
    "upstream's 'V100')",
)
_ambiguous(
    ("Jetson Orin", "NVIDIA Jetson Orin", "Orin", "Jetson"),
    ("Jetson-AGX-Orin", "Jetson-Orin-NX", "Jetson-Orin-Nano"),
    "Jetson-AGX-Orin",
    "Jetson-AGX-Orin",
    "'Jetson Orin' is a family (AGX Orin 15-60 W, Orin NX 10-25 W, Orin Nano 7-15 W); the AGX Orin "
    "developer kit is the reference board (MLPerf Inference edge results)",
)
_ambiguous(
    ("laptop CPU", "laptop", "laptops", "notebook CPU", "laptop CPUs", "our laptops"),
    ("Core-Ultra-7-155H", "Ryzen-7-7840U", "Apple-M3"),
    "Core-Ultra-7-155H",
    "Core-Ultra-7-155H",
    "'laptop CPU' names no part; an Intel Core Ultra 7 155H (28 W, 2023-2024 business laptops) stands "
    "for it: name the CPU (e.g. 'Apple M3', 'Ryzen 7 7840U') for its own figures",
)
_ambiguous(
    ("desktop CPU", "desktop", "workstation CPU", "PC"),
    ("Ryzen-9-7950X", "Core-Ultra-7-155H"),
    "Ryzen-9-7950X",
    "Ryzen-9-7950X",
    "'desktop CPU' names no part; an AMD Ryzen 9 7950X (16 cores, 170 W) stands for it: name the CPU "
    "for its own figures",
)
_ambiguous(
    ("MacBook", "Mac", "Apple silicon", "Apple M-series"),
    ("Apple-M3", "Apple-M1", "Apple-M2", "Apple-M4"),
    "Apple-M3",
    "Apple-M3",
    "'MacBook' names no chip; the Apple M3 stands for it: name the chip (M1-M4) for its own figures",
)
_ambiguous(
    ("iPhone", "iPhones", "Apple iPhone", "iOS", "iOS device"),
    ("A17Pro",),
    "A17Pro",
    "A17Pro",
    "'iPhone' names no model; the catalogue's iPhone chip, the A17 Pro (iPhone 15 Pro, 2023), stands for "
    "it: an Android part would not run an iOS app",
)
_ambiguous(
    ("Android phone", "Android phones", "Android", "Android device"),
    ("Snapdragon8gen3", "Dimensity9300"),
    "Snapdragon8gen3",
    "Snapdragon8gen3",
    "'Android phone' names no chip; the Snapdragon 8 Gen 3 (most 2024 flagship Android phones) stands for "
    "it: name the chip (e.g. 'Dimensity 9300') for its own figures",
)
_ambiguous(
    ("TPU", "Cloud TPU", "Google TPU"),
    ("TPU-v4", "TPU-v5e", "TPU-v5p", "TPU-v3", "TPU-v2"),
    "TPU-v4",
    "TPU-v5e",
    "'TPU' names no generation; v4 stands for training and v5e (Google's inference-oriented chip) for "
    "inference: name the generation (v2, v3, v4, v5e, v5p) for its own figures",
)


_ambiguous(
    ("Xeon", "Intel Xeon", "Xeon CPU"),
    ("Xeon-Platinum-8480+", "Xeon-Gold-6248"),
    "Xeon-Platinum-8480+",
    "Xeon-Platinum-8480+",
    "'Xeon' names a family; the Xeon Platinum 8480+ (Sapphire Rapids, 2023) stands for it: name the model "
    "for its own figures",
)
_ambiguous(
    ("EPYC", "AMD EPYC"),
    ("EPYC-9654", "EPYC-7763"),
    "EPYC-9654",
    "EPYC-9654",
    "'EPYC' names a family; the EPYC 9654 (Genoa, 2022) stands for it: name the model for its own figures",
)
_ambiguous(
    ("Core i7", "Core i5", "Core i9", "Intel Core i7", "Intel Core i5", "Intel Core", "Core Ultra"),
    ("Core-Ultra-7-155H", "Ryzen-7-7840U"),
    "Core-Ultra-7-155H",
    "Core-Ultra-7-155H",
    "an Intel Core family name, no model: the Core Ultra 7 155H (a 2023-2024 laptop part) stands for it; "
    "name the model for its own figures",
)
_ambiguous(
    ("Raspberry Pi", "raspberrypi", "RPi"),
    ("Raspberry-Pi-5", "Raspberry-Pi-4"),
    "Raspberry-Pi-5",
    "Raspberry-Pi-5",
    "'Raspberry Pi' names no model; the current Raspberry Pi 5 stands for it: write 'Raspberry Pi 4' for "
    "the older board",
)
