"""APP_REQUIREMENTS: application requirements read out of the problem description with regexes.

Extracted (from problem_short_description + problem_definition; nothing found -> no entry):

- ``max_latency_ms``: a time quantity ("under 50 ms", "0.5 s") preceded by a bound word (under,
  within, at most ...) or with a latency word (latency, respond, inference ...) within
  ``_WINDOW`` characters; a frame rate ("20 fps" -> 50 ms, and ``min_fps=20``); "real-time" with no
  number -> ``REALTIME_LATENCY_MS``. Several values: the strictest.
- ``deployment``: cloud, edge, mobile, embedded, on-premise or browser (``DEPLOYMENT_TERMS``; when
  several are named, the most constraining).
- ``max_model_size_mb``: a size ("fits in 2 GB", "under 500 MB") with a bound word or a memory word
  nearby; GB = 1024 MB. Several values: the smallest.

Output: ``app_requirements`` = sorted ``"key=value"`` strings; ``extra_data.requirements`` = the same
dict typed, ``extra_data.evidence`` = the text each value came from.
"""

from __future__ import annotations

import re
from typing import Any

from sustainml.messages.types import AppRequirements, NodeStatus, RequestType, ResponseType, UserInput
from sustainml.workers.logic.common import format_number, reply_unsupported
from sustainml.workers.logic.tables import DEPLOYMENT_TERMS, REALTIME_LATENCY_MS, SIZE_UNIT_MB, TIME_UNIT_MS

_WINDOW = 40  # characters either side of a quantity searched for a context word

_NUM = r"(?<![\w.])(?P<num>\d+(?:\.\d+)?)"
_BOUND = (
    r"(?:under|below|less than|lower than|smaller than|faster than|within|at most|max(?:imum)?|up to|"
    r"no more than|not (?:more|longer|larger|bigger) than|limit(?:ed)? (?:of|to)|"
    r"fits? (?:in(?:to)?|within|on)|fitting (?:in(?:to)?|within|on)|<=?|≤)"
)
_TIME = re.compile(
    rf"(?P<bound>{_BOUND}\s*)?{_NUM}\s*"
    r"(?P<unit>ms|msecs?|milliseconds?|µs|us|microseconds?|s|secs?|seconds?)\b",
    re.IGNORECASE,
)
_FPS = re.compile(rf"{_NUM}\s*(?:fps|frames?\s*(?:per|/)\s*s(?:ec(?:ond)?)?)\b", re.IGNORECASE)
_REALTIME = re.compile(r"\breal[- ]?time\b", re.IGNORECASE)
_SIZE = re.compile(
    rf"(?P<bound>{_BOUND}\s*)?{_NUM}\s*"
    r"(?P<unit>kib|kb|mib|mb|gib|gb|tib|tb|kilobytes?|megabytes?|gigabytes?|terabytes?)\b",
    re.IGNORECASE,
)
_LATENCY_WORDS = re.compile(
    r"latenc|respon|inference|answer|turnaround|real[- ]?time|"
    r"per (?:image|frame|request|query|sample|prediction|item)",
    re.IGNORECASE,
)
_MEMORY_WORDS = re.compile(
    r"memory|\bram\b|model size|footprint|storage|flash|weights|\bvram\b", re.IGNORECASE
)
_DEPLOYMENT = tuple(
    (target, re.compile(rf"\b(?:{pattern})", re.IGNORECASE)) for target, pattern in DEPLOYMENT_TERMS
)


def task_callback(user_input: UserInput, node_status: NodeStatus, app_requirements: AppRequirements) -> None:
    text = " ".join(
        part.strip()
        for part in (user_input.problem_short_description, user_input.problem_definition)
        if part.strip()
    )
    requirements, evidence = extract_requirements(text)
    app_requirements.app_requirements = [
        f"{key}={format_number(value) if isinstance(value, float) else value}"
        for key, value in sorted(requirements.items())
    ]
    app_requirements.set_extra({"requirements": requirements, "evidence": evidence})


def configuration_callback(req: RequestType, res: ResponseType) -> None:
    reply_unsupported(req, res)


def extract_requirements(text: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(typed requirements, evidence text per key) found in ``text``."""
    requirements: dict[str, Any] = {}
    evidence: dict[str, str] = {}

    latency: tuple[float, str] | None = None
    for m in _TIME.finditer(text):
        if m["bound"] or _near(text, m, _LATENCY_WORDS):
            ms = float(m["num"]) * TIME_UNIT_MS[m["unit"].lower()]
            if latency is None or ms < latency[0]:
                latency = (ms, m.group(0).strip())
    best_fps: tuple[float, str] | None = None
    for m in _FPS.finditer(text):
        fps = float(m["num"])
        if fps > 0 and (best_fps is None or fps > best_fps[0]):
            best_fps = (fps, m.group(0).strip())
    if best_fps is not None:
        requirements["min_fps"] = best_fps[0]
        evidence["min_fps"] = best_fps[1]
        ms = 1000.0 / best_fps[0]
        if latency is None or ms < latency[0]:
            latency = (ms, best_fps[1])
    if latency is None:
        realtime = _REALTIME.search(text)
        if realtime:
            latency = (REALTIME_LATENCY_MS, realtime.group(0))
    if latency is not None:
        requirements["max_latency_ms"] = latency[0]
        evidence["max_latency_ms"] = latency[1]

    for target, pattern in _DEPLOYMENT:
        found = pattern.search(text)
        if found:
            requirements["deployment"] = target
            evidence["deployment"] = found.group(0)
            break

    size: tuple[float, str] | None = None
    for m in _SIZE.finditer(text):
        if m["bound"] or _near(text, m, _MEMORY_WORDS):
            mb = float(m["num"]) * SIZE_UNIT_MB[m["unit"].lower()]
            if size is None or mb < size[0]:
                size = (mb, m.group(0).strip())
    if size is not None:
        requirements["max_model_size_mb"] = size[0]
        evidence["max_model_size_mb"] = size[1]
    return requirements, evidence


def _near(text: str, match: re.Match[str], words: re.Pattern[str]) -> bool:
    return words.search(text[max(0, match.start() - _WINDOW) : match.end() + _WINDOW]) is not None
