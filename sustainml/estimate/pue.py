"""Power usage effectiveness (PUE): facility energy / IT energy, by setting, each with its source.

A training or inference figure at the device is multiplied by the PUE of the site it runs in.
Settings (``extra_data.pue_setting``; an explicit ``extra_data.pue`` wins over all of them):

- ``hyperscale``: 1.10, range 1.06-1.20. Google reports a fleet-wide trailing-twelve-month PUE of
  1.10 for its data centres in 2023, its best campuses at 1.06-1.07 (Google Data Centers,
  "Efficiency", https://www.google.com/about/datacenters/efficiency/); 1.20 is the AWS figure of
  Green Algorithms' provider table (Lannelongue et al. 2021, doi:10.1002/advs.202100707).
- ``aws`` 1.20, ``gcp`` 1.12, ``azure`` 1.12: Green Algorithms' per-provider values (same paper,
  data table of the calculator), used when the location is a cloud region of that provider;
  range as ``hyperscale``.
- ``typical`` (a data centre of unknown kind, the default for data-centre devices): 1.56, range
  1.40-1.80: the average annual PUE of the Uptime Institute Global Data Center Survey 2024, the
  default Green Algorithms uses for an unknown facility; the range is the spread the survey
  reports between newer and older facilities (an assumption of ours around the average).
- ``on-premises`` (a company server room): 2.0, range 1.6-2.5: small server rooms and closets
  modelled at about 2.0 in the LBNL United States Data Center Energy Usage Report (Shehabi et al.
  2016, LBNL-1005775); the range is an assumption.
- ``on-device`` (edge boards, phones, laptops, this machine): 1.0, no facility overhead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Pue:
    setting: str
    value: float
    low: float
    high: float
    source: str


_HYPERSCALE_SRC: Final = (
    "Google data centres: fleet-wide trailing-twelve-month PUE 1.10 in 2023, best campuses 1.06 "
    "(https://www.google.com/about/datacenters/efficiency/); high end 1.20 = AWS in Green Algorithms' "
    "provider table (Lannelongue et al. 2021)"
)
_PROVIDER_SRC: Final = "Green Algorithms provider table (Lannelongue et al. 2021, doi:10.1002/advs.202100707)"

SETTINGS: Final[dict[str, Pue]] = {
    "hyperscale": Pue("hyperscale", 1.10, 1.06, 1.20, _HYPERSCALE_SRC),
    "aws": Pue("aws", 1.20, 1.06, 1.20, f"AWS: {_PROVIDER_SRC}"),
    "gcp": Pue("gcp", 1.12, 1.06, 1.20, f"Google Cloud: {_PROVIDER_SRC}"),
    "azure": Pue("azure", 1.12, 1.06, 1.20, f"Microsoft Azure: {_PROVIDER_SRC}"),
    "typical": Pue(
        "typical",
        1.56,
        1.40,
        1.80,
        "Uptime Institute Global Data Center Survey 2024 average (the default of Green Algorithms for an "
        "unknown facility); range 1.40-1.80 around it (assumption)",
    ),
    "on-premises": Pue(
        "on-premises",
        2.0,
        1.6,
        2.5,
        "small server rooms at about 2.0 in the LBNL US Data Center Energy Usage Report "
        "(Shehabi et al. 2016, LBNL-1005775); range assumed",
    ),
    "on-device": Pue("on-device", 1.0, 1.0, 1.0, "no facility overhead on the user's own device"),
}

#: Other spellings of the settings, as people write them.
ALIASES: Final[dict[str, str]] = {
    "cloud": "hyperscale",
    "hyperscaler": "hyperscale",
    "google": "gcp",
    "googlecloud": "gcp",
    "amazon": "aws",
    "microsoft": "azure",
    "datacenter": "typical",
    "datacentre": "typical",
    "colocation": "typical",
    "unknown": "typical",
    "onprem": "on-premises",
    "onpremise": "on-premises",
    "onpremises": "on-premises",
    "serverroom": "on-premises",
    "ondevice": "on-device",
    "edge": "on-device",
    "local": "on-device",
    "laptop": "on-device",
}

#: Device classes that live in a data centre (the rest run on the user's own device).
DATACENTRE_CLASSES: Final[frozenset[str]] = frozenset({"cloud", "server-cpu", "pim"})


def setting(name: str) -> Pue:
    """The PUE of a setting name or alias; ``ValueError`` naming ``extra_data.pue_setting``."""
    key = "".join(ch for ch in name.casefold() if ch.isalnum())
    key = ALIASES.get(key, key)
    for known in SETTINGS:
        if key in (known, "".join(ch for ch in known if ch.isalnum())):
            return SETTINGS[known]
    raise ValueError(
        f"user_input extra_data.pue_setting must be one of {', '.join(SETTINGS)} "
        f"(or a number in extra_data.pue), got {name!r}"
    )


def default_for(device_class: str | None, provider: str | None = None) -> Pue:
    """The setting a device class implies: data-centre devices in a cloud region of a known provider
    -> that provider's, otherwise ``typical``; every other class -> ``on-device``."""
    if device_class is not None and device_class not in DATACENTRE_CLASSES:
        return SETTINGS["on-device"]
    if provider in SETTINGS:
        return SETTINGS[provider]
    return SETTINGS["typical"]


__all__ = ["ALIASES", "DATACENTRE_CLASSES", "SETTINGS", "Pue", "default_for", "setting"]
