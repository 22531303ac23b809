"""Settings: every knob in one place, read from ``SUSTAINML_*`` environment variables.

The README's configuration table is generated from ``SETTINGS_DOC`` so the two cannot drift.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

DEFAULT_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sustainml"


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


@dataclass(frozen=True)
class EstimationSettings:
    """What the estimation library and the shipped stage logic read from disk and configuration.

    Nodes hand theirs to their stage logic (``Settings.estimation``), so two deployments with
    different settings can run in one process."""

    #: measurements (``measurements/``), the latency and local-cpu calibrations
    data_dir: Path = field(default_factory=_default_data_dir)
    #: built ONNX graphs of catalogue models (and stored raw models); None: ``<data_dir>/models``
    graph_cache: Path | None = None
    #: directories a user's model file may be read from; empty: ``<data_dir>/user-models``
    model_dirs: tuple[Path, ...] = ()
    #: grid carbon intensity override in gCO2e/kWh, as written ("" = none); it is checked when a
    #: task uses it, so a bad value fails that task with the variable's name, not the node's start
    grid_ci: str = ""

    @property
    def graph_cache_dir(self) -> Path:
        return self.graph_cache if self.graph_cache is not None else self.data_dir / "models"

    @property
    def user_model_dirs(self) -> list[Path]:
        """The allowed user-model directories, resolved."""
        dirs = self.model_dirs or (self.data_dir / "user-models",)
        return [d.expanduser().resolve() for d in dirs]


@dataclass(frozen=True)
class EncoderSettings:
    """What the task encoder reads: where its exported weights and training cache live, which
    backend answers, and where a ``dataset_path`` request may read files from.

    Nodes hand theirs to their stage logic (``Settings.encoder``), so two deployments with
    different backends or data directories can run in one process."""

    cache_dir: Path
    #: ``builtin``, ``openai``, ``ollama`` or ``embedding`` (lower case); the backends module
    #: refuses other names when a task asks for the backend
    backend: str = "builtin"
    url: str = ""
    model: str = ""
    #: seconds per LLM request, as written ("" = the default); checked when a task uses it
    #: (``timeout_seconds``), so a bad value makes that task fall back, not the node's start fail
    timeout: str = ""
    api_key: str = field(default="", repr=False)
    #: directories a dataset file may be read from; empty: ``./data`` and ``data_dir``
    data_dirs: tuple[Path, ...] = ()
    data_dir: Path = field(default_factory=_default_data_dir)

    def timeout_seconds(self, default: float) -> float:
        """The LLM request timeout (``default`` when unset); ``ConfigError`` naming the variable."""
        raw = self.timeout.strip()
        try:
            seconds = float(raw) if raw else default
        except ValueError:
            raise ConfigError(f"SUSTAINML_ENCODER_TIMEOUT={raw!r} is not a number of seconds") from None
        if not (seconds > 0 and math.isfinite(seconds)):
            raise ConfigError("SUSTAINML_ENCODER_TIMEOUT must be > 0 seconds")
        return seconds

    def allowed_data_dirs(self) -> list[Path]:
        """The allowed data directories, resolved and without repeats, in the order a relative
        path is tried. The default's ``./data`` is the working directory's at the call."""
        dirs = self.data_dirs or (Path.cwd() / "data", self.data_dir)
        out: list[Path] = []
        for d in dirs:
            resolved = d.expanduser().resolve()
            if resolved not in out:
                out.append(resolved)
        return out


@dataclass(frozen=True)
class Settings:
    broker_url: str = DEFAULT_BROKER_URL
    namespace: str = "sustainml"
    data_dir: Path = field(default_factory=_default_data_dir)
    db_url: str = ""
    heartbeat_interval: float = 2.0
    rpc_timeout: float = 10.0
    concurrency: int = 2
    prefetch: int = 8
    queue_type: Literal["classic", "quorum"] = "classic"
    amqp_heartbeat: int = 30
    log_level: str = "WARNING"
    # HTTP API and dashboard
    http: str = "127.0.0.1:5001"
    api_token: str = ""
    cors_origins: str = ""
    api_max_body: int = 1_048_576
    upload_max_bytes: int = 50 * 1_048_576
    # Reliability: retries of failing callbacks, per-stage deadline, TLS
    max_attempts: int = 3
    retry_backoff: float = 1.0
    stage_deadline: float = 600.0
    delivery_limit: int = 20
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Integrity: submissions, message attribution, limits, HTTP exposure
    submit_timeout: float = 60.0
    signing_key: str = ""
    signing_key_file: str = ""
    max_num_outputs: int = 10
    allowed_hosts: str = ""
    http_allow_remote: str = ""
    http_max_connections: int = 256
    http_header_timeout: float = 10.0
    upload_quota_bytes: int = 1024 * 1_048_576
    upload_retention_days: float = 30.0
    # Estimation and the task encoder (read through ``estimation`` and ``encoder``)
    grid_ci: str = ""
    cache_dir: str = ""
    model_dirs: str = ""
    encoder_cache_dir: str = ""
    encoder_backend: str = ""
    encoder_url: str = ""
    encoder_model: str = ""
    encoder_timeout: str = ""
    encoder_api_key: str = field(default="", repr=False)
    data_dirs: str = ""

    @property
    def estimation(self) -> EstimationSettings:
        """The estimation section: what the stage logic and the estimation library use."""
        return EstimationSettings(
            data_dir=self.data_dir,
            graph_cache=Path(self.cache_dir).expanduser() if self.cache_dir.strip() else None,
            model_dirs=tuple(Path(p).expanduser() for p in self.model_dirs.split(os.pathsep) if p.strip()),
            grid_ci=self.grid_ci.strip(),
        )

    @property
    def encoder(self) -> EncoderSettings:
        """The task encoder's section."""
        explicit = self.encoder_cache_dir.strip()
        return EncoderSettings(
            cache_dir=Path(explicit).expanduser() if explicit else self.data_dir / "cache" / "encoder",
            backend=self.encoder_backend.strip().casefold() or "builtin",
            url=self.encoder_url.strip(),
            model=self.encoder_model.strip(),
            timeout=self.encoder_timeout.strip(),
            api_key=self.encoder_api_key,
            data_dirs=tuple(Path(p).expanduser() for p in self.data_dirs.split(os.pathsep) if p.strip()),
            data_dir=self.data_dir,
        )

    @property
    def namespace_dir(self) -> Path:
        """The namespace's own folder in the data directory (its default TaskDB): two deployments
        on one machine with different namespaces never share tasks or ids."""
        return self.data_dir / self.namespace

    @property
    def effective_db_url(self) -> str:
        """The TaskDB URL: ``SUSTAINML_DB_URL`` or a SQLite file in the namespace's folder."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{self.namespace_dir / 'taskdb.sqlite3'}"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the given non-None fields replaced (CLI flags win over the environment)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = f"SUSTAINML_{f.name.upper()}"
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(var, f.name, raw)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.namespace or not all(c.isalnum() or c in "-_" for c in self.namespace):
            raise ConfigError(f"SUSTAINML_NAMESPACE={self.namespace!r}: use letters, digits, '-' or '_' only")
        if self.heartbeat_interval <= 0:
            raise ConfigError("SUSTAINML_HEARTBEAT_INTERVAL must be > 0 seconds")
        if self.rpc_timeout <= 0:
            raise ConfigError("SUSTAINML_RPC_TIMEOUT must be > 0 seconds")
        if self.concurrency < 1:
            raise ConfigError("SUSTAINML_CONCURRENCY must be >= 1")
        if self.prefetch < 1:
            raise ConfigError("SUSTAINML_PREFETCH must be >= 1")
        if self.queue_type not in ("classic", "quorum"):
            raise ConfigError("SUSTAINML_QUEUE_TYPE must be 'classic' or 'quorum'")
        if self.api_max_body < 1024:
            raise ConfigError("SUSTAINML_API_MAX_BODY must be >= 1024 bytes")
        if self.upload_max_bytes < 1024:
            raise ConfigError("SUSTAINML_UPLOAD_MAX_BYTES must be >= 1024 bytes")
        if self.max_attempts < 1:
            raise ConfigError("SUSTAINML_MAX_ATTEMPTS must be >= 1")
        if self.retry_backoff < 0:
            raise ConfigError("SUSTAINML_RETRY_BACKOFF must be >= 0 seconds")
        if self.stage_deadline < 0:
            raise ConfigError("SUSTAINML_STAGE_DEADLINE must be >= 0 seconds (0 disables it)")
        if self.delivery_limit < 1:
            raise ConfigError("SUSTAINML_DELIVERY_LIMIT must be >= 1")
        if self.submit_timeout <= 0:
            raise ConfigError("SUSTAINML_SUBMIT_TIMEOUT must be > 0 seconds")
        if self.max_num_outputs < 1:
            raise ConfigError("SUSTAINML_MAX_NUM_OUTPUTS must be >= 1")
        if self.http_max_connections < 1:
            raise ConfigError("SUSTAINML_HTTP_MAX_CONNECTIONS must be >= 1")
        if self.http_header_timeout <= 0:
            raise ConfigError("SUSTAINML_HTTP_HEADER_TIMEOUT must be > 0 seconds")
        if self.upload_quota_bytes < self.upload_max_bytes:
            raise ConfigError("SUSTAINML_UPLOAD_QUOTA_BYTES must be >= SUSTAINML_UPLOAD_MAX_BYTES")
        if self.upload_retention_days <= 0:
            raise ConfigError("SUSTAINML_UPLOAD_RETENTION_DAYS must be > 0 days")

    @property
    def remote_http_allowed(self) -> bool:
        """``SUSTAINML_HTTP_ALLOW_REMOTE``: serve beyond loopback without an API token."""
        return self.http_allow_remote.lower() in ("1", "true", "yes", "on")

    @property
    def host_allowlist(self) -> tuple[str, ...]:
        """Host names (lower case, without port) the HTTP server answers to: loopback names plus
        ``SUSTAINML_ALLOWED_HOSTS`` (comma-separated; ``*`` allows any)."""
        extra = tuple(h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip())
        return ("localhost", "127.0.0.1", "::1", *extra)

    @property
    def http_address(self) -> tuple[str, int] | None:
        """``SUSTAINML_HTTP`` as (host, port), or None when it is ``off``."""
        if self.http.lower() in ("", "off", "none", "0"):
            return None
        host, sep, port = self.http.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"SUSTAINML_HTTP={self.http!r}: expected host:port or 'off'")
        return host.strip("[]"), int(port)


def environment_settings() -> Settings:
    """This process's settings from its environment, for library calls made without settings
    (command-line tools, notebooks, the module-level stage callbacks). Nodes never rely on it:
    they hand their own settings to their stage logic. Re-read whenever a variable it depends on
    changes; parsed once otherwise (module-level callbacks ask for it on every task)."""
    global _environment_memo
    key = tuple(os.environ.get(var) for var in _ENVIRONMENT_VARIABLES)
    memo = _environment_memo
    if memo is not None and memo[0] == key:
        return memo[1]
    settings = Settings.from_env()
    _environment_memo = (key, settings)
    return settings


#: What ``Settings.from_env`` reads: its variables, and those of the default data directory.
_ENVIRONMENT_VARIABLES: tuple[str, ...] = (
    *(f"SUSTAINML_{f.name.upper()}" for f in fields(Settings)),
    "XDG_DATA_HOME",
    "HOME",
)
_environment_memo: tuple[tuple[str | None, ...], Settings] | None = None


_INT_FIELDS = {
    "concurrency",
    "prefetch",
    "amqp_heartbeat",
    "api_max_body",
    "upload_max_bytes",
    "max_attempts",
    "delivery_limit",
    "max_num_outputs",
    "http_max_connections",
    "upload_quota_bytes",
}
_FLOAT_FIELDS = {
    "heartbeat_interval",
    "rpc_timeout",
    "retry_backoff",
    "stage_deadline",
    "submit_timeout",
    "http_header_timeout",
    "upload_retention_days",
}


def _parse(var: str, name: str, raw: str) -> Any:
    try:
        if name in _INT_FIELDS:
            return int(raw)
        if name in _FLOAT_FIELDS:
            return float(raw)
    except ValueError:
        raise ConfigError(f"{var}={raw!r} is not a number") from None
    if name == "data_dir":
        return Path(raw).expanduser()
    return raw


# (variable, default, meaning) — rendered into the README's configuration table.
SETTINGS_DOC: tuple[tuple[str, str, str], ...] = (
    ("SUSTAINML_BROKER_URL", DEFAULT_BROKER_URL, "AMQP URL of the RabbitMQ broker (`--broker` wins)."),
    (
        "SUSTAINML_NAMESPACE",
        "sustainml",
        "Prefix of every exchange and queue; isolates deployments on one broker.",
    ),
    (
        "SUSTAINML_DATA_DIR",
        "~/.local/share/sustainml",
        "Where the default SQLite TaskDB (one per namespace, `<data_dir>/<namespace>/`) and the caches live.",
    ),
    (
        "SUSTAINML_DB_URL",
        "sqlite:///<data_dir>/<namespace>/taskdb.sqlite3",
        "TaskDB SQLAlchemy URL (PostgreSQL: `postgresql+psycopg://...`).",
    ),
    (
        "SUSTAINML_HEARTBEAT_INTERVAL",
        "2.0",
        "Seconds between NodeStatus heartbeats; INACTIVE after 3 missed.",
    ),
    ("SUSTAINML_RPC_TIMEOUT", "10", "Seconds a configuration or orchestrator request waits for its reply."),
    ("SUSTAINML_CONCURRENCY", "2", "Callbacks a worker replica runs at once (threads)."),
    ("SUSTAINML_PREFETCH", "8", "Unacknowledged deliveries a replica holds (AMQP basic.qos)."),
    ("SUSTAINML_QUEUE_TYPE", "classic", "`classic` or `quorum` stage queues."),
    ("SUSTAINML_AMQP_HEARTBEAT", "30", "AMQP connection heartbeat timeout in seconds."),
    ("SUSTAINML_LOG_LEVEL", "WARNING", "Python logging level of workers and orchestrator."),
    (
        "SUSTAINML_HTTP",
        "127.0.0.1:5001",
        "Where `sustainml up` serves the REST API and dashboard (`off` disables it).",
    ),
    (
        "SUSTAINML_API_TOKEN",
        "unset",
        "Bearer token required by mutating HTTP routes when set (never logged).",
    ),
    ("SUSTAINML_CORS_ORIGINS", "unset", "Comma-separated origins allowed by CORS on the HTTP API."),
    ("SUSTAINML_API_MAX_BODY", "1048576", "Largest HTTP request body accepted, in bytes (413 above)."),
    ("SUSTAINML_UPLOAD_MAX_BYTES", "52428800", "Largest dataset upload accepted by the dashboard, in bytes."),
    ("SUSTAINML_MAX_ATTEMPTS", "3", "Attempts of a failing stage callback before it is dead-lettered."),
    ("SUSTAINML_RETRY_BACKOFF", "1.0", "Seconds before the first retry; doubles on each further attempt."),
    (
        "SUSTAINML_STAGE_DEADLINE",
        "600",
        "Seconds a task may wait on one stage before it is marked failed (0 disables).",
    ),
    ("SUSTAINML_DELIVERY_LIMIT", "20", "x-delivery-limit of quorum stage queues (redeliveries before DLX)."),
    ("SUSTAINML_TLS_CA_FILE", "unset", "CA bundle that verifies the broker's certificate (amqps://)."),
    ("SUSTAINML_TLS_CERT_FILE", "unset", "Client certificate for amqps:// (optional)."),
    ("SUSTAINML_TLS_KEY_FILE", "unset", "Client private key for amqps:// (optional)."),
    (
        "SUSTAINML_SUBMIT_TIMEOUT",
        "60",
        "Seconds a client retries one submission (same idempotency key) while the orchestrator is away.",
    ),
    (
        "SUSTAINML_SIGNING_KEY",
        "unset",
        "Per-deployment key that signs pipeline messages (HMAC-SHA256; never logged).",
    ),
    (
        "SUSTAINML_SIGNING_KEY_FILE",
        "<data_dir>/signing.key",
        "File holding the signing key; generated (mode 600) on first use when absent.",
    ),
    (
        "SUSTAINML_MAX_NUM_OUTPUTS",
        "10",
        "Largest `num_outputs` (automatic iterations) a submission may ask for.",
    ),
    (
        "SUSTAINML_ALLOWED_HOSTS",
        "unset",
        "Extra `Host` names the HTTP server answers to (loopback names always; `*` allows any).",
    ),
    (
        "SUSTAINML_HTTP_ALLOW_REMOTE",
        "unset",
        "`1`: serve HTTP beyond loopback without `SUSTAINML_API_TOKEN` (refused otherwise).",
    ),
    ("SUSTAINML_HTTP_MAX_CONNECTIONS", "256", "Open HTTP connections served at once (more are refused)."),
    (
        "SUSTAINML_HTTP_HEADER_TIMEOUT",
        "10",
        "Seconds a client may take to send a request's headers, and between body chunks.",
    ),
    (
        "SUSTAINML_UPLOAD_QUOTA_BYTES",
        "1073741824",
        "Total bytes of dataset uploads kept (oldest removed first).",
    ),
    ("SUSTAINML_UPLOAD_RETENTION_DAYS", "30", "Days an uploaded dataset is kept."),
    ("SUSTAINML_GRID_CI", "unset", "Grid carbon intensity override (gCO2e/kWh) for CARBON_FOOTPRINT."),
    (
        "SUSTAINML_CACHE_DIR",
        "<data_dir>/models",
        "Where built ONNX graphs of catalogue models are cached (by content hash).",
    ),
    (
        "SUSTAINML_MODEL_DIRS",
        "<data_dir>/user-models",
        "Directories (os.pathsep-separated) a user's extra_data.model_path may point into.",
    ),
    (
        "SUSTAINML_DATA_DIRS",
        "./data and <data_dir>",
        "Directories a `dataset_path` configuration request may profile files from.",
    ),
    (
        "SUSTAINML_ENCODER_BACKEND",
        "builtin",
        "Task-encoder backend: builtin, openai, ollama or embedding (failures fall back to builtin).",
    ),
    ("SUSTAINML_ENCODER_URL", "unset", "URL of the LLM endpoint of the `openai`/`ollama` backend."),
    ("SUSTAINML_ENCODER_MODEL", "unset", "Model name the LLM backend asks for."),
    ("SUSTAINML_ENCODER_API_KEY", "unset", "Bearer token for an OpenAI-compatible endpoint (never logged)."),
    ("SUSTAINML_ENCODER_TIMEOUT", "10", "Seconds the LLM backend waits before falling back."),
    (
        "SUSTAINML_ENCODER_CACHE_DIR",
        "<data_dir>/cache/encoder",
        "The task encoder's exported weights (.npz) and its scikit-learn training cache.",
    ),
)
