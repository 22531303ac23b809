"""Public data sets people name when they say what they train on ("a ResNet-50 on ImageNet",
"fine-tune BERT on SQuAD"), with the size of their training split: a run over a named data set
has that many samples per epoch. The figure is derived (``STRENGTH_DERIVED``): a count written in
the text ("on 200k images") wins over it.

Each size is the training split as its authors or its reference loader publish it (the source is
in the table); docs/estimation.md lists them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Final

from sustainml.workers.logic.requirements.findings import STRENGTH_DERIVED, Finding
from sustainml.workers.logic.requirements.text import _I, _TRAIN_WORD, _Text


@dataclass(frozen=True)
class PublicDataset:
    name: str
    train_samples: int
    unit: str  # what one sample is
    source: str
    spellings: tuple[str, ...]  # as people write it (matched without regard to case)


DATASETS: Final[tuple[PublicDataset, ...]] = (
    PublicDataset(
        "ImageNet-1k", 1_281_167, "images",
        "Russakovsky et al. 2015, 'ImageNet Large Scale Visual Recognition Challenge', IJCV, table 2 "
        "(ILSVRC2012 classification: 1,281,167 training images)",
        ("ImageNet", "ImageNet-1k", "ImageNet 1k", "ImageNet1k", "ILSVRC2012", "ILSVRC-2012", "ILSVRC"),
    ),
    PublicDataset(
        "CIFAR-10", 50_000, "images",
        "Krizhevsky 2009, 'Learning Multiple Layers of Features from Tiny Images' (50,000 training "
        "images)",
        ("CIFAR-10", "CIFAR10"),
    ),
    PublicDataset(
        "CIFAR-100", 50_000, "images", "Krizhevsky 2009 (50,000 training images)", ("CIFAR-100", "CIFAR100"),
    ),
    PublicDataset(
        "MNIST", 60_000, "images", "LeCun et al., MNIST database (60,000 training images)", ("MNIST",),
    ),
    PublicDataset(
        "Fashion-MNIST", 60_000, "images",
        "Xiao et al. 2017, arXiv:1708.07747 (60,000 training images)",
        ("Fashion-MNIST", "FashionMNIST", "Fashion MNIST"),
    ),
    PublicDataset(
        "COCO 2017", 118_287, "images",
        "Lin et al. 2014, COCO; the 2017 split: 118K train images (cocodataset.org, 'Download': "
        "train2017 holds 118,287 images)",
        ("COCO", "MS COCO", "MS-COCO", "COCO 2017", "COCO2017"),
    ),
    PublicDataset(
        "Cityscapes", 2_975, "images",
        "Cordts et al. 2016, 'The Cityscapes Dataset' (2,975 finely annotated training images)",
        ("Cityscapes",),
    ),
    PublicDataset(
        "ADE20K", 20_210, "images",
        "Zhou et al. 2017, 'Scene Parsing through ADE20K Dataset' (20,210 training images)",
        ("ADE20K", "ADE20k", "ADE-20K"),
    ),
    PublicDataset(
        "SQuAD v1.1", 87_599, "questions",
        "Rajpurkar et al. 2016, arXiv:1606.05250; Hugging Face 'squad' train split: 87,599",
        ("SQuAD", "SQuAD v1.1", "SQuAD 1.1", "SQuAD1.1"),
    ),
    PublicDataset(
        "SQuAD v2.0", 130_319, "questions",
        "Rajpurkar et al. 2018, arXiv:1806.03822; Hugging Face 'squad_v2' train split: 130,319",
        ("SQuAD v2", "SQuAD 2.0", "SQuAD2.0", "SQuAD v2.0", "SQuAD2"),
    ),
    PublicDataset(
        "SST-2", 67_349, "sentences",
        "Socher et al. 2013; GLUE SST-2 train split: 67,349 (Wang et al. 2018, GLUE, table 1)",
        ("SST-2", "SST2"),
    ),
    PublicDataset(
        "MNLI", 392_702, "sentence pairs",
        "Williams et al. 2018; GLUE MNLI train split: 393k (Wang et al. 2018, GLUE, table 1); Hugging Face "
        "'glue/mnli' train: 392,702",
        ("MNLI", "MultiNLI"),
    ),
    PublicDataset(
        "IMDB", 25_000, "reviews",
        "Maas et al. 2011, 'Learning Word Vectors for Sentiment Analysis' (25,000 training reviews)",
        ("IMDB", "IMDb reviews", "IMDB reviews"),
    ),
    PublicDataset(
        "AG News", 120_000, "articles",
        "Zhang et al. 2015, arXiv:1509.01626, table 3 (AG's News: 120,000 training samples)",
        ("AG News", "AG's News", "AGNews"),
    ),
    PublicDataset(
        "CNN/DailyMail", 287_113, "articles",
        "See et al. 2017, arXiv:1704.04368, section 4 (287,226 training pairs; the Hugging Face "
        "'cnn_dailymail' 3.0.0 train split: 287,113)",
        ("CNN/DailyMail", "CNN/DM", "CNN-DailyMail", "CNN Daily Mail", "CNN DailyMail"),
    ),
    PublicDataset(
        "XSum", 204_045, "articles",
        "Narayan et al. 2018, arXiv:1808.08745, table 1 (204,045 training documents)",
        ("XSum", "X-Sum"),
    ),
    PublicDataset(
        "LibriSpeech 960 h", 281_241, "utterances",
        "Panayotov et al. 2015, 'LibriSpeech', table 1: train-clean-100, train-clean-360 and "
        "train-other-500 (28,539 + 104,014 + 148,688 utterances)",
        ("LibriSpeech",),
    ),
    PublicDataset(
        "WMT14 English-German", 4_508_785, "sentence pairs",
        "WMT 2014 news translation task, English-German training data (Vaswani et al. 2017: 'about 4.5 "
        "million sentence pairs'); Hugging Face 'wmt14' de-en train split: 4,508,785",
        ("WMT14 En-De", "WMT14 English-German", "WMT 2014 English-German", "WMT14 EN-DE", "WMT14 de-en"),
    ),
)  # fmt: skip

#: Words that say a data set is trained on (besides the training verbs): "on ImageNet" after a
#: model, "90 epochs of ImageNet".
_ON_DATA: Final = re.compile(r"\b(?:on|of|with|using|from)\s+(?:the\s+)?$", _I)


@cache
def _by_spelling() -> dict[str, PublicDataset]:
    return {s.casefold(): d for d in DATASETS for s in (d.name, *d.spellings)}


@cache
def _pattern() -> re.Pattern[str]:
    names = sorted(_by_spelling(), key=len, reverse=True)
    return re.compile(rf"(?<![\w/-])(?P<name>{'|'.join(re.escape(n) for n in names)})(?![\w/-])", _I)


def named_dataset(t: _Text) -> Iterator[Finding]:
    """``training_samples`` of a public data set the text trains on (its name written with its
    capitals, in a sentence about training, after 'on', 'of', 'with' or 'using')."""
    if _TRAIN_WORD.search(t.text) is None:
        return  # most descriptions: the long alternation of names need not run
    for m in _pattern().finditer(t.text):
        written = m.group("name")
        if written.islower():
            continue  # data set names are proper nouns ("coco" is not COCO)
        s0, s1 = t.sentence(m.start(), m.end())
        if _TRAIN_WORD.search(t.text, s0, s1) is None:
            continue
        if _ON_DATA.search(t.text[max(s0, m.start() - 20) : m.start()]) is None:
            continue
        dataset = _by_spelling()[written.casefold()]
        yield Finding("training_samples", dataset.train_samples, t.span(m.start(), m.end()), STRENGTH_DERIVED)
