"""Names the requirement extractor recognises: compute devices and places.

Devices: the accelerators, boards, phones and CPUs people name when they say where a model trains or
runs ("8 A100s", "a Jetson Orin", "an STM32"). Each family is a pattern plus a function giving its
usual spelling (vendor prefixes, memory variants and plurals dropped: "NVIDIA A100 80GB" -> "A100"),
and a class: ``datacentre`` (server GPUs and accelerators), ``workstation`` (desktop GPUs),
``edge`` (Jetson, Raspberry Pi, Coral), ``embedded`` (microcontrollers), ``mobile`` (phone SoCs and
phones) or ``cpu``. The names follow the vendors' product pages (NVIDIA data-centre and Jetson
product lines, Google Cloud TPU versions, Raspberry Pi models, AMD Instinct and EPYC, Intel Xeon,
Apple M-series); HW_CONSTRAINTS resolves them against the hardware catalogue.

Places: the countries and continents of the region catalogue (``sustainml/catalogue/data/
regions.json``, with its aliases), a short list of cities and US states that host cloud data
centres, and the region identifiers of the three large clouds (AWS ``us-east-1``, Google Cloud
``europe-west4``, Azure ``westeurope``), whose naming schemes are documented by each provider.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Final

_I = re.IGNORECASE

#: Device classes that belong in a data centre (an edge deployment on one is a contradiction).
DATACENTRE: Final = "datacentre"


@dataclass(frozen=True)
class Device:
    name: str  # usual spelling, e.g. "A100", "Jetson Orin", "laptop CPU"
    cls: str  # datacentre | workstation | edge | embedded | mobile | cpu


_VENDOR = (
    r"(?:(?:NVIDIA|Nvidia|nvidia|AMD|Google|Intel|Apple|Qualcomm|Tesla|Raspberry\s+Pi\s+Foundation)\s+)?"
)
_GPU_SUFFIX = r"(?:[\s-]?(?:\d{2,3}\s?GB|SXM\d?|PCIe|NVL))*"


def _upper(m: re.Match[str]) -> str:
    return m.group("n").upper().replace(" ", "")


def _title(words: str) -> Callable[[re.Match[str]], str]:
    return lambda m: words


def _jetson(m: re.Match[str]) -> str:
    rest = " ".join(m.group("rest").split()).casefold()
    spelled = {"agx orin": "AGX Orin", "orin nano": "Orin Nano", "orin nx": "Orin NX", "orin": "Orin",
               "nano": "Nano", "xavier nx": "Xavier NX", "agx xavier": "AGX Xavier", "xavier": "Xavier",
               "tx2": "TX2"}  # fmt: skip
    return f"Jetson {spelled.get(rest, rest.title())}".strip()


def _pi(m: re.Match[str]) -> str:
    return f"Raspberry Pi {m.group('v')}" if m.group("v") else "Raspberry Pi"


def _rtx(m: re.Match[str]) -> str:
    ti = " Ti" if m.group("ti") else ""
    return f"{m.group('kind').upper()} {m.group('n').upper()}{ti}"


def _tpu(m: re.Match[str]) -> str:
    return f"TPU v{m.group('v').lower()}"


def _iphone(m: re.Match[str]) -> str:
    return " ".join(f"iPhone {m.group('rest') or ''}".split())


def _apple_m(m: re.Match[str]) -> str:
    return " ".join(m.group("m").split())


def _word(group: str, fmt: Callable[[str], str] = str) -> Callable[[re.Match[str]], str]:
    return lambda m: fmt(" ".join(m.group(group).split()))


#: (pattern, usual spelling, class); longer names first where one contains another.
_DEVICES: Final[tuple[tuple[str, Callable[[re.Match[str]], str], str], ...]] = (
    (r"DGX[\s-]?(?P<n>A100|H100|H200|B200)", lambda m: f"DGX {m.group('n').upper()}", DATACENTRE),
    (
        _VENDOR + r"(?:Instinct\s+)?(?P<n>MI300X|MI300A|MI250X?|MI210|MI325X)\b",
        _upper,
        DATACENTRE,
    ),
    (_VENDOR + r"(?P<n>Gaudi\s?[23])\b", lambda m: m.group("n").replace(" ", "").title(), DATACENTRE),
    (_VENDOR + r"(?:Cloud\s+)?TPU[\s-]?v(?P<v>[2-6][ep]?)\b", _tpu, DATACENTRE),
    (
        _VENDOR + r"(?:RTX\s+)?(?P<n>A6000|A5000|A4000)\b",
        lambda m: f"RTX {m.group('n').upper()}",
        "workstation",
    ),
    (
        _VENDOR
        + r"(?:Tesla\s+)?\b(?P<n>A100|A800|A30|A40|A10G?|A16|H100|H200|H800|H20|B100|B200|GH200|GB200|"
        r"L40S?|L4|T4|V100|P100|P40|K80)"
        r"(?:s\b|\b)" + _GPU_SUFFIX,
        _upper,
        DATACENTRE,
    ),
    (
        _VENDOR
        + r"(?:GeForce\s+)?(?P<kind>RTX|GTX)[\s-]?(?P<n>\d{4}|\d{3,4}\s?super)(?P<ti>[\s-]?Ti)?(?:s\b|\b)",
        _rtx,
        "workstation",
    ),
    (_VENDOR + r"Jetson(?P<rest>(?:[\s-]+(?:AGX|Orin|Nano|NX|Xavier|TX2))*)\b", _jetson, "edge"),
    (r"Raspberry[\s-]?Pi(?:[\s-]?(?P<v>[345]))?\b", _pi, "edge"),
    (
        _VENDOR + r"Coral(?:\s+(?:Edge\s+TPU|Dev\s+Board|USB\s+Accelerator))?|\bEdge\s+TPU\b",
        lambda m: "Coral Edge TPU",
        "edge",
    ),
    (r"(?P<n>STM32\w*|ESP32\w*|nRF52\w*)", lambda m: m.group("n").upper(), "embedded"),
    (
        r"Arduino(?P<rest>(?:\s+(?:Nano\s+33\s+BLE(?:\s+Sense)?|Nano\s+33\s+IoT|Uno|Nano|Mega|Portenta\s+H7)))?",
        _word("rest", lambda r: f"Arduino {r}".strip()),
        "embedded",
    ),
    (r"Cortex[\s-]?M(?P<v>\d{1,2})\b", lambda m: f"Cortex-M{m.group('v')}", "embedded"),
    (r"iPhone(?P<rest>\s+\d{1,2}(?:\s+Pro(?:\s+Max)?|\s+Plus|\s+mini)?)?", _iphone, "mobile"),
    (r"(?:Google\s+)?Pixel\s+(?P<v>\d{1,2}(?:\s+Pro)?)", lambda m: f"Pixel {m.group('v')}", "mobile"),
    (
        r"(?:Qualcomm\s+)?Snapdragon\s+(?P<v>8\s+Gen\s+\d|\d{3})",
        _word("v", lambda v: f"Snapdragon {v}"),
        "mobile",
    ),
    (r"(?:Apple\s+)?A17\s+Pro\b", lambda m: "A17 Pro", "mobile"),
    (
        r"(?:Apple\s+|MacBook(?:\s+(?:Pro|Air))?\s+|Mac\s+(?:mini|Studio)\s+)(?P<m>M[1-4](?:\s+(?:Pro|Max|Ultra))?)\b|"
        r"\b(?P<m2>M[1-4](?:\s+(?:Pro|Max|Ultra))?)\s+(?:MacBook|Mac|chip)",
        lambda m: " ".join((m.group("m") or m.group("m2")).split()),
        "cpu",
    ),
    (r"(?:AMD\s+)?EPYC\s+(?P<v>\d{4}\w?)", lambda m: f"EPYC {m.group('v')}", "cpu"),
    (
        r"(?:Intel\s+)?Xeon(?:\s+(?P<tier>Platinum|Gold|Silver|Bronze|E|W))?(?:\s+(?P<v>\d{4}\w*\+?))?",
        lambda m: " ".join(p for p in ("Xeon", m.group("tier"), m.group("v")) if p),
        "cpu",
    ),
    (r"(?:AWS\s+)?Graviton\s?(?P<v>[234])\b", lambda m: f"Graviton{m.group('v')}", "cpu"),
    (r"(?:Intel\s+)?Core\s+(?P<v>i[3579])\b", lambda m: f"Core {m.group('v')}", "cpu"),
    (
        r"(?:laptop|notebook)s?(?:'s|'|\u2019s|\u2019)?\s+CPUs?\b",
        lambda m: "laptop CPU",
        "cpu",
    ),
)

#: One pattern per family, names matched as whole words (case-sensitive where a code could be a word).
DEVICE_PATTERNS: Final[tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str], str], ...]] = tuple(
    (re.compile(rf"(?<![\w-])(?:{pattern})(?![\w-])", _I), spell, cls) for pattern, spell, cls in _DEVICES
)

#: Lower-case substrings one of which a text must contain for any device pattern to match (speed).
DEVICE_TRIGGERS: Final = (
    "a1", "a2", "a3", "a4", "a5", "a6", "a8", "h1", "h2", "h8", "b1", "b2", "gh2", "gb2", "v100", "p100",
    "k80", "t4", "l4", "mi2", "mi3", "gaudi", "tpu", "rtx", "gtx", "jetson", "raspberry", "coral", "stm32",
    "esp32", "nrf52", "arduino", "cortex", "iphone", "pixel", "snapdragon", "a17", "m1", "m2", "m3", "m4",
    "epyc", "xeon", "graviton", "core i", "laptop", "notebook", "dgx",
)  # fmt: skip


# ------------------------------------------------------------------------------------------------
# places
# ------------------------------------------------------------------------------------------------

#: Country names that are also common words or places elsewhere: never read as a region.
_AMBIGUOUS_PLACES: Final = frozenset(
    {"georgia", "jersey", "chad", "guinea", "niger", "turkey", "jordan", "china"}
)

#: Cities and US states that host cloud data centres; returned as written (title case).
CITIES: Final = (
    "Frankfurt", "Paris", "Amsterdam", "London", "Dublin", "Stockholm", "Helsinki", "Oslo", "Madrid",
    "Barcelona", "Milan", "Zurich", "Warsaw", "Berlin", "Munich", "Vienna", "Brussels", "Lisbon",
    "Copenhagen", "Marseille", "Hamina", "Eemshaven", "New York", "San Francisco", "Seattle", "Chicago",
    "Dallas", "Austin", "Boston", "Los Angeles", "Atlanta", "Toronto", "Montreal", "Vancouver",
    "Sao Paulo", "São Paulo", "Mumbai", "Bangalore", "Bengaluru", "Hyderabad", "Chennai", "Delhi", "Tokyo",
    "Osaka", "Seoul", "Sydney", "Melbourne", "Hong Kong", "Beijing", "Shanghai", "Shenzhen", "Johannesburg",
    "Cape Town", "Tel Aviv", "Dubai", "Jakarta", "Taipei", "Virginia", "Ohio", "Oregon", "Iowa", "Texas",
    "California", "Arizona", "Nevada", "Utah", "Washington State",
)  # fmt: skip

#: Short forms not among the catalogue's aliases, to the catalogue's name.
_EXTRA_PLACES: Final = {
    "EU": "European Union (EU-27)",
    "the EU": "European Union (EU-27)",
    "US": "United States",
    "UK": "United Kingdom",
    "the US": "United States",
    "the UK": "United Kingdom",
    "the USA": "United States",
    "the United States": "United States",
    "the United Kingdom": "United Kingdom",
    "the Netherlands": "Netherlands",
    "Holland": "Netherlands",
}


@cache
def places() -> dict[str, str]:
    """Place name as written (folded) -> the region value: the catalogue's name for countries and
    continents, the city as listed for cities."""
    from sustainml.catalogue import regions

    out: dict[str, str] = {}
    for entry in regions():
        if entry.kind not in ("country", "continent"):
            continue
        for name in (entry.name, *entry.aliases):
            # three-letter codes (DEU, AND) and two-letter codes read as words: left out
            if len(name) <= 3 and name not in ("USA", "UAE"):
                continue
            if name.casefold() in _AMBIGUOUS_PLACES:
                continue
            out.setdefault(name.casefold(), entry.name)
    for name, value in _EXTRA_PLACES.items():
        out[name.casefold()] = value
    for city in CITIES:
        out.setdefault(city.casefold(), city)
    return out


@cache
def place_pattern() -> re.Pattern[str]:
    """Any known place name (longest first), ``(?P<place>...)``, matched without regard to case; the
    caller keeps only matches written with a capital letter (places are proper nouns)."""
    names = sorted(places(), key=len, reverse=True)
    return re.compile(rf"(?<![\w.-])(?P<place>{'|'.join(re.escape(n) for n in names)})(?![\w-])", _I)


#: Cloud region identifiers: AWS (us-east-1), Google Cloud (europe-west4), Azure (westeurope, eastus2).
CLOUD_REGION: Final = re.compile(
    r"(?<![\w-])(?P<cloud>"
    r"(?:us|eu|ap|ca|sa|me|af|il|mx)-(?:gov-)?(?:east|west|north|south|central|northeast|northwest|southeast|"
    r"southwest)-\d"
    r"|(?:us|europe|asia|australia|northamerica|southamerica|me|africa)-(?:central|east|west|north|south|"
    r"northeast|southeast|southwest|northwest)\d{1,2}"
    r"|(?:east|west|central|north|south|southcentral|northcentral|westcentral)(?:us|europe)\d?"
    r"|(?:uk|france|germany|sweden|norway|switzerland|japan|korea|australia|canada|brazil|uae|southafrica|"
    r"india|italy|poland|spain|qatar|israel)(?:south|north|east|west|central|westcentral|southeast)\d?"
    r"|(?:south|east)eastasia|southeastasia|eastasia|centralindia"
    r")(?![\w-])",
)


#: Words Azure's region identifiers are made of ("germanywestcentral" = Germany West Central).
_AZURE_WORDS: Final = (
    "west", "east", "north", "south", "central", "europe", "us", "uk", "france", "germany", "sweden",
    "norway", "switzerland", "poland", "italy", "spain", "canada", "brazil", "japan", "korea", "asia",
    "australia", "india", "africa", "uae", "qatar", "israel", "mexico",
)  # fmt: skip


def _azure_words(identifier: str) -> list[str] | None:
    """``southafricanorth`` -> ``["south", "africa", "north"]`` (a trailing digit kept as a word);
    None when the identifier is not made of ``_AZURE_WORDS``."""
    words: list[str] = []
    rest = identifier
    while rest:
        if rest.isdigit():
            return [*words, rest]
        word = next((w for w in sorted(_AZURE_WORDS, key=len, reverse=True) if rest.startswith(w)), None)
        if word is None:
            return None
        words.append(word)
        rest = rest[len(word) :]
    return words


@cache
def azure_display_region() -> re.Pattern[str]:
    """Azure regions as its portal and documentation display them ("West Europe", "Germany West
    Central", "West US 2"), ``(?P<azure>...)``, built from the catalogue's Azure identifiers. The
    caller reads a match only next to the word Azure: "West Europe" alone is a part of a continent."""
    from sustainml.catalogue.schema import cloud_regions

    shown: list[str] = []
    for key, row in cloud_regions().items():
        if row.provider != "azure" or key != row.name.lower():
            continue
        words = _azure_words(key)
        if words:
            shown.append(r"\s+".join(words))
    shown.sort(key=len, reverse=True)
    return re.compile(rf"(?<![\w-])(?P<azure>{'|'.join(shown)})(?![\w-])", _I)


def normalise_place(raw: str) -> str:
    """The region value of a place as written."""
    return places().get(" ".join(raw.split()).casefold(), raw)


def device_class(name: str) -> str:
    """The class of a device name (as a user may give it explicitly), ``""`` when unknown."""
    for pattern, _spell, cls in DEVICE_PATTERNS:
        if pattern.fullmatch(name.strip()):
            return cls
    return ""
