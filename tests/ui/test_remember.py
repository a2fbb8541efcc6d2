"""Pilot tests: theme, sort and interval remembered in $XDG_CONFIG_HOME/lwtui/settings.json;
a bad file gives a warning and the defaults, never a crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lwtui.ui.app import DashboardApp

from .conftest import SIZE, started, wait_until


@pytest.fixture
def settings_file() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "lwtui" / "settings.json"


def _app(session, interval=None) -> DashboardApp:
    return DashboardApp(session, interval=interval, autotick=False, remember=True)


async def test_sort_theme_and_interval_are_remembered(replay, settings_file):
    app = _app(replay, interval=0.5)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert json.loads(settings_file.read_text()) == {"theme": app.theme, "sort": "rate", "interval": 0.5}
        await pilot.press("s", "s")
        app.theme = "nord"
        await wait_until(pilot, lambda: json.loads(settings_file.read_text()).get("theme") == "nord", "the theme saved")
        assert json.loads(settings_file.read_text()) == {"theme": "nord", "sort": "bytes", "interval": 0.5}
    again = _app(replay)                                   # no --interval: the remembered one
    async with again.run_test(size=SIZE) as pilot:
        await started(pilot, again)
        assert (again.theme, again.interval) == ("nord", 0.5)
        assert again.flow_ids == sorted(again.flow_ids, key=lambda f: -again.record(f).bytes)
        assert "sorted by bytes" in str(again.query_one("#table-note").content)
        assert not [n for n in again.notes if n[1] == "settings"]


@pytest.mark.parametrize("text,says", [
    ("{not json", "Expecting property name"),
    ('["a list"]', "not a JSON object"),
    ('{"theme": "no-such-theme", "sort": "colour", "interval": -3}', "interval must be 0.05..3600 seconds"),
])
async def test_a_bad_settings_file_warns_and_uses_the_defaults(replay, settings_file, text, says):
    settings_file.parent.mkdir(parents=True)
    settings_file.write_text(text)
    app = _app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        warnings = [n for n in app.notes if n[1] == "settings"]
        assert warnings and all(n[0] == "warning" for n in warnings)
        assert any(says in n[2] and str(settings_file) in n[2] for n in warnings), warnings
        assert app.interval == 1.0 and app.sort_index == 0 and app.theme == "textual-dark"
        if "no-such-theme" in text:
            assert any("unknown theme 'no-such-theme'" in n[2] for n in warnings)
            assert any("unknown sort 'colour'" in n[2] for n in warnings)
        await pilot.press("s")
    assert json.loads(settings_file.read_text())["sort"] == "pkts/s"     # rewritten with what is good


async def test_nothing_is_written_until_something_is_chosen(replay, settings_file):
    app = _app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.interval == 1.0 and not settings_file.exists()
        await pilot.press("s")
        assert json.loads(settings_file.read_text()) == {"theme": app.theme, "sort": "pkts/s"}   # no interval
