"""Every flow is found by the map read, and a full map's losses are counted exactly.

A Session on the client's route with a 1,024-entry flow map. Distinct UDP
flows (one datagram each) from the client namespace: first fewer than the
map holds, then several times more with no refresh in between, so the
kernel's LRU evicts flows no read ever saw. The oracle is the sender's list
of the flows it sent (source port, destination ports, failed sends) and the
map itself walked key by key (BPF_MAP_GET_NEXT_KEY, not the batch read the
session uses): what the session reports as evicted and as never shown must
equal what is missing, to the flow.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

from lwtui.cli.watch import stats_json
from lwtui.kernel import bpfsys, kstructs, pins
from lwtui.net.routes import Target
from lwtui.session import state
from lwtui.session.live import Session
from tests.e2e.cli import lwtui_env  # noqa: F401 (a fixture)
from tests.e2e.traffic import nsrun

MAP = 1024
SEND = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
first, n = int(sys.argv[1]), int(sys.argv[2])
failed = []
for port in range(first, first + n):
    try:
        s.sendto(b"x", ("10.0.0.3", port))
    except OSError:
        failed.append(port)
print(json.dumps({"sport": s.getsockname()[1], "ports": [p for p in range(first, first + n) if p not in failed]}))
"""


@pytest.fixture
def session(topo, lwtui_env, monkeypatch):
    monkeypatch.setattr(state, "RUN_DIR", lwtui_env.run_dir)
    monkeypatch.setattr(pins, "PIN_ROOT", lwtui_env.pin_root)
    s = Session([Target(prefix="10.0.0.3/32", hook="out", netns=topo.client_ns)], name=f"loss-{os.getpid()}",
                max_flows=MAP)
    s.start()
    yield s
    s.close()


def send(ns: str, first: int, n: int) -> set[tuple[int, int]]:
    """(sport, dport) of each datagram that left the socket."""
    out = json.loads(nsrun(ns, [sys.executable, "-c", SEND, str(first), str(n)], timeout=60, check=True).stdout)
    return {(out["sport"], p) for p in out["ports"]}


def shown(snap) -> dict[tuple[int, int], int]:
    """(sport, dport) -> packets of the UDP rows to 10.0.0.3 the table holds with counters."""
    return {(r.id.sport, r.id.dport): r.packets for r in snap.flows
            if r.id.proto == 17 and str(r.id.dst) == "10.0.0.3" and r.packets > 0}


def in_map(sess) -> set[tuple[int, int]]:
    return {(k.sport, k.dport) for k in bpfsys.map_keys(sess.probe.map_fd("flows"), kstructs.FlowKey)
            if k.proto == 17}


def test_every_flow_found_then_a_full_maps_losses_counted_to_the_flow(topo, session):
    first = send(topo.client_ns, 20000, 300)          # room for all
    assert len(first) >= 290
    snap = session.snapshot()
    seen1 = shown(snap)
    assert seen1 == {f: 1 for f in first}, "every flow sent is in the table with its one packet"
    t = snap.totals
    assert (t.new_flows, t.flows_evicted, t.flows_unseen, t.flow_update_failed) == (len(first), 0, 0, 0)

    second = send(topo.client_ns, 30000, 6 * MAP)     # six times the map, no refresh in between
    sent = first | second
    assert len(second) >= 5 * MAP and not first & second
    snap = session.snapshot()
    seen2 = shown(snap)
    assert all(seen2[f] == 1 for f in seen2), "a flow shown is shown with its exact count"
    held = in_map(session)
    assert held and len(held) <= MAP and held <= sent
    ever = set(seen1) | set(seen2)
    t = snap.totals
    assert t.new_flows == len(sent) and t.flow_update_failed == 0, "an LRU map evicts, it never refuses"
    assert t.flows_evicted == len(sent) - len(held) > 0
    assert held <= ever, "every flow the map holds is in the table: the read misses none"
    assert t.flows_unseen == len(sent - ever) > 0, "the flows no read saw, to the flow"
    line = stats_json(t, snap.time)
    assert (line["flows_evicted"], line["flows_unseen"]) == (t.flows_evicted, t.flows_unseen)
    print(f"\nsent {len(sent)}, shown {len(ever)}, in map {len(held)}: evicted {t.flows_evicted}, "
          f"never shown {t.flows_unseen}")
