"""The dashboard's files without a browser: units agree with the data model, every asset the page
loads ships in the package (nothing from a CDN), and the vendored library is the one declared."""

from __future__ import annotations

import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

from sustainml.messages import UNITS

STATIC = Path(__file__).resolve().parents[2] / "sustainml" / "api" / "static"


def test_units_table_mirrors_the_data_model() -> None:
    source = (STATIC / "format.js").read_text()
    block = re.search(r"export const UNITS = \{(.*?)\};", source, re.S)
    assert block, "UNITS table not found in format.js"
    js_units = dict(re.findall(r"(\w+):\s*\"([^\"]+)\"", block.group(1)))
    assert js_units == dict(UNITS)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.labels: set[str] = set()
        self.controls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("src", "href"):
            value = a.get(name)
            if value and tag in ("script", "link"):
                self.refs.append(value)
        if tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append(str(a.get("id")))


def test_page_loads_only_shipped_files_and_labels_every_control() -> None:
    parser = _Refs()
    parser.feed((STATIC / "index.html").read_text())
    local = [r for r in parser.refs if not r.startswith("data:")]
    assert local, "no script or stylesheet found"
    for ref in local:
        assert "://" not in ref and not ref.startswith("//"), f"external asset {ref}"
        assert (STATIC / ref).is_file(), f"{ref} is referenced but not shipped"
    # ES module imports resolve to shipped files too.
    for js in STATIC.glob("*.js"):
        for target in re.findall(r"from \"(\./[^\"]+)\"", js.read_text()):
            assert (STATIC / target).is_file(), f"{js.name} imports missing {target}"
    unlabelled = [c for c in parser.controls if c not in parser.labels]
    assert unlabelled == [], f"form controls without a <label for>: {unlabelled}"


def test_vendored_chart_library_matches_third_party_notes() -> None:
    notes = (STATIC / "THIRD-PARTY.md").read_text()
    data = (STATIC / "vendor" / "chart.umd.min.js").read_bytes()
    assert hashlib.sha256(data).hexdigest() in notes
    version = re.search(r"\| Chart\.js \| ([0-9.]+) \| MIT", notes)
    assert version, "Chart.js row missing from THIRD-PARTY.md"
    assert f"Chart.js v{version.group(1)}".encode() in data[:200]
    assert (STATIC / "vendor" / "chart.js.LICENSE.md").read_text().startswith("The MIT License")
