"""Redaction of secrets (broker and database passwords, API tokens) from anything shown to a
person: log lines, error messages, status records, results.

``redact_url`` masks the password of any ``scheme://user:password@host`` URL (AMQP, PostgreSQL,
HTTP); ``redact_text`` masks every such URL inside free text plus any explicitly named secrets,
and ``Bearer <token>`` headers. ``secrets_of(settings)`` lists the secret values of a ``Settings``
so callers can scrub text that may echo them (e.g. an exception from a client library).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote

if TYPE_CHECKING:
    from sustainml.config import Settings

MASK = "***"

# scheme://user:password@ - the password is everything up to the last '@' before the host.
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@]*:)(?P<pw>[^\s@/]*)(?=@)")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]+")
_KEYVAL = re.compile(r"(?i)\b((?:password|passwd|pwd|api[_-]?key|token|secret)\s*[=:]\s*)[^\s,;&'\"]+")

# Environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = ("SUSTAINML_API_TOKEN", "SUSTAINML_ENCODER_API_KEY", "SUSTAINML_SIGNING_KEY")


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (user, host, port, path and query kept)."""
    return _URL_CREDENTIALS.sub(lambda m: f"{m['head']}{MASK}" if m["pw"] else m[0], url)


def redact_text(text: str, *secrets: str | None) -> str:
    """``text`` with URL passwords, bearer tokens, ``password=...``-style pairs and every value in
    ``secrets`` (also in their URL-decoded form) masked."""
    out = redact_url(text)
    out = _BEARER.sub(lambda m: f"{m[1]}{MASK}", out)
    out = _KEYVAL.sub(lambda m: f"{m[1]}{MASK}", out)
    for secret in _expand(secrets):
        out = out.replace(secret, MASK)
    return out


def _expand(secrets: Iterable[str | None]) -> list[str]:
    found: set[str] = set()
    for s in secrets:
        if not s:
            continue
        for form in (s, unquote(s)):
            if len(form) >= 4:  # masking "a" or "" would mangle ordinary text
                found.add(form)
    return sorted(found, key=len, reverse=True)  # longest first: no partial masks


def url_password(url: str) -> str | None:
    """The (URL-decoded) password of ``url``, if it has one."""
    m = _URL_CREDENTIALS.search(url)
    return unquote(m["pw"]) if m and m["pw"] else None


def secrets_of(settings: Settings | None = None) -> list[str]:
    """Every secret value reachable from ``settings`` and the environment."""
    values: list[str] = []
    if settings is not None:
        for url in (settings.broker_url, settings.db_url):
            pw = url_password(url) if url else None
            if pw:
                values.append(pw)
        if settings.api_token:
            values.append(settings.api_token)
        if settings.signing_key:
            values.append(settings.signing_key)
        if settings.encoder_api_key:
            values.append(settings.encoder_api_key)
    for var in SECRET_ENV_VARS:
        if os.environ.get(var):
            values.append(os.environ[var])
    return values


def redact_for(settings: Settings | None, text: str) -> str:
    """``redact_text`` with every secret of ``settings`` (and the secret environment variables)."""
    return redact_text(text, *secrets_of(settings))


__all__ = ["MASK", "SECRET_ENV_VARS", "redact_for", "redact_text", "redact_url", "secrets_of", "url_password"]
