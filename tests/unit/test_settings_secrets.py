"""Secrets from files (``WMSJ_<NAME>_FILE``, e.g. compose or Kubernetes secrets) and the
refusal of development secrets outside development mode (shared/settings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import InsecureSettings, insecure_settings, read_secret_files


def test_a_secret_file_fills_its_variable(tmp_path: Path) -> None:
    (tmp_path / "pii").write_text("key-from-file\n", encoding="utf-8")
    environ = {"WMSJ_PII_KEY_FILE": str(tmp_path / "pii"), "OTHER_FILE": "/nonexistent"}
    assert read_secret_files(environ) == ["WMSJ_PII_KEY"]
    assert environ["WMSJ_PII_KEY"] == "key-from-file"


def test_a_variable_set_directly_wins_over_its_file(tmp_path: Path) -> None:
    (tmp_path / "pii").write_text("from-file", encoding="utf-8")
    environ = {"WMSJ_PII_KEY_FILE": str(tmp_path / "pii"), "WMSJ_PII_KEY": "direct"}
    assert read_secret_files(environ) == []
    assert environ["WMSJ_PII_KEY"] == "direct"


def test_an_unreadable_secret_file_stops_the_start_naming_the_variable() -> None:
    with pytest.raises(InsecureSettings, match="WMSJ_API_KEYS_FILE: cannot read"):
        read_secret_files({"WMSJ_API_KEYS_FILE": "/nonexistent/keys.json"})


def test_a_placeholder_read_from_a_file_is_refused_like_any_other(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text('{"change-me-office-key": "office"}', encoding="utf-8")
    environ = {"WMSJ_MODE": "production", "WMSJ_API_KEYS_FILE": str(tmp_path / "keys")}
    read_secret_files(environ)
    assert any("placeholder" in problem for problem in insecure_settings(environ, pii=False))
