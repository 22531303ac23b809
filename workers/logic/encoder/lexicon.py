"""Concept view of a description: words mapped to broad semantic classes, for generalisation.

A bag of words only knows the words its training corpus used. This lexicon maps general-English
words to a few classes ("a word for an image", "a word for the future", "a word for locating
things" ...) so that a description using an unseen word of a known class ("hydrophone", "orthophoto")
still lights up a feature the classifier has weights for. The classes describe what words mean, not
which goal they belong to; the classifier learns from the corpus how much each class (and each
ordered pair or triple of classes, e.g. ``TEXT INTO AUDIO`` versus ``AUDIO INTO TEXT``) counts for
each goal. A few direction words (``into``, ``from``, ``to``, ``as``, ``out``, arrows) are kept
as themselves because the order of input and output is what separates text-to-speech from speech
recognition and text-to-image from image captioning.
"""

from __future__ import annotations

import re
from typing import Final

# One line per class: the words (lower case, singular; plurals and -ing/-ed forms are found by
# stripping the suffix). A word belongs to the first class that lists it.
_CLASSES: Final[dict[str, str]] = {
    "IMAGE": (
        "image imagery photo photograph picture pic snapshot selfie x-ray xray radiograph mri ct "
        "mammogram microscope microscopy slide drone aerial satellite orthophoto webcam dermatoscope "
        "fundus tile scanned scan jpeg jpg png camera-trap screenshot camera ultrasound thermal infrared "
        "lidar dermoscopy dermoscopic histology histopathology retina retinal glyph diagram chart "
        "infographic landsat sentinel multispectral hyperspectral"
    ),
    "VIDEO": (
        "video clip footage film movie cine stream frame signer gesture cctv dashcam bodycam timelapse "
        "livestream surveillance egocentric"
    ),
    "AUDIO": (
        "audio sound voice speech spoken recording recorded microphone hydrophone mic podcast radio "
        "voicemail mp3 wav noise acoustic song music hear heard listen call "
        "phone headset sing singer vocal soundscape stethoscope birdsong cough snore utterance "
        "spectrogram melody buzz chirp"
    ),
    "SPEAK": (
        "speak aloud narration narrate narrator voice-over pronounce pronunciation vocalise vocalize dub "
        "audiobook"
    ),
    "READ": "read reading",
    "TEXT": (
        "text written document article email e-mail message review tweet post comment ticket letter "
        "report note sentence paragraph word transcript description script book e-book chapter manual "
        "contract page abstract headline title prompt essay complaint chat typing typed advert vacancy "
        "resume faq wiki handbook newsletter blog"
    ),
    "TABLE": (
        "table tabular spreadsheet csv column record attribute dataset database form profile demographics "
        "row crm ledger xlsx excel census applicant policyholder"
    ),
    "SERIES": (
        "hourly daily weekly monthly sensor signal telemetry series minute hour day week month "
        "season trend seasonal eeg ecg ekg electrocardiogram accelerometer gyroscope imu vibration "
        "seismic seismograph meter wearable smartwatch scada waveform intraday candlestick kpi ohlc "
        "quarterly yearly"
    ),
    "FUTURE": "tomorrow next upcoming coming future ahead forecast anticipate projection",
    "QUANTITY": (
        "price cost value amount much many duration weight age salary revenue yield strength consumption "
        "percentage euro kg kilogram quantity capacity volume"
    ),
    "UNUSUAL": (
        "unusual abnormal anomaly anomalies anomalous outlier deviate deviation strange weird odd "
        "irregular suspicious novelty unexpected drift ordinary usual"
    ),
    "LOCATE": ("where locate localise localize localization box bounding coordinate count rectangle"),
    "PIXEL": (
        "pixel mask outline contour delineate boundary border segment segmentation cut background "
        "per-pixel trace"
    ),
    "CREATE": (
        "generate create produce write draft compose design render draw paint illustrate illustration "
        "synthesise synthesize synthetic mock-up art drawing rendering artwork"
    ),
    "DETECT": "detect detection detector spot",
    "ASK": "question ask asking query answer",
    "SHORT": (
        "summary summarize summarise summarization summaries brief briefly shorten condense gist "
        "overview takeaways digest recap tl;dr boil compress"
    ),
    "SIMILAR": (
        "similar similarity duplicate near-duplicate same closest related paraphrase meaning "
        "semantic matching rank retrieve retrieval search cluster deduplicate"
    ),
    "LANGUAGE": (
        "english spanish french german italian portuguese dutch chinese japanese korean arabic russian "
        "hindi catalan basque greek polish swedish finnish turkish czech swahili vietnamese ukrainian "
        "norwegian latin multilingual cross-lingual bilingual"
    ),
    "TRANSLATE": "translate translation translated localise localize localisation",
    "CLASS": (
        "classify classification categorise categorize category categories label kind class grade "
        "sort which whether decide identify recognise recognize tag assign"
    ),
    "ENTITY": "name entity entities extract highlight redact anonymise anonymize placeholder mention date",
    "TRANSCRIBE": "transcribe transcription dictation dictate subtitle",
    "CAPTION": "caption captioning describe alt-text",
}

#: Direction words kept verbatim (upper-cased so they cannot collide with a class name).
_KEEP: Final[dict[str, str]] = {
    "into": "INTO",
    "to": "TO",
    "from": "FROM",
    "as": "AS",
    "out": "OUT",
    "->": "INTO",
    "→": "INTO",
}

#: Data nouns whose kind is set by the word before them: "EEG recordings", "sensor readings" and
#: "vibration signals" are series of measurements, not sound or text, so a word of these classes
#: right after (up to two words after) one of these instrument words is read as SERIES too (not
#: after time words: "hours of audio" stay audio).
_SERIES_SOURCES: Final = frozenset(
    [
        "eeg",
        "ecg",
        "ekg",
        "electrocardiogram",
        "accelerometer",
        "gyroscope",
        "imu",
        "vibration",
        "seismic",
        "seismograph",
        "meter",
        "wearable",
        "smartwatch",
        "scada",
        "sensor",
        "telemetry",
    ]
)
_RECLASSED_AFTER_SERIES: Final = frozenset({"AUDIO", "READ", "TEXT", "VIDEO", "TABLE"})
_RECLASS_WINDOW: Final = 2

_WORD_CLASS: Final[dict[str, str]] = {}
for _cls, _words in _CLASSES.items():
    for _w in _words.split():
        _WORD_CLASS.setdefault(_w, _cls)

_SUFFIXES: Final = ("s", "es", "ing", "ed", "d")
TOKEN_RE: Final = re.compile("[a-z0-9]+(?:[-;'][a-z0-9]+)*|->|→")


def word_class(word: str) -> str:
    """The class of a lower-case word (``""`` if the lexicon does not know it)."""
    found = _WORD_CLASS.get(word)
    if found:
        return found
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            found = _WORD_CLASS.get(word[: -len(suffix)])
            if found:
                return found
    return ""


def concept_tokens(text: str) -> list[tuple[str, str]]:
    """``(concept, source word)`` pairs of ``text`` in order; words of no class are left out."""
    out: list[tuple[str, str]] = []
    last_series = -_RECLASS_WINDOW - 1  # word index of the last instrument word
    for index, word in enumerate(TOKEN_RE.findall(text.casefold())):
        kept = _KEEP.get(word)
        if kept:
            out.append((kept, word))
            continue
        cls = word_class(word)
        if cls in _RECLASSED_AFTER_SERIES and index - last_series <= _RECLASS_WINDOW:
            cls = "SERIES"
        if word in _SERIES_SOURCES or word.removesuffix("s") in _SERIES_SOURCES:
            last_series = index
        if cls:
            out.append((cls, word))
    return out


def lexicon_spec() -> str:
    """The lexicon as stable text (part of the model cache key)."""
    return repr(
        (
            sorted(_CLASSES.items()),
            sorted(_KEEP.items()),
            _SUFFIXES,
            sorted(_SERIES_SOURCES),
            sorted(_RECLASSED_AFTER_SERIES),
            _RECLASS_WINDOW,
        )
    )


def concept_text(text: str) -> str:
    """The concept tokens of ``text`` joined by spaces (the input of the concept vectorizer)."""
    return " ".join(concept for concept, _ in concept_tokens(text))
