"""Pilot test: `n` in the rules view blocks a rule typed by hand, errors shown with a caret."""

from __future__ import annotations

from textual.widgets import Static

from lwtui.ui.dialogs import RuleScreen
from lwtui.ui.rulesview import RulesTable

from .conftest import SIZE, make_app, next_tick, screen_text, started, wait_until


async def test_n_in_the_rules_view_blocks_a_host_not_seen_yet(replay):
    app = make_app(replay)
    blocks = lambda: [c for c in replay.calls if c[0] == "block"]  # noqa: E731
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("n")                              # only in the rules view
        assert not isinstance(app.screen, RuleScreen)
        await pilot.press("r")
        assert "No active rules" in screen_text(app) and "n types one" in screen_text(app)
        await pilot.press("n")
        assert isinstance(app.screen, RuleScreen)
        await pilot.press(*"host 10.0.0.9/33", "enter")
        assert isinstance(app.screen, RuleScreen) and blocks() == []
        await wait_until(pilot, lambda: "prefix length must be a number 0..32" in screen_text(app), "the error")
        error = app.screen.query_one("#rule-error", Static).content
        assert str(error).splitlines() == ["IPv4 prefix length must be a number 0..32, got '33'",
                                           "host 10.0.0.9/33", " " * len("host 10.0.0.9/") + "^^"]
        assert "^^" in screen_text(app)
        await pilot.press("ctrl+u", *"host 10.0.0.9", "enter")
        assert not isinstance(app.screen, RuleScreen)
        assert blocks() == [("block", "host 10.0.0.9", None)]
        assert app.notes[-1][2] == "blocked host 10.0.0.9 — x removes it"
        await next_tick(pilot, app)
        assert app.query_one(RulesTable).selected_text == "host 10.0.0.9"
        await pilot.press("t", *"60", "enter")             # here t is the selected rule's TTL
        assert replay.calls[-1] == ("set_ttl", "host 10.0.0.9", 60.0)
        await pilot.press("n", *"port 53/udp", "enter")
        assert blocks()[-1] == ("block", "port 53/udp", None)
        await pilot.press("n", "escape")                    # Esc blocks nothing
        assert not isinstance(app.screen, RuleScreen) and len(blocks()) == 2
