"""Pilot tests: the event log narrows by kind and level, searches with `/`, and follows the
newest line until the user scrolls up (f or End follows again)."""

from __future__ import annotations

from textual import events

from lwtui.session.replay import ReplaySession
from lwtui.ui.eventlog import KINDS

from .conftest import SIZE, make_app, next_tick, screen_text, started, wait_until
from .test_states import _routes_going_away


def _lines(log) -> list[str]:
    """The event lines on the log (its first line says what it shows)."""
    return [line.text for line in log.lines][1:]


async def test_the_log_narrows_by_level_kind_and_search(recording):
    """New flows from the demo, then the routes going away (errors)."""
    app = make_app(ReplaySession(recording[:30] + _routes_going_away(recording), start=25))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        for _ in range(8):
            await next_tick(pilot, app)
        await pilot.press("e")
        log = app.event_log
        kinds = [e.kind for e in log.entries]
        assert kinds.count("error") == 4 and "new" in kinds
        assert len(_lines(log)) == len(kinds)
        await pilot.press("l", "l")                                 # errors only
        assert [x.split()[1] for x in _lines(log)] == ["ERROR"] * 4
        assert "level error" in screen_text(app) and f"4 of {len(kinds)} shown" in screen_text(app)
        await pilot.press("l", "c")                                 # every level again; kind: new
        assert len(_lines(log)) == kinds.count("new") and all(x.split()[1] == "NEW" for x in _lines(log))
        for _ in range(len(KINDS) - 1):                             # round the kinds back to all
            await pilot.press("c")
        assert "kind all" in screen_text(app) and len(_lines(log)) == len(kinds)
        await pilot.press("slash", *"NAMESPACE gone", "enter")      # any case
        assert len(_lines(log)) == 3 and all("namespace gone" in x for x in _lines(log))
        assert app.focused is log and app.view == "events"
        await pilot.press("slash", "ctrl+u", "enter")               # empty clears
        assert len(_lines(log)) == len(kinds)
        await pilot.press("slash", "escape")                        # Esc closes the search line...
        assert app.focused is log and app.view == "events"
        await pilot.press("escape")                                 # ...and then goes back to the flows
        assert app.view == "flows"


async def test_the_log_follows_until_scrolled_up(replay):
    app = make_app(replay)
    async with app.run_test(size=(100, 14)) as pilot:
        await started(pilot, app)
        await pilot.press("d", "a", "d", "a")
        await next_tick(pilot, app)
        await pilot.press("e")
        log = app.event_log
        assert log.max_scroll_y > 3, "too few events to scroll: the test proves nothing"
        await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y, "the log at its newest line")
        assert log.follow
        assert "following the newest" in screen_text(app)
        await pilot.press("up", "up")
        assert not log.follow and "not following" in screen_text(app)
        where, lines = log.scroll_y, len(log.lines)
        replay.block("host 192.0.2.7")
        replay.allow("host 192.0.2.7")
        await next_tick(pilot, app)
        assert len(log.lines) == lines + 2
        assert log.scroll_y == where < log.max_scroll_y                 # new lines did not move the view
        await pilot.press("f")
        await pilot.pause()
        assert log.follow and log.scroll_y == log.max_scroll_y
        await pilot.press("f")
        assert not log.follow
        await pilot.press("end")
        await pilot.pause()
        assert log.follow and log.scroll_y == log.max_scroll_y
        bottom = log.scroll_y
        await pilot._post_mouse_events([events.MouseScrollUp], widget=log, offset=(2, 2))   # the wheel
        await pilot.pause()
        assert not log.follow and log.scroll_y < bottom           # it stops following and still scrolls
