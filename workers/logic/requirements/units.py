"""Numbers and units of the requirement extractor: parsing, conversion factors, defaults, formatting.

Conventions (documented in the configuration reply too):

- Numbers: ``1,000`` / ``10,000,000`` / ``40 000`` (comma or space, then groups of exactly three
  digits) are thousands separators;
  any other comma is a decimal comma (``0,5 s`` = 0.5 s, ``1,5 GB`` = 1.5 GB). Suffixes ``k``/``K``
  = 1e3, ``M`` = 1e6, ``B``/``bn`` = 1e9, ``T`` = 1e12, and the words thousand/million/billion/trillion.
- Sizes: binary multiples, as ``workers/logic/tables.py`` ``SIZE_UNIT_MB`` (1 GB = 1024 MB,
  1 KB = 1/1024 MB), because "fits in 2 GB" of device memory means 2048 MB.
- Periods: throughput is normalised per second; energy and carbon budgets per day (a month is 30
  days, a year 365 days, "per hour" x 24 assumes round-the-clock operation).
"""

from __future__ import annotations

import math
import re
from typing import Final

from sustainml.workers.logic.tables import REALTIME_LATENCY_MS, SIZE_UNIT_MB

#: "real-time" with no number (ms): the ~0.1 s "feels instantaneous" limit (Nielsen 1993), shared
#: with the rest of the shipped logic through tables.REALTIME_LATENCY_MS.
REALTIME_MS: Final = float(REALTIME_LATENCY_MS)
#: "interactive", "near real-time" with no number (ms): Nielsen's 1 s "flow of thought" limit.
INTERACTIVE_MS: Final = 1000.0
#: "sub-second" (ms).
SUB_SECOND_MS: Final = 1000.0

#: A number as written: thousands separators, decimal point or comma, leading-dot decimals.
NUMBER: Final = (
    r"(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d{1,3}(?:[ \u00a0\u202f]\d{3})+(?![\d.,])|\d+(?:[.,]\d+)?|\.\d+)"
)
#: Multiplier right after a number ("10k", "1.2M", "1.5B", "3 million"); "MB", "kg" are units.
MULTIPLIER: Final = r"(?:\s?(?:thousand|million|billion|trillion)\b|(?:k|K|M|B|bn|T)(?![A-Za-z]))"
#: Spelled-out small numbers (time and battery-life phrases only, always with a bound or context).
WORD_NUMBER: Final = (
    r"(?:half an?|a couple of|a few|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"fifteen|twenty|thirty|forty|fifty|sixty|a hundred|hundred)"
)

_MULTIPLIERS: Final[dict[str, float]] = {
    "k": 1e3,
    "thousand": 1e3,
    "m": 1e6,
    "million": 1e6,
    "b": 1e9,
    "bn": 1e9,
    "billion": 1e9,
    "t": 1e12,
    "trillion": 1e12,
}

_WORD_NUMBERS: Final[dict[str, float]] = {
    "half a": 0.5,
    "half an": 0.5,
    "a couple of": 2.0,
    "a few": 3.0,
    "a": 1.0,
    "an": 1.0,
    "one": 1.0,
    "two": 2.0,
    "three": 3.0,
    "four": 4.0,
    "five": 5.0,
    "six": 6.0,
    "seven": 7.0,
    "eight": 8.0,
    "nine": 9.0,
    "ten": 10.0,
    "eleven": 11.0,
    "twelve": 12.0,
    "fifteen": 15.0,
    "twenty": 20.0,
    "thirty": 30.0,
    "forty": 40.0,
    "fifty": 50.0,
    "sixty": 60.0,
    "a hundred": 100.0,
    "hundred": 100.0,
}

_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_SPACED_THOUSANDS = re.compile(r"^\d{1,3}(?:[ \u00a0\u202f]\d{3})+$")
_WITH_MULTIPLIER = re.compile(r"^(?P<num>[\d.,]+)\s?(?P<mult>thousand|million|billion|trillion|k|m|b|bn|t)?$")


def parse_number(text: str) -> float:
    """The value of a number as written (see the module conventions). Raises ``ValueError``."""
    raw = text.strip().casefold()
    if _SPACED_THOUSANDS.match(raw):
        raw = re.sub(r"\s", "", raw)
    raw = " ".join(raw.split())
    if raw in _WORD_NUMBERS:
        return _WORD_NUMBERS[raw]
    m = _WITH_MULTIPLIER.match(raw)
    if m is None:
        raise ValueError(f"not a number: {text!r}")
    digits = m["num"]
    digits = digits.replace(",", "") if _THOUSANDS.match(digits) else digits.replace(",", ".")
    value = float(digits) * (_MULTIPLIERS[m["mult"]] if m["mult"] else 1.0)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


#: Durations to milliseconds.
TIME_MS: Final[dict[str, float]] = {
    "ns": 1e-6,
    "nanosecond": 1e-6,
    "µs": 1e-3,
    "μs": 1e-3,
    "us": 1e-3,
    "microsecond": 1e-3,
    "ms": 1.0,
    "msec": 1.0,
    "millisecond": 1.0,
    "s": 1000.0,
    "sec": 1000.0,
    "second": 1000.0,
    "min": 60_000.0,
    "minute": 60_000.0,
    "h": 3_600_000.0,
    "hr": 3_600_000.0,
    "hour": 3_600_000.0,
}

#: Durations to hours (battery life).
TIME_H: Final[dict[str, float]] = {
    "h": 1.0,
    "hr": 1.0,
    "hour": 1.0,
    "night": 12.0,
    "day": 24.0,
    "week": 24.0 * 7,
    "month": 24.0 * 30,
    "year": 24.0 * 365,
}

#: Sizes to MB: the shared binary table of workers/logic/tables.py plus spellings it lacks.
SIZE_MB: Final[dict[str, float]] = {
    **{unit: float(factor) for unit, factor in SIZE_UNIT_MB.items()},
    "kilobyte": SIZE_UNIT_MB["kb"],
    "megabyte": SIZE_UNIT_MB["mb"],
    "gigabyte": SIZE_UNIT_MB["gb"],
    "terabyte": SIZE_UNIT_MB["tb"],
}

#: Power to W; symbols are case-sensitive (``mW`` milliwatt, ``MW`` megawatt).
POWER_W: Final[dict[str, float]] = {
    "mW": 1e-3,
    "W": 1.0,
    "kW": 1e3,
    "MW": 1e6,
    "milliwatt": 1e-3,
    "watt": 1.0,
    "kilowatt": 1e3,
    "megawatt": 1e6,
}

#: Energy to Wh (1 Wh = 3600 J); symbols case-sensitive.
ENERGY_WH: Final[dict[str, float]] = {
    "mWh": 1e-3,
    "Wh": 1.0,
    "kWh": 1e3,
    "MWh": 1e6,
    "GWh": 1e9,
    "J": 1 / 3600,
    "kJ": 1e3 / 3600,
    "MJ": 1e6 / 3600,
    "GJ": 1e9 / 3600,
    "joule": 1 / 3600,
    "kilojoule": 1e3 / 3600,
    "megajoule": 1e6 / 3600,
    "watt-hour": 1.0,
    "watt hour": 1.0,
    "kilowatt-hour": 1e3,
    "kilowatt hour": 1e3,
    "megawatt-hour": 1e6,
    "megawatt hour": 1e6,
}

#: Mass of CO2(e) to kg.
MASS_KG: Final[dict[str, float]] = {
    "g": 1e-3,
    "gram": 1e-3,
    "kg": 1.0,
    "kilo": 1.0,
    "kilogram": 1.0,
    "t": 1e3,
    "tonne": 1e3,
    "ton": 1e3,
    "metric ton": 1e3,
}

#: Periods: seconds in one (throughput), and factor from "per period" to "per day" (budgets).
PERIOD_S: Final[dict[str, float]] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "day": 86_400.0,
    "night": 86_400.0,
    "week": 7 * 86_400.0,
    "month": 30 * 86_400.0,
    "year": 365 * 86_400.0,
}
PER_DAY: Final[dict[str, float]] = {period: 86_400.0 / seconds for period, seconds in PERIOD_S.items()}


def unit_factor(table: dict[str, float], unit: str) -> float:
    """Factor of ``unit`` in ``table``: the exact spelling first (symbols are case-sensitive:
    ``mW`` vs ``MW``), then lower case (words: ``Watts``), each also without a plural ``s``."""
    unit = " ".join(unit.split())
    candidates = [unit, unit.casefold()]
    for name in list(candidates):
        if name.endswith("s") and len(name) > 2:
            candidates.append(name[:-1])
    for name in candidates:
        if name in table:
            return table[name]
    raise KeyError(f"unknown unit {unit!r}")


def format_value(value: float) -> str:
    """Stable text of a number for ``key=value`` strings: at most 3 decimals from 1 upwards
    (``33.333``), 6 significant digits below 1 (``0.0578704``), never exponent notation."""
    if value == 0:
        return "0"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 1:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    digits = max(0, 5 - math.floor(math.log10(abs(value))))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")
