"""Who sent a message: the role of its sender, proven by the broker or by a signature.

Roles are those of ``sustainml.permissions``: ``worker`` (stage replicas), ``orchestrator``,
``operator`` (``sustainml dlq``, ``sustainml control``) and ``publisher`` (submitters).

Two proofs, chosen by how the deployment logs in to RabbitMQ:

- **Per-role accounts** (``<namespace>-<role>``, as ``deploy/rabbitmq/create-users.sh`` creates
  them). Every AMQP publish of sustainml carries the ``user-id`` property set to the login, and
  RabbitMQ refuses a message whose ``user-id`` is not the connection's user, so a receiver knows
  the sender's account. A component logged in with a role account accepts only messages whose
  ``user-id`` is a role account of its namespace; a message without one is unattributed, whatever
  else it carries.
- **One shared account** (``guest`` in development): the broker cannot tell the deployment's own
  processes from anyone else who can log in. Every message then carries
  ``x-sustainml-role`` and ``x-sustainml-signature``, an HMAC-SHA256 with the per-deployment key
  over the namespace, the role, the AMQP type, message id, correlation id, the failure header
  and the body (see ``signed_bytes``). Without the key nobody can produce it. All holders of the
  key are the deployment's own processes; they are not told apart from each other by role (use
  role accounts for that).

The key: ``SUSTAINML_SIGNING_KEY`` (at least 32 characters), else the file
``SUSTAINML_SIGNING_KEY_FILE`` (default ``<data_dir>/signing.key``), generated (32 random bytes,
hex, mode 600) by the first process that needs it. Processes on several hosts sharing one
account must be given the same key.

Headers that change on the way (retry attempts, dead-letter reasons, broker death records) are not
signed, so a retried or dead-lettered and replayed message still verifies.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from sustainml.config import ConfigError, Settings
from sustainml.messages import headers as H
from sustainml.transport.base import Message

ROLES: Final = ("worker", "orchestrator", "publisher", "operator")
#: Who may command nodes (NodeControl: pause, resume, terminate, stop a task).
CONTROL_ROLES: Final = frozenset({"orchestrator", "operator"})
KEY_FILE_NAME: Final = "signing.key"
MIN_KEY_CHARS: Final = 32
_SCHEME: Final = "v1"


class Unattributed(Exception):
    """A message whose sender could not be proven to hold a role allowed to send it; the text is
    the dead-letter reason."""


def load_key(settings: Settings, *, create: bool = True) -> bytes:
    """The deployment's signing key (see the module docstring for where it comes from)."""
    if settings.signing_key:
        if len(settings.signing_key) < MIN_KEY_CHARS:
            raise ConfigError(f"SUSTAINML_SIGNING_KEY must have at least {MIN_KEY_CHARS} characters")
        return settings.signing_key.encode("utf-8")
    path = Path(settings.signing_key_file) if settings.signing_key_file else settings.data_dir / KEY_FILE_NAME
    if not path.exists() and create:
        _create_key_file(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"signing key file {path}: cannot be read ({exc})") from None
    if len(text) < MIN_KEY_CHARS:
        raise ConfigError(f"signing key file {path}: holds fewer than {MIN_KEY_CHARS} characters")
    return text.encode("ascii")


def _create_key_file(path: Path) -> None:
    """Write a new random key to ``path`` (mode 600) unless another process got there first:
    written to a private temporary file, then hard-linked into place (fails if it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def role_of_user(namespace: str, user: str | None) -> str | None:
    """The role of a per-role broker account of ``namespace`` (``<namespace>-<role>``), else None."""
    if not user:
        return None
    for role in ROLES:
        if user == f"{namespace}-{role}":
            return role
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def signed_bytes(namespace: str, role: str, message: Message) -> bytes:
    """What the signature covers, in this order, newline-separated: scheme, namespace, role, AMQP
    type, message id, correlation id, ``x-sustainml-failed`` header, hex SHA-256 of the body."""
    parts = (
        _SCHEME,
        namespace,
        role,
        _text(message.type),
        _text(message.message_id),
        _text(message.correlation_id),
        _text(message.headers.get(H.H_FAILED)),
        hashlib.sha256(message.body).hexdigest(),
    )
    return "\n".join(parts).encode("utf-8")


@dataclass(frozen=True)
class Attribution:
    """Signs what one component sends and tells who sent what it receives."""

    namespace: str
    role: str  # the role this component signs as
    key: bytes
    own_user: str | None = None  # this component's broker login (None: in-memory)

    @classmethod
    def of(cls, settings: Settings, role: str, own_user: str | None = None) -> Attribution:
        if role not in ROLES:
            raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
        return cls(settings.namespace, role, load_key(settings), own_user)

    @property
    def role_accounts(self) -> bool:
        """True when this component itself logs in with a per-role account: then only the
        broker-validated ``user-id`` counts."""
        return role_of_user(self.namespace, self.own_user) is not None

    def _mac(self, role: str, message: Message) -> str:
        digest = hmac.new(self.key, signed_bytes(self.namespace, role, message), hashlib.sha256)
        return f"{_SCHEME}={digest.hexdigest()}"

    def sign(self, message: Message) -> Message:
        """``message`` with the role and signature headers added (nothing else changes)."""
        headers = {**message.headers, H.H_ROLE: self.role}
        headers[H.H_SIGNATURE] = self._mac(self.role, message)  # covers no header it adds
        return replace(message, headers=headers)

    def sender_role(self, message: Message) -> str:
        """The proven role of ``message``'s sender; ``Unattributed`` saying why there is none."""
        broker_role = role_of_user(self.namespace, message.user_id)
        if broker_role is not None:
            return broker_role
        if self.role_accounts:
            who = f"user-id {message.user_id!r}" if message.user_id else "no user-id"
            raise Unattributed(f"unattributed: {who}, not a role account of namespace {self.namespace!r}")
        claimed = _text(message.headers.get(H.H_ROLE))
        signature = _text(message.headers.get(H.H_SIGNATURE))
        if not signature or not claimed:
            raise Unattributed("unattributed: unsigned message (no x-sustainml-signature)")
        if claimed not in ROLES:
            raise Unattributed(f"unattributed: unknown role {claimed[:40]!r} in x-sustainml-role")
        if not hmac.compare_digest(signature, self._mac(claimed, message)):
            raise Unattributed(
                "forged: x-sustainml-signature does not verify with this deployment's key "
                "(a sender without the key, an altered message, or a different SUSTAINML_SIGNING_KEY)"
            )
        return claimed

    def require(self, message: Message, allowed: Collection[str], what: str) -> str:
        """The sender's role if it is one of ``allowed``; ``Unattributed`` otherwise."""
        role = self.sender_role(message)
        if role not in allowed:
            senders = " or ".join(sorted(allowed))
            raise Unattributed(f"refused: {what} may come only from {senders}, not from {role}")
        return role
