"""No pickle, marshal, eval or exec of data anywhere in the package, and no unsafe YAML or numpy
loading: checked on the syntax tree of every source file (comments and docstrings that merely
mention the words do not count).

One reviewed exception: the task encoder pickles its own trained model into the user's cache
directory (scikit-learn objects have no safe format). That file is never user data, and
``_untrusted_cache`` refuses to load it unless this user owns it and its directory and nobody else
may write either; a test below plants a malicious pickle to show it."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path

import pytest

from sustainml.workers.logic.encoder import model as encoder_model

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIRS = ("sustainml", "messages", "workers", "orchestrator")
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "jsonpickle"}
UNSAFE_CALLS = {"eval", "exec", "compile", "__import__"}
# (file relative to ROOT, module) imports reviewed and accepted, with the reason in the docstring.
ALLOWED_IMPORTS = {("workers/logic/encoder/model.py", "pickle")}


def _sources() -> list[Path]:
    files = [p for d in PACKAGE_DIRS for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 50, "the scan found suspiciously few files"
    return files


def _findings(path: Path) -> list[str]:
    rel = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top in UNSAFE_MODULES and (rel, top) not in ALLOWED_IMPORTS:
                    found.append(f"{rel}:{node.lineno}: imports {name}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_CALLS:
                found.append(f"{rel}:{node.lineno}: calls {func.id}()")
            if isinstance(func, ast.Attribute):
                owner = func.value.id if isinstance(func.value, ast.Name) else ""
                kwargs = {k.arg: k.value for k in node.keywords}
                if owner == "yaml" and func.attr in ("load", "load_all", "unsafe_load", "full_load"):
                    loader = kwargs.get("Loader")
                    safe = isinstance(loader, ast.Attribute) and loader.attr in ("SafeLoader", "CSafeLoader")
                    if func.attr in ("unsafe_load", "full_load") or not safe:
                        found.append(f"{rel}:{node.lineno}: yaml.{func.attr} without SafeLoader")
                if owner in ("np", "numpy") and func.attr == "load":
                    allow = kwargs.get("allow_pickle")
                    if not (isinstance(allow, ast.Constant) and allow.value is False):
                        found.append(f"{rel}:{node.lineno}: numpy.load without allow_pickle=False")
                if owner == "torch" and func.attr == "load":
                    found.append(f"{rel}:{node.lineno}: torch.load (pickle)")
    return found


def test_no_unsafe_deserialisation_in_the_package() -> None:
    findings = [f for path in _sources() for f in _findings(path)]
    assert findings == [], "unsafe deserialisation or evaluation:\n" + "\n".join(findings)


def test_the_scanner_catches_what_it_claims(tmp_path: Path) -> None:
    # The scanner itself, on a planted file (inside ROOT so the relative path works).
    planted = ROOT / "build" / f"planted_{os.getpid()}.py"
    planted.parent.mkdir(exist_ok=True)
    planted.write_text(
        "import pickle\nimport marshal as m\nimport yaml\nimport numpy as np\n"
        "eval('1')\nexec('x=1')\nyaml.load(s)\nyaml.load(s, Loader=yaml.SafeLoader)\n"
        "np.load(f)\nnp.load(f, allow_pickle=False)\n"
        "# pickle and eval( in a comment are fine\n"
    )
    try:
        found = _findings(planted)
    finally:
        planted.unlink()
    kinds = sorted(f.split(": ", 1)[1] for f in found)
    assert kinds == [
        "calls eval()",
        "calls exec()",
        "imports marshal",
        "imports pickle",
        "numpy.load without allow_pickle=False",
        "yaml.load without SafeLoader",
    ]


class _Planted:
    """Unpickling this runs ``Path.touch`` on the marker: proof that a load happened."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("mode", [0o664, 0o646])
def test_encoder_cache_refuses_a_writable_pickle(tmp_path: Path, mode: int) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "code-ran"
    path = cache / "encoder-planted.pkl"
    path.write_bytes(pickle.dumps(_Planted(marker)))
    path.chmod(mode)
    assert encoder_model._read_cache(path, "any-key") is None
    assert not marker.exists(), "a group/world-writable cache file was unpickled"


def test_encoder_cache_refuses_a_writable_directory(tmp_path: Path) -> None:
    cache = tmp_path / "shared"
    cache.mkdir()
    cache.chmod(0o777)
    marker = tmp_path / "code-ran"
    path = cache / "encoder-planted.pkl"
    path.write_bytes(pickle.dumps(_Planted(marker)))
    path.chmod(0o600)
    assert encoder_model._read_cache(path, "any-key") is None
    assert not marker.exists()


def test_encoder_cache_loads_its_own_private_file(tmp_path: Path) -> None:
    # The guard is not a blanket refusal: a private file of this user is loaded (here a planted
    # one, so the marker shows the load happened; the wrong type is then discarded).
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    marker = tmp_path / "code-ran"
    path = cache / "encoder-own.pkl"
    path.write_bytes(pickle.dumps(_Planted(marker)))
    path.chmod(0o600)
    assert encoder_model._read_cache(path, "any-key") is None
    assert marker.exists()
