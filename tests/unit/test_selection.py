"""select_flows (lwtui/ui/selection.py): every flow by default, a cap on request, reversed sorts."""

from __future__ import annotations

import ipaddress

from lwtui.core.model import FlowId, FlowRecord
from lwtui.ui.selection import SORTS, select_flows

RATE = SORTS[0]


def rec(i: int, bps: float) -> FlowRecord:
    fid = FlowId("out", 17, ipaddress.ip_address("10.0.0.2"), 1000 + i, ipaddress.ip_address("10.0.0.3"), 53)
    return FlowRecord(id=fid, packets=1, bytes=1, tcp_flags=0, first_seen=0.0, last_seen=10.0, bps=bps)


def test_every_flow_is_selected_by_default_in_order():
    rows = [rec(i, float(i % 17)) for i in range(3000)]
    sel = select_flows(rows, now=10.0, sort=RATE)
    assert len(sel.rows) == sel.matched == 3000
    assert [r.bps for r in sel.rows] == sorted((r.bps for r in rows), reverse=True)


def test_reverse_turns_the_order_round_with_or_without_a_cap():
    rows = [rec(i, float(i)) for i in range(100)]
    assert [r.bps for r in select_flows(rows, now=10.0, sort=RATE, reverse=True).rows] == list(range(100))
    assert [r.bps for r in select_flows(rows, now=10.0, sort=RATE, reverse=True, limit=5).rows] == [0, 1, 2, 3, 4]
    assert [r.bps for r in select_flows(rows, now=10.0, sort=RATE, limit=5).rows] == [99, 98, 97, 96, 95]
