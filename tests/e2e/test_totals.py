"""Session totals count each packet once: `--hook out,xmit` on one route sees
every packet at both hooks, and the totals still equal what was sent."""

from __future__ import annotations

import os

from tests.e2e.cli import lwtui_env, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import udp_send


def test_out_and_xmit_on_one_route_count_each_packet_once(topo, watch):
    srv = topo.server_v4
    w = watch(f"{srv}/32", "--netns", topo.client_ns, "--hook", "out,xmit", "--interval", "0.3",
              "--duration", "120", "--session", f"t{os.getpid()}x")
    n = 100
    sport, sent = udp_send(topo.client_ns, srv, 5353, n, 200)
    assert sent == n
    for hook in ("out", "xmit"):  # each hook keeps its own figures
        w.wait_for(lambda d: d["type"] == "flow" and d["hook"] == hook and d.get("sport") == sport
                   and d["packets"] == n, what=f"the flow at {hook}")
    first = w.wait_for(lambda d: d["type"] == "stats" and d["packets"] >= n, what="totals with every packet")
    assert (first["packets"], first["bytes"]) == (n, n * 228)
    later = w.wait_for(lambda d: d["type"] == "stats" and d["time"] > first["time"], what="a later stats line")
    assert later["packets"] == n
    w.stop()
