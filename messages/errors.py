"""Validation errors of the message model: :class:`MessageError` names the dotted path of the
offending value and says what was expected and what was got."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Self

from pydantic import ValidationError
from pydantic_core import ErrorDetails


@dataclass(frozen=True)
class FieldError:
    """One validation failure: the dotted path of the value and what was wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class MessageError(ValueError):
    """A record or message is invalid. ``field`` is the dotted path of the (first) offending value;
    ``errors`` lists every failure found."""

    def __init__(self, field: str, message: str, errors: Sequence[FieldError] | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.errors: list[FieldError] = list(errors) if errors else [FieldError(field, message)]

    @classmethod
    def from_validation(cls, prefix: str, exc: ValidationError) -> Self:
        """Wrap pydantic's error; ``prefix`` is the class name or the path of the record."""
        found = [FieldError(_join_path(prefix, e["loc"]), _describe(e)) for e in exc.errors()]
        if not found:  # pydantic always reports at least one; keep a usable error regardless
            found = [FieldError(prefix, str(exc))]
        return cls(found[0].field, found[0].message, found)


class DecodeError(MessageError):
    """Bytes that are not a valid message of this schema (or not msgpack at all)."""


def _join_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str):
            path = f"{path}.{part}" if path else part
        else:  # a non-str map key (pydantic reports the key itself)
            path += f"[{part!r}]"
    return path


def short_repr(value: Any, limit: int = 60) -> str:
    """A bounded repr for error messages (a bad field may hold megabytes)."""
    if isinstance(value, bytes | bytearray) and len(value) > 32:
        return f"<{len(value)} bytes>"
    return clip(repr(value), limit)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def typed_repr(value: Any) -> str:
    """``"<type> <bounded repr>"`` for error messages."""
    return "None" if value is None else f"{type(value).__name__} {short_repr(value)}"


_TYPE_WORDS: Final[dict[str, str]] = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "bytes_type": "must be bytes",
    "bool_type": "must be a boolean",
    "list_type": "must be a list",
    "dict_type": "must be a map",
    "model_type": "must be a map",
    "model_attributes_type": "must be a map",
    "invalid_key": "map keys must be strings",
    "string_unicode": "must be valid unicode text (no lone surrogates)",
}


def _describe(err: ErrorDetails) -> str:
    """``"<what was wrong>, got <what was got>"`` for one pydantic error."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind in _TYPE_WORDS:
        return f"{_TYPE_WORDS[kind]}, got {typed_repr(value)}"
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op, bound = {
            "greater_than_equal": (">=", "ge"),
            "less_than_equal": ("<=", "le"),
            "greater_than": (">", "gt"),
            "less_than": ("<", "lt"),
        }[kind]
        return f"must be {op} {ctx.get(bound)}, got {short_repr(value)}"
    if kind == "finite_number":
        return f"must be a finite number, got {short_repr(value)}"
    if kind in ("string_too_long", "bytes_too_long", "too_long"):
        unit = {"string_too_long": "characters", "bytes_too_long": "bytes", "too_long": "items"}[kind]
        size = ctx.get("actual_length", len(value) if hasattr(value, "__len__") else "?")
        return f"must have at most {ctx.get('max_length')} {unit}, got {size}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {short_repr(value)}"
    if kind == "missing":
        return "is required, got nothing"
    if kind == "frozen_instance":
        return f"is read-only, got an assignment of {short_repr(value)}"
    if "got" in ctx:  # our own PydanticCustomError: message without the value, value in ctx
        return f"{err['msg']}, got {ctx['got']}"
    msg = err["msg"]
    return f"{msg[:1].lower()}{msg[1:]}, got {short_repr(value)}"
