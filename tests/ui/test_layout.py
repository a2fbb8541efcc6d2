"""Pilot tests: where things go. Toasts cover neither the rate chart nor the filter line;
at 80x24 the footer keeps `? help` and `q quit`, the header keeps the uptime and the
totals line, the help box fits and scrolls."""

from __future__ import annotations

import re

from textual.widgets import Input
from textual.widgets._toast import Toast

from lwtui.core.model import Snapshot, Totals
from lwtui.ui.detail import RateChart
from lwtui.ui.header import totals_text

from .conftest import SIZE, make_app, screen_text, started, wait_until


def overlaps(a, b) -> bool:
    return bool(a.overlaps(b))


async def test_toasts_cover_neither_the_chart_nor_the_filter_line(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot, app)
        await pilot.press("slash")
        for i in range(3):
            app.notify(f"a notification with a long text, number {i}, to take room", timeout=30)
        await wait_until(pilot, lambda: len(app.screen.query(Toast)) == 3, "three toasts")
        await pilot.pause()
        chart = app.query_one(RateChart).region
        field = app.query_one("#filter-input", Input).region
        assert chart.area and field.area
        for toast in app.screen.query(Toast):
            assert not overlaps(toast.region, chart), (toast.region, chart)
            assert not overlaps(toast.region, field), (toast.region, field)
            assert toast.region.y >= 4          # under the header and the note line


async def test_80x24_keeps_the_footer_keys_uptime_totals_and_help(replay):
    app = make_app(replay)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        lines = [x for x in screen_text(app).splitlines() if x.strip()]
        assert re.search(r"up \d+s", lines[0]) and "Events" in lines[0]
        assert lines[1].startswith(" routes ") and lines[1].endswith("…")      # cut, not wrapped
        assert "0 events lost" in lines[2] and "0 parse errors" in lines[2]
        head = next(x for x in lines if "source" in x and "destination" in x)
        assert head.lstrip().startswith("hook")         # one flow at two hooks is two rows told apart
        assert "? help" in lines[-1] and "q quit" in lines[-1] and "⏎ detail" in lines[-1]
        for view, keys in (("r", ("x remove rule", "n new rule", "t rule TTL", "q quit")),
                           ("v", ("v group", "q quit")), ("e", ("q quit",))):
            await pilot.press(view)
            await pilot.pause()
            footer = screen_text(app).splitlines()[-1]
            assert all(k in footer for k in keys), (view, footer)
            await pilot.press("escape")
        await pilot.press("question_mark")
        await pilot.pause()
        box = app.screen.query_one("#help-box")
        assert box.region.width <= 80 and box.region.height <= 24
        assert box.max_scroll_y > 0                  # the rest is a scroll away, not cut
        text = screen_text(app)
        assert "rule and how many flows it matches now" in text     # a long line wraps inside the box


def test_the_compact_totals_keep_events_lost_within_80_columns_when_busy():
    """Busy, with the own-cost figure: the full line puts events lost past 80 columns, the
    compact one inside them. In dry-run with a full flow table the warning comes first (the
    line's end is what a narrow terminal cuts)."""
    totals = Totals(pps=123_456, bps=9.87e9, drops_ps=45_678, parse_errors=1234, events_lost=5678,
                    active_flows=65_000, flow_capacity=100_000,
                    bpf_runtime=(("out", 10_000_000, 100_000), ("in", 10_000_000, 100_000)))
    snap = Snapshot(time=0.0, totals=totals)
    wide, compact = totals_text(snap).plain, totals_text(snap, compact=True).plain
    assert wide.index("events lost") + len("events lost") > 80
    assert compact.index("events lost") + len("events lost") <= 80 and "parse errors" in compact
    full = Snapshot(time=0.0, totals=Totals(active_flows=4096, flow_capacity=4096, would_drops_ps=3), dry_run=True)
    assert totals_text(full, compact=True).plain.startswith("  FLOW TABLE FULL (4.1k)   0 pkts/s")
