"""Pilot tests: the dashboard's words. One TTL range with the CLI, "1 flow" not "1 flows"."""

from __future__ import annotations

import dataclasses
import re

from textual.widgets import Static

from lwtui.core.rules import TTL_MAX
from lwtui.session.replay import ReplaySession
from lwtui.ui.dialogs import TtlScreen

from .conftest import SIZE, make_app, screen_text, started


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


async def test_one_of_a_kind_is_singular_in_the_header_and_the_detail_pane(recording):
    snap = recording[30]
    flow = dataclasses.replace(snap.flows[0], packets=1)
    totals = dataclasses.replace(snap.totals, active_flows=1, parse_errors=1, events_lost=1, events_failed=1)
    app = make_app(ReplaySession([dataclasses.replace(snap, flows=[flow], totals=totals)]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        text = screen_text(app)      # (the SVG's text runs, without the spaces between them)
        for words in (r"(?<![0-9.])1 active flow(?!s)", r"(?<![0-9.])1 parse error(?!s)", r"(?<![0-9.])1 event lost", r"counters\s*1 pkt\b"):
            assert re.search(words, text), words
