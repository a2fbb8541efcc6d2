"""The dashboard on a live session built with every kernel feature hidden
(LWTUI_HIDE_FEATURES=all, the paths older kernels take): the header says
FALLBACK, a flow counts exactly the datagrams a socket sent, and no own-cost
figure is shown."""

from __future__ import annotations

import asyncio

from lwtui.kernel import features
from lwtui.ui.app import DashboardApp

from .conftest import screen_text
from .test_live import INTERVAL, UDP, run_app, start_session, udp_from, within_refreshes  # noqa: F401 (fixture)


def test_header_says_fallback_and_counts_stay_exact(topo, start_session, monkeypatch):  # noqa: F811
    monkeypatch.setenv(features.HIDE_ENV, "all")
    session = start_session()
    assert session.fallbacks == ["coarse_clock", "batch", "run_stats", "gso_segs", "bounded_loops"]
    app = DashboardApp(session, interval=INTERVAL)

    async def scenario(pilot):
        assert await asyncio.to_thread(udp_from, topo.client_ns, 20) == 20
        await within_refreshes(pilot, app, lambda: app.record(UDP) is not None and app.record(UDP).packets == 20,
                               "the UDP flow with 20 packets")
        assert app.header.state.snapshot.fallbacks == tuple(session.fallbacks)
        assert " FALLBACK coarse_clock,batch" in screen_text(app)
        # no run-time statistics: no own-cost figure, rather than a made-up one
        assert app.header.state.snapshot.totals.bpf_runtime == () and "ns/pkt" not in screen_text(app)

    run_app(app, scenario)
