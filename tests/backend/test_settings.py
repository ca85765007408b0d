"""One configuration: environment over the settings file over the defaults; every setting documented."""

from pathlib import Path

import pytest

from backend import settings

ROOT = Path(__file__).resolve().parents[2]


def test_environment_beats_the_file_which_beats_the_default(tmp_path, monkeypatch):
    config = tmp_path / "lab.toml"
    config.write_text('listen_address = "0.0.0.0"\nport = 9000\nembedded_worker = false\n'
                      f'data_roots = ["{tmp_path / "data"}"]\n')
    monkeypatch.setenv("TRANSFERLAB_CONFIG", str(config))
    monkeypatch.delenv("TRANSFERLAB_DATA_ROOTS", raising=False)
    assert settings.get("listen_address") == "0.0.0.0" and settings.get("port") == 9000
    assert settings.get("embedded_worker") is False and settings.data_roots() == [(tmp_path / "data").resolve()]
    monkeypatch.setenv("TRANSFERLAB_PORT", "9100")
    monkeypatch.setenv("TRANSFERLAB_EMBEDDED_WORKER", "1")
    assert settings.get("port") == 9100 and settings.get("embedded_worker") is True
    assert settings.get("device") == "auto"  # in neither: the default


def test_defaults_listen_on_localhost_and_follow_the_var_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_VAR", str(tmp_path / "v"))
    monkeypatch.delenv("TRANSFERLAB_DATA_ROOTS", raising=False)
    assert settings.get("listen_address") == "127.0.0.1"
    assert settings.get("database_url") == f"sqlite:///{tmp_path / 'v' / 'transferlab.db'}"
    assert settings.artifacts_dir() == tmp_path / "v" / "artifacts"
    assert settings.data_roots()[0] == (tmp_path / "v").resolve()


def test_a_bad_value_names_the_setting(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_PORT", "eighty")
    with pytest.raises(ValueError, match="TRANSFERLAB_PORT"):
        settings.get("port")


def test_the_readme_lists_every_setting_and_make_run_uses_them():
    readme = (ROOT / "README.md").read_text()
    missing = [s.env for s in settings.SETTINGS.values() if f"`{s.env}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
    assert "backend.settings streamlit-flags" in (ROOT / "Makefile").read_text()
