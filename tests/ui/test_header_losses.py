"""The header counts lost events once: the programs' failed outputs and the
perf reader's lost callback report the same losses."""

from __future__ import annotations

from lwtui.core.model import Snapshot, Totals
from lwtui.ui.header import totals_text


def test_lost_events_are_shown_once():
    for failed, lost, shown in ((40, 40, 40), (40, 0, 40), (0, 12, 12), (0, 0, 0)):
        text = totals_text(Snapshot(time=0.0, totals=Totals(events_failed=failed, events_lost=lost))).plain
        assert f"{shown} events lost" in text, (failed, lost, text)
