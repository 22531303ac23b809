"""deploy/Dockerfile: a static check that it parses and follows the image rules (no Docker engine
is needed): multi-stage, non-root USER in the final stage, exec-form ENTRYPOINT, a HEALTHCHECK,
no secrets baked in, and a build context limited to the package sources."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL", "MAINTAINER",
}  # fmt: skip


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(text: str) -> tuple[list[tuple[str, str]], list[Stage]]:
    """Instructions (keyword, arguments) with line continuations joined and comments dropped."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by Docker
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    assert not buf, "Dockerfile ends inside a line continuation"
    instructions: list[tuple[str, str]] = []
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        assert keyword in INSTRUCTIONS, f"unknown instruction {keyword!r}"
        instructions.append((keyword, args.strip()))
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.IGNORECASE)
            assert m, f"bad FROM: {args!r}"
            stages.append(Stage(m.group(1), m.group(2)))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
        else:
            assert keyword == "ARG", f"{keyword} before the first FROM"
    return instructions, stages


@pytest.fixture(scope="module")
def dockerfile() -> tuple[list[tuple[str, str]], list[Stage]]:
    return parse(DOCKERFILE.read_text())


def test_multi_stage_with_a_small_base(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    instructions, stages = dockerfile
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    args = _arg_defaults(instructions)
    bases = [re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), s.base) for s in stages]
    earlier = {s.name for s in stages if s.name}  # a stage may build on an earlier one
    assert all(b in earlier or "slim" in b or "alpine" in b or "distroless" in b for b in bases), bases
    final = stages[-1]
    copies = [args for kw, args in final.instructions if kw == "COPY"]
    assert any(a.startswith("--from=build") for a in copies), "the runtime stage copies the built venv"
    assert not any(kw == "RUN" and "pip install" in args for kw, args in final.instructions)


def _arg_defaults(instructions: list[tuple[str, str]]) -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for kw, a in instructions
        if kw == "ARG"
        for m in [re.match(r"(\w+)=?(.*)", a)]
        if m
    }


def test_final_stage_runs_as_non_root(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    instructions, stages = dockerfile
    args = _arg_defaults(instructions)
    users = [a for kw, a in stages[-1].instructions if kw == "USER"]
    assert users, "the final stage sets USER"
    user = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), users[-1]).split(":")[0]
    assert user not in ("root", "0"), "USER must not be root"
    assert user.isdigit() and int(user) >= 1000, "a numeric uid lets Kubernetes enforce runAsNonRoot"
    # nothing after USER switches back
    after = stages[-1].instructions[[kw for kw, _ in stages[-1].instructions].index("USER") :]
    assert not any(kw == "USER" and a.split(":")[0] in ("root", "0") for kw, a in after)


def test_entrypoint_healthcheck_and_signals(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    _, stages = dockerfile
    final = dict(stages[-1].instructions)
    assert final["ENTRYPOINT"].startswith("["), "exec form: signals reach the process, not a shell"
    assert "sustainml" in final["ENTRYPOINT"]
    hc = final["HEALTHCHECK"]
    assert "CMD" in hc and "sustainml.cli.health" in hc
    assert final.get("STOPSIGNAL", "SIGTERM") == "SIGTERM"


def test_no_secrets_in_the_image(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    instructions, _ = dockerfile
    for kw, args in instructions:
        if kw in ("ENV", "ARG", "LABEL"):
            for token in shlex.split(args):
                key = token.split("=", 1)[0].upper()
                assert not re.search(r"PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE", key), f"{kw} {token}"
                assert "://" not in token or "@" not in token, f"{kw} carries credentials: {token}"
        if kw in ("COPY", "ADD"):
            assert ".env" not in args and "id_rsa" not in args and ".pem" not in args, args
            assert not args.startswith("http"), "no remote ADD"


def test_build_context_is_allow_listed() -> None:
    lines = [
        ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "**", "ignore everything, then allow the package sources back in"
    allowed = {ln[1:] for ln in lines if ln.startswith("!")}
    assert {"sustainml/**", "messages/**", "workers/**", "orchestrator/**", "pyproject.toml"} <= allowed
    assert not any("test" in a or ".env" in a for a in allowed)
    assert "**/.env" in lines


def test_copied_sources_exist(dockerfile: tuple[list[tuple[str, str]], list[Stage]]) -> None:
    _, stages = dockerfile
    for kw, args in stages[0].instructions:
        if kw == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            for src in sources:
                if src == "build-ca.crt":  # the building machine's CA bundle, put in by tools/build-images
                    assert "build-ca.crt" in (ROOT / "tools" / "build-images").read_text()
                    continue
                assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
