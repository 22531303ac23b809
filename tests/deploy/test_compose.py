"""deploy/compose: the Compose file validates against the Compose Specification (subset schema
shipped in deploy/schemas/) after interpolating .env.example, follows the deployment rules, and,
where the Docker client has the compose plugin, passes `docker compose config -q`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs in the dev extra
import pytest
import yaml

from sustainml.topology import PIPELINE

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
SCHEMA = ROOT / "deploy" / "schemas" / "compose-spec.subset.json"
WORKERS = [s.kind for s in PIPELINE]

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR; "$$" is a literal "$".
_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", key), f"{path.name}: bad variable name {key!r}"
        assert key not in env, f"{path.name}: {key} declared twice"
        env[key] = value
    return env


def variables_used(text: str) -> set[str]:
    text = text.replace("$$", "")
    return {m.group("braced") or m.group("bare") for m in _VAR.finditer(text)}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation rules, enough for our file (no nesting)."""

    def sub(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return arg if unset else str(value)
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise ValueError(f"required variable {name} is missing: {arg}")
            return value
        if op in (":+", "+"):
            return arg if value else ""
        return value or ""

    parts = text.split("$$")
    return "$".join(_VAR.sub(sub, p) for p in parts)


def example_env() -> dict[str, str]:
    env = read_env_file(ENV_EXAMPLE)
    # The example leaves secrets empty on purpose (compose refuses to start); fill them for the check.
    return {k: (v or f"example-{k.lower()}") for k, v in env.items()}


def load_compose(env: dict[str, str] | None = None) -> dict[str, Any]:
    text = COMPOSE_FILE.read_text()
    data = yaml.safe_load(interpolate(text, env if env is not None else example_env()))
    assert isinstance(data, dict)
    return data


def test_every_variable_is_declared_in_env_example() -> None:
    used = variables_used(COMPOSE_FILE.read_text())
    declared = set(read_env_file(ENV_EXAMPLE))
    assert used, "the compose file uses no variables?"
    assert used <= declared, f"used in docker-compose.yml but not in .env.example: {sorted(used - declared)}"
    # and nothing stale in the example (COMPOSE_PROJECT_NAME is read by Compose itself)
    declared.discard("COMPOSE_PROJECT_NAME")
    assert declared <= used, f"declared in .env.example but unused: {sorted(declared - used)}"


def test_secrets_have_no_default_and_are_required() -> None:
    text = COMPOSE_FILE.read_text()
    env = read_env_file(ENV_EXAMPLE)
    secrets = [k for k in env if k.endswith("_PASSWORD")]
    assert len(secrets) >= 5
    for key in secrets:
        assert env[key] == "", f".env.example must not ship a value for {key}"
        uses = re.findall(r"\$\{" + key + r"(:?[-?+])?", text)
        assert uses and all(op == ":?" for op in uses), f"{key} must be used as ${{{key}:?...}}"
    missing = {k: v for k, v in example_env().items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        load_compose(missing)


def test_compose_file_matches_the_compose_specification_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(load_compose()), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_rejects_what_compose_would_reject() -> None:
    """The shipped schema is strict where it matters: a misspelt key or a bad condition fails."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    good = load_compose()
    mutations: list[Callable[[dict[str, Any]], None]] = [
        lambda d: d["services"]["ml_model"].__setitem__("helthcheck", {}),
        lambda d: d["services"]["ml_model"]["depends_on"]["rabbitmq"].__setitem__("condition", "healthy"),
        lambda d: d["services"]["ml_model"]["deploy"].__setitem__("replica", 2),
        lambda d: d.__setitem__("service", {}),
    ]
    for mutate in mutations:
        bad = json.loads(json.dumps(good))
        mutate(bad)
        assert list(validator.iter_errors(bad)), "schema accepted an invalid file"


def test_services_and_rules() -> None:
    data = load_compose()
    services = data["services"]
    assert {"rabbitmq", "postgres", "orchestrator", *WORKERS} <= set(services)
    image = services["orchestrator"]["image"]
    for name in ["orchestrator", *WORKERS]:
        svc = services[name]
        assert svc["image"] == image, f"{name}: every component runs the one sustainml image"
        uid = svc["user"].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, f"{name}: must run as a non-root uid"
        assert svc["restart"] in ("unless-stopped", "always", "on-failure"), name
        assert svc.get("read_only") is True, f"{name}: read-only root filesystem"
        assert "ALL" in svc.get("cap_drop", []), name
        hc = svc["healthcheck"]
        assert hc["test"][0] == "CMD" and "sustainml.cli.health" in hc["test"], name
        assert svc["depends_on"]["rabbitmq"]["condition"] == "service_healthy", name
        assert parse_duration(svc["stop_grace_period"]) > 30, f"{name}: longer than the runtime's 30 s drain"
        env = svc["environment"]
        assert env["SUSTAINML_QUEUE_TYPE"] in ("classic", "quorum")
        assert "guest" not in env["SUSTAINML_BROKER_URL"], f"{name}: no guest account"
    for name in WORKERS:
        svc = services[name]
        assert svc["command"] == ["worker", name]
        assert svc["healthcheck"]["test"][-2:] == ["--node", name]
        assert int(svc["deploy"]["replicas"]) >= 1
        assert svc["deploy"]["resources"]["limits"]["memory"]
        assert "//sustainml-worker:" in svc["environment"]["SUSTAINML_BROKER_URL"], (
            f"{name}: uses the worker account"
        )
    orch = services["orchestrator"]
    assert orch["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert orch["environment"]["SUSTAINML_DB_URL"].startswith("postgresql+psycopg://")
    assert "/healthz" in " ".join(orch["healthcheck"]["test"])
    for infra in ("rabbitmq", "postgres"):
        assert services[infra]["healthcheck"]["test"], infra
        assert services[infra]["restart"] == "unless-stopped"
    # ports are published on loopback only
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port} must bind 127.0.0.1"


def test_replica_counts_come_from_env() -> None:
    env = example_env()
    env["HW_RESOURCES_REPLICAS"] = "5"
    assert load_compose(env)["services"]["hw_resources"]["deploy"]["replicas"] == 5


def test_broker_plugins_and_definitions_are_mounted() -> None:
    services = load_compose()["services"]
    plugins = (COMPOSE_DIR / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_management" in plugins and "rabbitmq_prometheus" in plugins
    mounts = " ".join(services["rabbitmq"]["volumes"])
    assert "/etc/rabbitmq/enabled_plugins" in mounts and "/etc/rabbitmq/definitions" in mounts
    conf = (COMPOSE_DIR / "rabbitmq" / "rabbitmq.conf").read_text()
    assert "definitions.local.path = /etc/rabbitmq/definitions/definitions.json" in conf
    assert services["rabbitmq"]["depends_on"]["rabbitmq-definitions"]["condition"] == (
        "service_completed_successfully"
    )
    # the non-root renderer writes into a named volume: its mount point must exist in the image,
    # owned by the image's user, or the volume comes up root-owned and unwritable
    renderer = services["rabbitmq-definitions"]
    target = next(v.split(":")[1] for v in renderer["volumes"] if v.startswith("rabbitmq-definitions:"))
    assert renderer["command"][-1].startswith(target + "/")
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert f"install -d -o sustainml -g sustainml {target}" in dockerfile


def parse_duration(text: str) -> float:
    total = 0.0
    for value, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text):
        total += float(value) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total


def _compose_command() -> list[str] | None:
    """Docker's compose plugin (v2) or Debian's `docker-compose` (v1): both parse and validate the
    file, interpolate .env and need no engine. None when neither is installed."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def test_docker_compose_config(tmp_path: Path) -> None:
    """The authority where it exists: Docker's own parser (the client, not an engine)."""
    compose = _compose_command()
    if compose is None:
        pytest.skip(
            "neither `docker compose` nor `docker-compose` installed: validated with the shipped schema only"
        )
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in example_env().items()))
    result = subprocess.run(
        [*compose, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
