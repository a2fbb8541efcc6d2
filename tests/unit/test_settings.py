"""The settings file: defaults when missing, a round trip, warnings (never errors) when bad."""

from __future__ import annotations

from lwtui.core.settings import Settings, load_settings, save_settings, settings_path


def test_missing_file_is_the_defaults_without_a_word(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert settings_path() == tmp_path / "lwtui" / "settings.json"
    assert load_settings() == (Settings(), None)


def test_round_trip(tmp_path):
    path = tmp_path / "d" / "settings.json"
    assert save_settings(Settings(theme="nord", sort="bytes", interval=2), path) is None
    assert load_settings(path) == (Settings(theme="nord", sort="bytes", interval=2.0), None)
    assert not list(path.parent.glob("*.tmp"))


def test_bad_values_are_dropped_one_by_one(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"theme": "nord", "sort": 7, "interval": true, "colour": 1}')
    settings, warning = load_settings(path)
    assert settings == Settings(theme="nord")
    assert "sort must be a name, got 7" in warning and "interval must be" in warning and "unknown keys colour" in warning


def test_unreadable_file_and_unwritable_place_are_warnings(tmp_path):
    (tmp_path / "settings.json").mkdir()                     # a directory where the file should be
    settings, warning = load_settings(tmp_path / "settings.json")
    assert settings == Settings() and "using the defaults" in warning
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "could not remember the settings" in save_settings(Settings(sort="age"), blocker / "settings.json")
