"""Exact counts when several CPUs count one flow, and under LRU recycling.

Raw-socket senders pinned to different CPUs (os.sched_setaffinity) send on
one route through the `out` hook, where the program runs on the sender's
CPU. The oracle is what the senders sent.
"""

from __future__ import annotations

import os

import pytest

import packets as P
import rawnet
from conftest import _build, _reset
from kutil import flows, want

CPUS = sorted(os.sched_getaffinity(0))[:2]
N = 20000


def _two_cpus():
    if len(CPUS) < 2:
        pytest.fail("this test needs two CPUs to run senders on")


@pytest.mark.parametrize("family", [4, 6])
def test_two_cpus_on_one_five_tuple_count_exactly(probe, topo, on_route, family):
    _two_cpus()
    cli, srv = (topo.client_v4, topo.server_v4) if family == 4 else (topo.client_v6, topo.server_v6)
    on_route(probe, "out", family)
    ip = P.ipv4 if family == 4 else P.ipv6
    # one TCP 5-tuple; each CPU sets its own flags (SYN, FIN): neither may be lost
    syn = ip(cli, srv, P.TCP, P.tcp(42000, 9, P.SYN, b"a" * 100))
    fin = ip(cli, srv, P.TCP, P.tcp(42000, 9, P.FIN, b"b" * 300))
    sent = rawnet.send_pinned(topo.client_ns, srv, [(CPUS[0], syn, 0, 0, N), (CPUS[1], fin, 0, 0, N)])
    assert sent == [N, N]
    st = flows(probe)[want(cli, srv, P.TCP, 42000, 9)]
    assert (st.packets, st.bytes) == (2 * N, N * len(syn) + N * len(fin))
    assert st.tcp_flags == P.SYN | P.FIN
    s = probe.read_stats()
    assert (s["packets"], s["bytes"], s["new_flows"]) == (2 * N, N * len(syn) + N * len(fin), 1)


@pytest.fixture(scope="module")
def small_probe():
    """The programs with a 512-entry flow map."""
    p = _build(max_flows=512)
    yield p
    p.close()


def test_lru_recycling_never_moves_counts_to_another_flow(small_probe, topo, on_route):
    """Two CPUs storm 2 x 20,000 one-packet flows through a 512-entry map:
    every flow left in the map counts what was sent for it, no more, and the
    totals are what was sent."""
    _two_cpus()
    _reset(small_probe)
    cli, srv = topo.client_v4, topo.server_v4
    on_route(small_probe, "out", 4)
    tmpl = P.ipv4(cli, srv, P.UDP, P.udp(1, 7, b"s" * 20))
    sport_at = 20
    jobs = [(CPUS[0], tmpl, sport_at, 1, N), (CPUS[1], tmpl, sport_at, 30001, N)]
    sent = rawnet.send_pinned(topo.client_ns, srv, jobs)
    assert sent == [N, N]
    got = flows(small_probe)
    assert 0 < len(got) <= 512
    wrong = {k: v.packets for k, v in got.items() if v.packets != 1 or v.bytes != len(tmpl)}
    assert wrong == {}, f"{len(wrong)} flows count packets they were not sent"
    assert set(got) <= {want(cli, srv, P.UDP, port, 7) for port in list(range(1, N + 1)) + list(range(30001, 30001 + N))}
    s = small_probe.read_stats()
    assert (s["packets"], s["bytes"]) == (2 * N, 2 * N * len(tmpl))
    assert s["new_flows"] + s["flow_update_failed"] == 2 * N
