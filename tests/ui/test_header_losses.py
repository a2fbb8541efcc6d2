"""The header counts lost events once: the programs' failed outputs and the
perf reader's lost callback report the same losses."""

from __future__ import annotations

from lwtui.core.model import Snapshot, Totals
from lwtui.ui.header import totals_text


def test_lost_events_are_shown_once():
    for failed, lost, shown in ((40, 40, 40), (40, 0, 40), (0, 12, 12), (0, 0, 0)):
        text = totals_text(Snapshot(time=0.0, totals=Totals(events_failed=failed, events_lost=lost))).plain
        assert f"{shown} events lost" in text, (failed, lost, text)


def test_a_full_flow_map_shows_evicted_and_never_shown_flows():
    quiet = totals_text(Snapshot(time=0.0, totals=Totals(new_flows=50))).plain
    assert "evicted" not in quiet and "never shown" not in quiet     # a map with room says nothing
    text = totals_text(Snapshot(time=0.0, totals=Totals(new_flows=9000, flows_evicted=5000, flows_unseen=3100))).plain
    assert "5.0k flows evicted" in text and "3.1k never shown" in text, text
    compact = totals_text(Snapshot(time=0.0, totals=Totals(flows_evicted=5000, flows_unseen=3100)), compact=True).plain
    assert "5.0k evicted" in compact and "3.1k unseen" in compact, compact
