"""What every command group of the CLI shares: the two consoles, the one-line error, the settings
the root group parsed, and the translation of the errors a user can fix into that one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from sustainml.config import ConfigError, Settings
from sustainml.messages import MessageError
from sustainml.orchestrator.client import OrchestratorError
from sustainml.transport.base import BrokerUnavailable, TransportError

err = Console(stderr=True)
out = Console()


class CliError(click.ClickException):
    """A one-line, actionable error (no traceback)."""

    def show(self, file: Any = None) -> None:
        # soft_wrap: the terminal wraps long lines; a pipe or a log gets each message on one line.
        err.print(f"[bold red]error:[/] {self.format_message()}", highlight=False, soft_wrap=True)


def fail(msg: str) -> NoReturn:
    raise CliError(msg)


@contextmanager
def friendly_errors(*, embedded_hint: bool = False) -> Iterator[None]:
    """Turn the errors a user can fix into one line each."""
    try:
        yield
    except BrokerUnavailable as exc:
        hint = "\n       or run without a broker: add --embedded" if embedded_hint else ""
        fail(f"{exc}{hint}")
    except (OrchestratorError, MessageError, ConfigError, TransportError) as exc:
        fail(str(exc))
    except TimeoutError as exc:
        fail(str(exc))


def read_text_file(path: Path, flag: str) -> str:
    """A UTF-8 file's text, or one line naming the flag, the file and what is wrong with it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start]
        fail(f"{flag} {path}: not UTF-8 text (byte 0x{bad:02x} at offset {exc.start}); save it as UTF-8")
    except OSError as exc:
        fail(f"{flag} {path}: {exc.strerror or exc}")


def settings_of(ctx: click.Context) -> Settings:
    """The settings the root group built from the environment and the global options."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def settings_or_env(ctx: click.Context) -> Settings:
    """As ``settings_of``, or the environment's when the group runs on its own (without the root
    group, e.g. invoked directly from a test)."""
    obj = ctx.find_root().obj
    if isinstance(obj, Settings):
        return obj
    return Settings.from_env()


def http_address(settings: Settings, value: str) -> tuple[str, int] | None:
    try:
        return settings.with_overrides(http=value).http_address
    except ConfigError as exc:
        fail(f"--http: {exc}")


def safe_db(settings: Settings) -> str:
    """The TaskDB URL without its credentials, to print."""
    url = settings.effective_db_url
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
