"""Pilot tests: the dashboard's words. One TTL range with the CLI, "1 flow" not "1 flows"."""

from __future__ import annotations

import dataclasses

from textual.widgets import Static

from lwtui.core.rules import TTL_MAX
from lwtui.session.replay import ReplaySession
from lwtui.ui.dialogs import TtlScreen

from .conftest import SIZE, make_app, started


async def test_ttl_dialog_takes_the_clis_range(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        for bad in ("0.5", str(TTL_MAX + 1)):
            await pilot.press("t", *bad, "enter")
            assert isinstance(app.screen, TtlScreen)
            assert str(app.screen.query_one("#ttl-error", Static).content) == \
                f"{bad!r}: give a number of seconds between 1 and 604800"
            await pilot.press("escape")
        await pilot.press("t", *str(TTL_MAX), "enter")
        assert not isinstance(app.screen, TtlScreen) and app.next_ttl == TTL_MAX


async def test_one_flow_is_one_flow(recording):
    one = dataclasses.replace(recording[30], flows=recording[30].flows[:1])
    app = make_app(ReplaySession([one]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert str(app.query_one("#table-note", Static).content).startswith(" 1 flow · sorted by rate")
