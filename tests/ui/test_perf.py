"""The dashboard at 10,000 flows holds every flow in order (the table draws only
the rows on screen) and keeps them in order as every counter changes. Its cost is measured in bench/ (benchmarks,
not timed tests: these machines are shared and noisy)."""

from __future__ import annotations

import ipaddress

from lwtui.core.model import FlowId, FlowRecord, Snapshot, Totals
from lwtui.session.replay import ReplaySession

from .conftest import SIZE, make_app, next_tick, started

N_FLOWS = 10_000


def many_flows(n: int, now: float, step: int) -> Snapshot:
    """n distinct flows whose rates all change between steps (a worst case for diffs)."""
    flows = []
    base = int(ipaddress.ip_address("10.1.0.0"))
    for i in range(n):
        fid = FlowId("out", 6 if i % 3 else 17, ipaddress.ip_address(base + i // 200), 30000 + i % 200,
                     ipaddress.ip_address("10.0.0.3"), 8080 + i % 7)
        pps = float((i * 7919 + step * 104729) % 5000)
        flows.append(FlowRecord(id=fid, packets=int(pps) * (step + 3), bytes=int(pps) * 900 * (step + 3),
                                tcp_flags=0x12, first_seen=now - 30, last_seen=now - (i % 9),
                                pps=pps, bps=pps * 900 * 8, history=tuple(pps * 7200 for _ in range(30))))
    return Snapshot(time=now, flows=flows, totals=Totals(active_flows=n, flow_capacity=65536),
                    started=now - 60, session="perf")


async def test_ten_thousand_flows_are_all_in_the_table_in_order():
    frames = [many_flows(N_FLOWS, 1767268800.0 + s, s) for s in range(3)]
    app = make_app(ReplaySession(frames))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert len(app.flow_ids) == N_FLOWS and "showing top" not in str(
            app.query_one("#table-note").render())
        assert app.flow_table.rows_built < 100, "only the rows on screen are built"
        for _ in range(2):                           # every row's counters change
            await next_tick(pilot, app)
        order = [app.record(f).bps for f in app.flow_ids]
        assert order == sorted(order, reverse=True)
        assert order[0] == max(f.bps for f in app.shown.flows)
        assert len(app.apply_seconds) == 3
