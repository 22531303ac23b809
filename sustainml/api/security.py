"""Bearer token for mutating routes, the loopback rule for terminate/shutdown, and the request
body size limit (an ASGI middleware, so oversized bodies are refused before they are read)."""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNAUTHORIZED = "missing or invalid bearer token"
# Multipart framing around an uploaded file (boundaries, part headers) on top of the file itself.
MULTIPART_SLACK = 64 * 1024


class TokenCheck:
    """FastAPI dependency: with a token configured, the request must carry
    ``Authorization: Bearer <token>``; compared in constant time. The token is never logged or
    echoed (the error text is fixed)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode() if token else b""

    @property
    def enabled(self) -> bool:
        return bool(self._token)

    def accepts(self, header: str) -> bool:
        """Whether an ``Authorization`` header value passes (always, without a token)."""
        if not self._token:
            return True
        scheme, _, given = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self._token)

    def __call__(self, request: Request) -> None:
        if not self.accepts(request.headers.get("authorization", "")):
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})

    def authorize_terminate(self, request: Request) -> None:
        """Stopping the process: the token when one is set, else a loopback client only."""
        if self._token:
            self(request)
            return
        host = request.client.host if request.client else ""
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host in ("localhost", "testclient")
        if not loopback:
            raise HTTPException(
                403, "terminate/shutdown are accepted from this machine only (or set an API token)"
            )


class BodyLimit:
    """Refuse request bodies above a limit with 413, on Content-Length at once and while reading a
    chunked body. ``upload_paths`` get ``upload_limit`` (plus multipart framing) instead, and with
    ``auth`` a request to them without the token is refused (401) before its body is read: FastAPI
    parses a body before the route's dependencies run, and an upload may be tens of megabytes."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        upload_limit: int,
        upload_paths: tuple[str, ...],
        auth: TokenCheck | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit + MULTIPART_SLACK
        self.upload_paths = upload_paths
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        upload = path in self.upload_paths
        if upload and self.auth is not None and scope.get("method") == "POST":
            header = next((v for n, v in scope.get("headers", []) if n == b"authorization"), b"")
            if not self.auth.accepts(header.decode("latin-1")):
                await _send_error(send, 401, UNAUTHORIZED, [(b"www-authenticate", b"Bearer")])
                return
        limit = self.upload_limit if upload else self.limit
        shown = limit - MULTIPART_SLACK if upload else limit
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    await _send_error(send, 400, "invalid Content-Length header")
                    return
                if length > limit:
                    await _send_error(send, 413, f"request body larger than {shown} bytes")
                    return
        received = 0
        started = False

        async def limited_receive() -> ASGIMessage:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI re-raises it from body parsing (others become 400).
                    raise _TooLarge(413, f"request body larger than {shown} bytes")
            return message

        async def tracking_send(message: ASGIMessage) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await _send_error(send, 413, f"request body larger than {shown} bytes")


class _TooLarge(HTTPException):
    pass


async def _send_error(
    send: Send, status: int, error: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestCounter:
    """Counts answered requests by method, route template (never the raw path: no task ids in
    labels) and status, as a plain ASGI middleware so streaming responses pass untouched."""

    def __init__(self, app: ASGIApp, counter: Any) -> None:
        self.app = app
        self.counter = counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def tracking_send(message: ASGIMessage) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.counter.labels(method=scope.get("method", ""), route=template, status=str(status)).inc()


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a browser may send cross-site without a CORS preflight ("simple" requests): refused on
# every state-changing route (multipart only where a file is uploaded, and there same-origin).
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "text/plain", "multipart/form-data"})


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header, lower case, without the port (``[::1]:80`` -> ``::1``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class SiteGuard:
    """Who may talk to the server at all, and who may change state (an ASGI middleware, outermost
    but CORS, so it runs before any body is read).

    - ``Host`` must name an allowed host (loopback names, the bound address, and
      ``SUSTAINML_ALLOWED_HOSTS``; ``*`` allows any): a page served from another name that
      resolves here (DNS rebinding) is answered ``421``.
    - State changes (any method but GET/HEAD/OPTIONS) are refused (``403``) when the browser says
      they come from another site: ``Sec-Fetch-Site`` ``cross-site``/``same-site``, or an
      ``Origin`` that is neither this server nor a configured CORS origin; and (``415``) when
      their body is a form or text/plain, the kinds a page can send cross-site without a CORS
      preflight (multipart is accepted on upload paths only, from the same origin). Clients that
      are not browsers (curl, scripts) send neither header and are not affected."""

    def __init__(
        self,
        app: ASGIApp,
        allowed_hosts: tuple[str, ...],
        cors_origins: tuple[str, ...],
        upload_paths: tuple[str, ...],
    ) -> None:
        self.app = app
        self.any_host = "*" in allowed_hosts
        self.allowed_hosts = frozenset(h.strip("[]") for h in allowed_hosts)
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in cors_origins)
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value.decode("latin-1") for name, value in scope.get("headers", [])}
        host = headers.get(b"host", "")
        if not self.any_host and host_name(host) not in self.allowed_hosts:
            await _send_error(
                send, 421, f"Host {host[:100]!r} is not served here (allowed: SUSTAINML_ALLOWED_HOSTS)"
            )
            return
        if scope.get("method", "GET") not in SAFE_METHODS:
            refusal = self._cross_site(headers, host, scope.get("path", ""))
            if refusal is not None:
                await _send_error(send, *refusal)
                return
        await self.app(scope, receive, send)

    def _cross_site(self, headers: dict[bytes, str], host: str, path: str) -> tuple[int, str] | None:
        origin = headers.get(b"origin", "").rstrip("/").lower()
        allowed_origin = origin in self.cors_origins
        same_origin = bool(origin) and origin.partition("://")[2] == host.strip().lower()
        site = headers.get(b"sec-fetch-site", "").lower()
        if site in ("cross-site", "same-site") and not allowed_origin:
            return 403, f"cross-site request refused (Sec-Fetch-Site: {site})"
        if origin and not (same_origin or allowed_origin):
            return 403, f"cross-site request refused (Origin {origin[:100]!r} is not this server)"
        media = headers.get(b"content-type", "").split(";", 1)[0].strip().lower()
        if media in FORM_TYPES and not (media == "multipart/form-data" and path in self.upload_paths):
            return 415, f"Content-Type {media} is not accepted for a state change: send application/json"
        return None


def prune_uploads(folder: Path, *, quota_bytes: int, incoming_bytes: int, retention_s: float) -> list[Path]:
    """Make room for an upload of up to ``incoming_bytes``: remove uploads older than
    ``retention_s``, then the oldest ones until the kept total plus ``incoming_bytes`` fits in
    ``quota_bytes``. Returns what was removed (logged by the caller)."""
    now = time.time()
    regular = [p for p in folder.iterdir() if p.is_file() and not p.is_symlink()]
    files = sorted(((p.stat().st_mtime, p.stat().st_size, p) for p in regular), key=lambda item: item[0])
    removed: list[Path] = []
    kept: list[tuple[float, int, Path]] = []
    for mtime, size, path in files:
        if now - mtime > retention_s:
            path.unlink(missing_ok=True)
            removed.append(path)
        else:
            kept.append((mtime, size, path))
    total = sum(size for _, size, _ in kept)
    for _, size, path in kept:  # oldest first
        if total + incoming_bytes <= quota_bytes:
            break
        path.unlink(missing_ok=True)
        removed.append(path)
        total -= size
    return removed
