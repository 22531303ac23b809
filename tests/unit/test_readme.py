"""The README's configuration table is the settings' own documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from sustainml.config import SETTINGS_DOC, ConfigError, Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    text = README.read_text(encoding="utf-8")
    for var, default, meaning in SETTINGS_DOC:
        assert (
            f"| `{var}` | `{default}` | {meaning} |" in text or f"| `{var}` | {default} | {meaning} |" in text
        ), var


def test_settings_come_from_the_environment_and_bad_values_name_the_variable() -> None:
    s = Settings.from_env({"SUSTAINML_NAMESPACE": "prod-eu", "SUSTAINML_RPC_TIMEOUT": "2.5"})
    assert s.namespace == "prod-eu" and s.rpc_timeout == 2.5
    with pytest.raises(ConfigError, match="SUSTAINML_PREFETCH"):
        Settings.from_env({"SUSTAINML_PREFETCH": "many"})
    with pytest.raises(ConfigError, match="SUSTAINML_NAMESPACE"):
        Settings.from_env({"SUSTAINML_NAMESPACE": "a.b"})
    with pytest.raises(ConfigError, match="SUSTAINML_QUEUE_TYPE"):
        Settings.from_env({"SUSTAINML_QUEUE_TYPE": "stream"})
