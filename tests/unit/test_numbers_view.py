"""What the views make of the numbers: watch's JSON records of a stopping flow, and the
detail chart's stacking of dropped on passed bits (pure: no kernel, no terminal)."""

from __future__ import annotations

import io
import ipaddress
import json

from lwtui.cli.watch import JsonReporter
from lwtui.core.model import FlowId, FlowRecord, Snapshot
from lwtui.ui.chart import stacked_chart

F = FlowId("out", 17, ipaddress.ip_address("10.0.0.2"), 40000, ipaddress.ip_address("10.0.0.3"), 53)


def lines(reporter: JsonReporter, out: io.StringIO, rec: FlowRecord, t: float) -> list[dict]:
    out.seek(0)
    out.truncate()
    reporter.report(Snapshot(time=t, flows=[rec]))
    return [d for d in map(json.loads, out.getvalue().splitlines()) if d["type"] == "flow"]


def test_a_stopping_flow_gets_one_more_record_with_rates_zero():
    out = io.StringIO()
    rep = JsonReporter(out)
    rec = lambda packets, pps, drops=0, dps=0.0: FlowRecord(F, packets=packets, bytes=packets * 128,
                                                            drops=drops, pps=pps, bps=pps * 1024, drops_ps=dps)
    assert [d["pps"] for d in lines(rep, out, rec(50, 50.0), 1.0)] == [50.0]
    assert lines(rep, out, rec(50, 33.3), 2.0) == []              # no packet since: no record while it decays
    idle = lines(rep, out, rec(50, 0.0), 3.0)
    assert [(d["packets"], d["pps"], d["bps"], d["drop_pps"], d["would_drop_pps"]) for d in idle] == \
        [(50, 0.0, 0.0, 0.0, 0.0)]
    assert lines(rep, out, rec(50, 0.0), 4.0) == []               # once
    blocked = lines(rep, out, rec(80, 0.0, drops=30, dps=30.0), 5.0)
    assert [(d["drops"], d["would_drops"], d["pps"], d["drop_pps"]) for d in blocked] == [(30, 0, 0.0, 30.0)]


def test_stacked_chart_puts_drops_on_top_of_what_passed():
    rows = stacked_chart([8.0, 8.0, 0.0], [0.0, 8.0, 16.0], width=3, height=2, top=16.0)
    # One level per unit: 8 passed fills the lower cell; 8 dropped the upper one.
    assert [[part for _, part in row] for row in rows] == [["", "drop", "drop"], ["pass", "pass", "drop"]]
    assert "".join(c for c, _ in rows[1]) == "███"


def test_stacked_chart_shows_a_trickle_of_drops():
    rows = stacked_chart([100.0], [0.001], width=1, height=1)
    assert rows == [[("▇", "split")]]                 # the top level of a full column goes to the drops
    assert stacked_chart([0.0], [0.001], width=1, height=2, top=100.0) == [[(" ", "")], [("▁", "drop")]]
