"""Pilot tests: y/Y copy the selected flow, the palette exports flows, rules and events and saves
screenshots into a directory that exists, and says where."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from .conftest import SIZE, make_app, next_tick, screen_text, started, wait_until
from .test_keys import BULK


@pytest.fixture
def state_home(tmp_path, monkeypatch) -> Path:
    """A fresh $XDG_STATE_HOME whose lwtui directory does not exist yet."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state" / "lwtui"


async def _palette(pilot, app, words: str, shown: str) -> None:
    """Type into the command palette, wait for the command's help text, run it."""
    await pilot.press("ctrl+p", *words)
    await wait_until(pilot, lambda: shown in screen_text(app), f"{shown!r} in the palette")
    await pilot.press("enter")


def _written(app, title: str) -> Path:
    note = next(n for n in reversed(app.notes) if n[1] == title)
    return Path(note[2].split(" to ", 1)[1].strip())


async def test_y_copies_the_flow_as_a_rule_and_shift_y_its_endpoints(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.selected_flow == BULK
        await pilot.press("y")
        assert app.clipboard == "flow tcp 10.0.0.2:45678 10.0.0.3:5201"
        assert app.notes[-1][1:] == ("copied", "copied the rule: flow tcp 10.0.0.2:45678 10.0.0.3:5201\n"
                                               "(Y copies the endpoints)")
        await pilot.press("Y")
        assert app.clipboard == "10.0.0.2:45678 10.0.0.3:5201"
        assert app.notes[-1][2] == "copied the endpoints: 10.0.0.2:45678 10.0.0.3:5201"


async def test_palette_exports_the_shown_flows_as_csv_and_json(replay, state_home):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("slash", *"port 8080", "enter")
        shown = {(f.hook, str(f.src), f.sport, str(f.dst), f.dport): app.record(f) for f in app.flow_ids}
        assert 0 < len(shown) < len(app.shown.flows)        # what the filter left, not every flow
        await _palette(pilot, app, "export flows as csv", "the flow table (as shown: filtered, sorted) to a CSV file")
        await wait_until(pilot, lambda: app.notes and app.notes[-1][1] == "exported", "the export")
        path = _written(app, "exported")
        assert path.parent == state_home and path.suffix == ".csv" and app.notes[-1][2].startswith(f"{len(shown)} flows")
        rows = list(csv.DictReader(path.open()))
        key = lambda r: (r["hook"], r["src"], int(r["sport"]), r["dst"], int(r["dport"]))  # noqa: E731
        assert [key(r) for r in rows] == list(shown)                         # in the table's order
        for r in rows:
            rec = shown[key(r)]
            assert (int(r["packets"]), int(r["bytes"]), r["verdict"]) == (rec.packets, rec.bytes, rec.verdict)
        await app.run_action("export('flows', 'json')")
        await pilot.pause()
        data = json.loads(_written(app, "exported").read_text())
        assert [(d["src"], d["sport"]) for d in data] == [(r["src"], int(r["sport"])) for r in rows]
        assert data[0]["first_seen"].endswith("Z")


async def test_palette_exports_rules_and_the_event_log(replay, state_home):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("p")
        await next_tick(pilot, app)
        await _palette(pilot, app, "export rules as json", "the active rules to a JSON file")
        await wait_until(pilot, lambda: app.notes[-1][1] == "exported", "the export")
        rules = json.loads(_written(app, "exported").read_text())
        assert [(r["rule"], r["kind"]) for r in rules] == [("port 5201/tcp", "port")]
        assert app.notes[-1][2].startswith("1 rule written to ")
        await _palette(pilot, app, "export events as csv", "the event log to a CSV file")
        await wait_until(pilot, lambda: app.notes[-1][1] == "exported", "the export")
        events = list(csv.DictReader(_written(app, "exported").open()))
        assert len(events) == len(app.event_log.entries) > 0
        assert [e["text"] for e in events] == [e.text for e in app.event_log.entries]
        assert {e["level"] for e in events} <= {"info", "warning", "error"}


async def test_palette_screenshot_is_saved_where_it_says(replay, state_home):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await _palette(pilot, app, "screenshot", "Save an SVG")
        await wait_until(pilot, lambda: any(n[1] == "Screenshot" for n in app.notes), "the screenshot")
        path = Path(next(n for n in app.notes if n[1] == "Screenshot")[2].removeprefix("saved to "))
        assert path.parent == state_home and path.suffix == ".svg"
        assert "<svg" in path.read_text() and "10.0.0.2:45678" in path.read_text().replace("&#160;", " ")
