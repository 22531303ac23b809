"""Regenerate the README's configuration table from sustainml/config.py SETTINGS_DOC.

Run after adding a setting: `.venv/bin/python tools/readme_config.py`.
"""

from __future__ import annotations

from pathlib import Path

from sustainml.config import SETTINGS_DOC

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- generated from sustainml/config.py SETTINGS_DOC; tests/unit/test_readme.py checks it -->"


def main() -> None:
    lines = README.read_text(encoding="utf-8").split("\n")
    start = lines.index(MARKER) + 1
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    table = ["| variable | default | meaning |", "|---|---|---|"]
    table += [f"| `{var}` | `{default}` | {meaning} |" for var, default, meaning in SETTINGS_DOC]
    lines[start:end] = table
    README.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
