"""The grid carbon-intensity catalogue (regions.json): coverage, aliases, fallbacks, provenance."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import pytest

from sustainml.catalogue import RegionEntry, UnknownEntry, regions
from sustainml.catalogue.listing import as_json, rows

#: Every officially assigned ISO 3166-1 alpha-2 code (249, as of ISO 3166-1:2020 and its newsletters).
ISO_ALPHA2 = (
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ", "BA",
    "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV",
    "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU",
    "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE", "EG", "EH", "ER", "ES",
    "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM",
    "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM", "HN", "HR", "HT", "HU", "ID", "IE",
    "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM", "JO", "JP", "KE", "KG", "KH", "KI", "KM",
    "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY",
    "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT",
    "MU", "MV", "MW", "MX", "MY", "MZ", "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU",
    "NZ", "OM", "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA",
    "RE", "RO", "RS", "RU", "RW", "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM",
    "SN", "SO", "SR", "SS", "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL",
    "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE",
    "VG", "VI", "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
)  # fmt: skip

CONTINENTS = ("Africa", "Asia", "Europe", "North America", "Oceania", "South America")
#: Published figures above the plausibility bound, kept as the dataset gives them (see REGIONS.md).
KNOWN_OUTLIERS = {"TM"}  # Turkmenistan: 1,306 g/kWh in Ember 2024 and the OWID energy dataset 2022


def _raw() -> dict[str, Any]:
    text = resources.files("sustainml.catalogue").joinpath("data", "regions.json").read_text("utf-8")
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def _countries() -> list[RegionEntry]:
    return [r for r in regions() if r.kind == "country"]


def test_file_has_the_loader_contract_and_attribution() -> None:
    data = _raw()
    assert (
        "CC BY 4.0" in data["licence"]
        and "Ember" in data["licence"]
        and "Our World in Data" in data["licence"]
    )
    assert data["source_note"]
    assert len(data["entries"]) == len(regions())


def test_the_iso_list_has_249_codes() -> None:
    assert len(ISO_ALPHA2) == len(set(ISO_ALPHA2)) == 249


def test_every_iso_country_is_present() -> None:
    codes = {r.code for r in _countries()}
    missing = sorted(set(ISO_ALPHA2) - codes)
    assert not missing
    assert codes - set(ISO_ALPHA2) == {"XK"}  # Kosovo: user-assigned code, documented


@pytest.mark.parametrize("code", ISO_ALPHA2)
def test_every_country_resolves_by_code_and_name(code: str) -> None:
    entry = regions().intensity(code)
    assert entry.code == code and entry.kind == "country"
    assert regions().intensity(entry.name) is entry
    assert regions().intensity(code.lower()) is entry


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("USA", "US"),
        ("United States of America", "US"),
        ("united states", "US"),
        ("U.S.", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("United Kingdom", "GB"),
        ("England", "GB"),
        ("Deutschland", "DE"),
        ("DEU", "DE"),
        ("Czechia", "CZ"),
        ("Czech Republic", "CZ"),
        ("Holland", "NL"),
        ("the netherlands", "NL"),
        ("España", "ES"),
        ("espana", "ES"),
        ("South Korea", "KR"),
        ("Korea, Republic of", "KR"),
        ("North Korea", "KP"),
        ("Russia", "RU"),
        ("Russian Federation", "RU"),
        ("Türkiye", "TR"),
        ("Turkey", "TR"),
        ("Ivory Coast", "CI"),
        ("Côte d'Ivoire", "CI"),
        ("Cote d'Ivoire", "CI"),
        ("DRC", "CD"),
        ("Democratic Republic of Congo", "CD"),
        ("Republic of the Congo", "CG"),
        ("Viet Nam", "VN"),
        ("Taiwan", "TW"),
        ("Hong Kong", "HK"),
        ("UAE", "AE"),
        ("Vatican", "VA"),
        ("Brasil", "BR"),
        ("Eswatini", "SZ"),
        ("Swaziland", "SZ"),
        ("Burma", "MM"),
        ("East Timor", "TL"),
        ("Cabo Verde", "CV"),
        ("Cape Verde", "CV"),
        ("Palestine", "PS"),
    ],
)
def test_country_aliases(typed: str, code: str) -> None:
    assert regions().intensity(typed).code == code


@pytest.mark.parametrize("continent", CONTINENTS)
def test_continent_rows(continent: str) -> None:
    entry = regions().intensity(continent)
    assert entry.kind == "continent" and entry.continent == continent and entry.name == continent
    assert regions().intensity(continent.lower().replace(" ", "-")) is entry
    assert "generation-weighted mean" in entry.source
    members = [r for r in _countries() if r.continent == continent and "continent value used" not in r.source]
    values = [r.carbon_intensity for r in members]
    assert min(values) <= entry.carbon_intensity <= max(values)  # a mean of its countries


def test_every_country_belongs_to_a_continent() -> None:
    for r in _countries():
        assert r.continent in (*CONTINENTS, "Antarctica"), r.code
    assert regions().intensity("AQ").continent == "Antarctica"
    assert regions().intensity("US").continent == "North America"
    assert regions().intensity("MX").continent == "North America"
    assert regions().intensity("BR").continent == "South America"
    assert regions().intensity("CY").continent == "Europe"
    assert regions().intensity("AU").continent == "Oceania"


def test_world_default_and_eu() -> None:
    world = regions().intensity("WORLD")
    assert world.kind == "world" and world.carbon_intensity == 458.29 and world.year == 2025
    assert regions().intensity("global") is world and regions().intensity("World") is world
    eu = regions().intensity("EU")
    assert eu.kind == "continent" and eu.continent == "Europe"
    assert regions().intensity("European Union") is eu
    members = ("AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
               "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE")  # fmt: skip
    values = [regions().intensity(c).carbon_intensity for c in members]
    assert min(values) < eu.carbon_intensity < max(values)


def test_countries_without_a_figure_take_their_continent_value_and_say_so() -> None:
    fallbacks = [r for r in _countries() if "continent value used" in r.source]
    assert {"AD", "LI", "MC", "SM", "VA", "MH", "PW", "TV", "CF"} <= {r.code for r in fallbacks}
    for r in fallbacks:
        continent = regions().intensity(r.continent)
        assert r.carbon_intensity == continent.carbon_intensity, r.code
        assert r.year == continent.year
        assert r.continent in r.source
    # Central African Republic: the dataset's 0 g/kWh is treated as missing, and the row says why
    assert "0 g/kWh" in regions().intensity("CF").source
    antarctica = regions().intensity("AQ")
    assert antarctica.carbon_intensity == regions().intensity("WORLD").carbon_intensity
    assert "world default" in antarctica.source


def test_figures_are_plausible_with_year_and_source_on_every_row() -> None:
    for r in regions():
        assert r.source.strip(), r.code
        assert 2000 <= r.year <= 2026, r.code
        assert r.name.strip(), r.code
        if r.code in KNOWN_OUTLIERS:
            assert 1200 < r.carbon_intensity < 1400 and "plausibility bound" in r.source
            continue
        assert 0 < r.carbon_intensity <= 1200, r.code


def test_published_anchors() -> None:
    """Spot checks against Ember/OWID as compiled upstream (docs/estimation.md)."""
    assert regions().intensity("France").carbon_intensity == pytest.approx(41.44)
    assert regions().intensity("Germany").carbon_intensity == pytest.approx(329.65)
    assert regions().intensity("Spain").carbon_intensity == pytest.approx(153.6)
    assert regions().intensity("United Kingdom").carbon_intensity == pytest.approx(217.41)
    assert regions().intensity("USA").carbon_intensity == pytest.approx(384.4)
    assert regions().intensity("China").carbon_intensity == pytest.approx(525.34)
    assert regions().intensity("India").carbon_intensity == pytest.approx(670.13)
    israel = regions().intensity("Israel")  # not in the upstream compilation; OWID energy dataset
    assert israel.year == 2022 and "CodeCarbon" in israel.source


def test_unknown_region_lists_the_closest_codes() -> None:
    with pytest.raises(UnknownEntry, match="unknown region 'Atlantis'; closest:"):
        regions().intensity("Atlantis")


def test_region_rows_and_json() -> None:
    table_rows = rows("regions")
    assert len(table_rows) == len(regions())
    by_code = {r["code"]: r for r in table_rows}
    assert by_code["AD"]["basis"] == "fallback: Europe"
    assert by_code["FR"]["basis"] == "dataset"
    assert by_code["EUROPE"]["basis"] == "generation-weighted mean"
    full = {e["code"]: e for e in as_json("regions")}
    assert "Deutschland" in full["DE"]["aliases"] and full["DE"]["carbon_intensity"] == pytest.approx(329.65)
