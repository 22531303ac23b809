"""The README's commands, read from the README itself and run as written, so the page and the
program cannot drift apart.

- Every ``bash`` block is parsed into commands. ``.venv/bin/sustainml`` becomes this interpreter's
  ``-m sustainml.cli`` (CI installs the package into another venv) and the HTTP address
  ``127.0.0.1:5001`` the test's own free port; nothing else is changed. ``tools/setup`` and
  ``tools/test`` are not run here (they are what runs this).
- ``--embedded`` commands run with no broker; the others against ``sustainml up`` on the real
  broker, in a fresh namespace and data directory, in the order the page gives them.
- The sample output printed under a command must match what the command prints (timings aside).
- Every command and flag of the CLI reference table exists in the program's own ``--help``; every
  relative link of README.md and docs/ points to a file of the repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from sustainml.cli.main import cli
from sustainml.topology import PIPELINE, Topology, delete_all
from sustainml.transport.amqp import AmqpTransport

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
SUSTAINML = ".venv/bin/sustainml"
README_HTTP = "127.0.0.1:5001"
BOX = "┌│└├┏┃┡╇━─"


def _blocks(lang: str) -> list[tuple[str, str]]:
    """(code, the plain block right after it, or "") for every ```lang block, in page order."""
    found = []
    for m in re.finditer(rf"```{lang}\n(.*?)```\n(?:\n```\n(.*?)```)?", README, re.S):
        found.append((m.group(1), m.group(2) or ""))
    return found


def _commands(block: str) -> list[str]:
    """The block's commands: comments dropped, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", block)
    lines = [line.split("  #")[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _argv(command: str, http: str | None = None) -> list[str]:
    if http is not None:
        command = command.replace(README_HTTP, http)
    args = shlex.split(command)
    if args and args[0] == SUSTAINML:
        return [sys.executable, "-m", "sustainml.cli", *args[1:]]
    return args


def _sustainml_commands() -> list[tuple[str, str]]:
    """(command, its sample output) of every sustainml command in the page's bash blocks."""
    out = []
    for code, sample in _blocks("bash"):
        for command in _commands(code):
            for part in command.split("&&"):
                part = part.strip()
                if part.startswith(SUSTAINML):
                    out.append((part, sample))
    return out


def _check_sample(sample: str, printed: str) -> None:
    """Each line of the sample, in order, is a line of the output; "[ N ms]" matches any timing,
    "..." lines and the rows of a record's table (their content varies with the run) are skipped."""

    def norm(line: str) -> str:
        return " ".join(re.sub(r"\[\s*\d+ ms\]", "[T]", line).split())

    got = [norm(line) for line in printed.splitlines()]
    at = 0
    for line in sample.splitlines():
        if not line.strip() or line.strip() in ("...", "…") or line.lstrip()[:1] in BOX:
            continue
        try:
            at = got.index(norm(line), at) + 1
        except ValueError:
            raise AssertionError(
                f"README sample line {line!r} not printed (after line {at}):\n{printed}"
            ) from None


def _run(argv: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}, cwd=str(ROOT)
    )


def test_the_readme_has_the_commands_this_file_runs() -> None:
    commands = [c for c, _ in _sustainml_commands()]
    assert any("submit" in c and "--wait" in c for c in commands)
    assert any("--embedded" in c for c in commands)
    assert any(c.endswith(" up") for c in commands)


def test_embedded_commands_run_as_written(tmp_path: Path) -> None:
    env = {
        "SUSTAINML_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/",  # no broker: none is needed
        "SUSTAINML_NAMESPACE": f"t-{uuid.uuid4().hex[:8]}",
        "SUSTAINML_DATA_DIR": str(tmp_path),
    }
    embedded = [(c, s) for c, s in _sustainml_commands() if "--embedded" in c]
    assert embedded
    for command, sample in embedded:
        proc = _run(_argv(command), env)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
        if "--json" in command:
            result = json.loads(proc.stdout)
            # "the task id, its state, the user input and the six outputs keyed by the node names"
            assert (
                result["task_id"] == {"problem_id": 1, "iteration_id": 1} and result["state"] == "succeeded"
            )
            assert isinstance(result["USER_INPUT"], dict)
            for stage in PIPELINE:
                assert isinstance(result[stage.node]["extra_data"], dict), stage.node
        if sample:
            _check_sample(sample, proc.stdout)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_broker_commands_run_as_written(amqp_url: str, tmp_path: Path) -> None:
    http = f"127.0.0.1:{_free_port()}"
    env = {
        "SUSTAINML_BROKER_URL": amqp_url,
        "SUSTAINML_NAMESPACE": f"t-{uuid.uuid4().hex[:8]}",
        "SUSTAINML_DATA_DIR": str(tmp_path),
        "SUSTAINML_HTTP": http,
    }
    commands = [(c, s) for c, s in _sustainml_commands() if "--embedded" not in c]
    up_command = next(c for c, _ in commands if c.endswith(" up"))
    up = subprocess.Popen(
        _argv(up_command), env={**os.environ, **env}, cwd=str(ROOT), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:  # ready once the six nodes report IDLE
            st = _run([sys.executable, "-m", "sustainml.cli", "status", "--json"], env, timeout=60)
            if st.returncode == 0 and all(v == "IDLE" for v in json.loads(st.stdout)["nodes"].values()):
                break
            assert up.poll() is None, "sustainml up exited"
            assert time.monotonic() < deadline, f"nodes never all IDLE: {st.stdout} {st.stderr}"
            time.sleep(0.5)
        for command, sample in commands:
            if command == up_command or command.endswith(" teardown"):
                continue  # teardown runs once the nodes are stopped, below
            proc = _run(_argv(command), env)
            assert proc.returncode == 0, f"{command}\n{proc.stderr}"
            if sample:
                _check_sample(sample, proc.stdout)
        for code, _sample in _blocks("bash"):  # the page's curl examples, on the test's port
            for command in _commands(code):
                if command.startswith("curl"):
                    proc = _run(_argv(command, http), env, timeout=60)
                    assert proc.returncode == 0, f"{command}\n{proc.stderr}"
                    body = json.loads(proc.stdout)
                    assert "task_id" in body, body
                    if "wait=" in command:
                        assert body["state"] == "succeeded", body
        assert any(c.startswith("curl") for code, _ in _blocks("bash") for c in _commands(code))
    finally:
        up.send_signal(2)  # Ctrl-C, as the page says
        output, _ = up.communicate(timeout=90)
    assert up.returncode == 0, output
    assert "ready after" in output  # up says when the deployment answers, not only that it started
    teardown = next((c for c, _ in commands if c.endswith(" teardown")), None)
    assert teardown is not None, "the README says how to remove a namespace from the broker"
    proc = _run(_argv(teardown), env)
    assert proc.returncode == 0, proc.stderr
    assert "removed from the broker" in proc.stdout
    with AmqpTransport(amqp_url, name="cleanup") as t:
        delete_all(t, Topology(env["SUSTAINML_NAMESPACE"]))  # nothing left if teardown worked


def _reference_rows() -> list[str]:
    section = README.split("## CLI reference", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(sustainml [^`]*)`", section, re.M)


def _help(args: list[str]) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"])
    assert result.exit_code == 0, f"sustainml {' '.join(args)} --help: {result.output}"
    return result.output


def test_every_command_and_flag_of_the_reference_table_exists() -> None:
    rows = _reference_rows()
    assert len(rows) >= 15
    for row in rows:
        words = row.replace("\\|", "|").split()
        name = words[1]
        subcommands = [""]
        for word in words[2:]:
            alternatives = word.split("|")
            if len(alternatives) < 2 or word.startswith("[") or not all(a.islower() for a in alternatives):
                continue  # not a choice between literal words (NODE|all: a placeholder or "all")
            if hasattr(cli.commands[name], "commands"):  # eval, dlq: each one is a subcommand
                subcommands = alternatives
            else:  # catalogue, control: each one is a choice of an argument
                assert all(a in _help([name]) for a in alternatives), row
        flags = re.findall(r"--[a-z][a-z-]*", row)
        for sub in subcommands:
            text = _help([name, sub] if sub else [name])
            for flag in flags:
                assert flag in text, f"{row}: {flag} not in `sustainml {name} {sub} --help`"


def test_every_relative_link_of_the_docs_points_into_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # http(s) and mailto links
            path = (page.parent / target).resolve()
            assert path.is_relative_to(ROOT), f"{page.name}: {target} is outside the repository"
            assert path.exists(), f"{page.name}: {target} does not exist"
