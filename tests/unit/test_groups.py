"""Flows grouped by remote host, service port and process (lwtui/core/groups.py): every
sum and average against the packets and bytes the test itself makes each flow send."""

from __future__ import annotations

import ipaddress

import pytest

from lwtui.core.groups import Groups, port_key, service_name
from lwtui.core.model import FlowId, FlowRecord, Owner

A = ipaddress.ip_address


def fid(hook, proto, src, sport, dst, dport, fragment=False) -> FlowId:
    return FlowId(hook, proto, A(src), sport, A(dst), dport, fragment=fragment) if fragment else \
        FlowId(hook, proto, A(src), sport, A(dst), dport)


WEB_OUT = fid("out", 6, "10.0.0.2", 40000, "10.0.0.3", 8080)
WEB_IN = fid("in", 6, "10.0.0.3", 8080, "10.0.0.2", 40000)        # the replies: remote is the source
DNS = fid("out", 17, "10.0.0.2", 40001, "10.0.0.4", 53)
PING = fid("out", 1, "10.0.0.2", 8, "10.0.0.3", 0)
V6 = fid("out", 6, "fd00::2", 50000, "fd00::3", 443)


class Sender:
    """Flows whose counters the test advances: packets of a fixed size per refresh."""

    def __init__(self):
        self.counts: dict[FlowId, list[int]] = {}      # packets, bytes, drops
        self.born: dict[FlowId, float] = {}

    def send(self, flow: FlowId, now: float, packets: int, size: int, dropped: int = 0) -> None:
        c = self.counts.setdefault(flow, [0, 0, 0])
        self.born.setdefault(flow, now - 0.5)
        c[0] += packets
        c[1] += packets * size
        c[2] += dropped

    def rows(self, now: float, rates: dict | None = None) -> list[FlowRecord]:
        rates = rates or {}
        return [FlowRecord(id=f, packets=p, bytes=b, drops=d, first_seen=self.born[f], last_seen=now,
                           pps=rates.get(f, (0.0, 0.0))[0], bps=rates.get(f, (0.0, 0.0))[1])
                for f, (p, b, d) in self.counts.items()]


def by_key(groups: Groups, kind: str) -> dict:
    return {r.key: r for r in groups.rows(kind)}


def test_sums_per_host_port_and_process():
    s, g = Sender(), Groups()
    s.send(WEB_OUT, 1.0, 10, 100)
    s.send(WEB_IN, 1.0, 20, 1000, dropped=5)
    s.send(DNS, 1.0, 3, 80)
    s.send(PING, 1.0, 2, 84)
    s.send(V6, 1.0, 1, 60)
    rates = {WEB_OUT: (10.0, 8000.0), WEB_IN: (15.0, 120000.0), DNS: (3.0, 1920.0)}
    owners = {WEB_OUT: Owner(4242, "curl", "root"), DNS: Owner(77, "dig", "root")}
    g.update(1.0, s.rows(1.0, rates), owners)

    hosts = by_key(g, "host")
    assert list(hosts) == ["10.0.0.3", "10.0.0.4", "fd00::3"]          # busiest first
    h = hosts["10.0.0.3"]                # both directions of the web flow and the ping
    assert (h.flows, h.packets, h.bytes, h.drops, h.pps, h.bps) == (3, 32, 21168, 5, 25.0, 128000.0)
    ports = by_key(g, "port")
    assert {k: (r.flows, r.packets, r.bytes) for k, r in ports.items()} == {
        "8080/tcp": (2, 30, 21000), "53/udp": (1, 3, 240), "icmp": (1, 2, 168), "443/tcp": (1, 1, 60)}
    procs = by_key(g, "process")
    assert {k: (r.flows, r.packets) for k, r in procs.items()} == {
        "curl (pid 4242)": (1, 10), "dig (pid 77)": (1, 3), "unknown": (3, 23)}
    assert all(r.averages == (0.0, 0.0, 0.0) for r in g.rows("host"))   # one refresh: no rate yet


def test_averages_over_2_10_and_40_seconds_at_a_1s_refresh():
    s, g = Sender(), Groups()
    g.update(0.0, [], {})
    for t in range(1, 61):                  # 10 x 100 B a second for 5 s, then silence, then 20 x 50 B
        now = float(t)
        if t <= 5:
            s.send(WEB_OUT, now, 10, 100)
        elif t > 50:
            s.send(WEB_OUT, now, 20, 50)
        g.update(now, s.rows(now), {})
        a2, a10, a40 = by_key(g, "port")["8080/tcp"].averages
        if t == 5:      # younger than 10 and 40 s: over the 5 s since the first refresh
            assert (a2, a10, a40) == (8000.0, 8000.0, 8000.0)
        if t == 12:     # the 10 s window holds refreshes 3, 4, 5
            assert (a2, a10, a40) == (0.0, 3 * 8000 / 10, 5 * 8000 / 12)
        if t == 52:     # 40 s: refreshes 13..52 (2 of them busy)
            assert (a2, a10, a40) == (8000.0, 2 * 8000 / 10, 2 * 8000 / 40)
    assert by_key(g, "host")["10.0.0.3"].averages == (8000.0, 8000.0, 10 * 8000 / 40)


def test_a_slow_refresh_counts_the_window_it_really_covers():
    s, g = Sender(), Groups()
    g.update(0.0, [], {})
    for t in (3.0, 6.0, 9.0):
        s.send(DNS, t, 30, 100)             # 1,000 B/s
        g.update(t, s.rows(t), {})
    a2, a10, a40 = by_key(g, "host")["10.0.0.4"].averages
    assert (a2, a10, a40) == (8000.0, 8000.0, 8000.0)   # 2 s: the last 3 s; 10 s and 40 s: all 9 s


def test_dropped_packets_are_not_in_the_averages_and_new_flows_count_whole():
    s, g = Sender(), Groups()
    s.send(WEB_OUT, 1.0, 10, 100)
    g.update(1.0, s.rows(1.0), {})
    s.send(WEB_OUT, 2.0, 10, 100, dropped=4)      # 6 of 10 passed
    s.send(DNS, 2.0, 5, 100)                      # a new flow: its first packets count
    g.update(2.0, s.rows(2.0), {})
    assert by_key(g, "host")["10.0.0.3"].averages[0] == 600 * 8 / 1
    assert by_key(g, "host")["10.0.0.4"].averages[0] == 500 * 8 / 1
    # A flow met again after it left the store (first packet long ago): counts from here on.
    old = Sender()
    old.send(PING, 0.5, 100, 84)
    g.update(3.0, s.rows(3.0) + old.rows(3.0), {})
    assert by_key(g, "port")["icmp"].averages[0] == 0.0 and by_key(g, "port")["icmp"].packets == 100
    old.send(PING, 4.0, 1, 84)
    g.update(4.0, s.rows(4.0) + old.rows(4.0), {})
    assert by_key(g, "port")["icmp"].averages[0] == 84 * 8 / 2


def test_a_group_whose_flows_left_is_gone_and_its_gains_are_forgotten():
    s, g = Sender(), Groups()
    g.update(0.0, [], {})
    s.send(DNS, 1.0, 5, 100)
    g.update(1.0, s.rows(1.0), {})
    g.update(2.0, [], {})
    assert g.rows("host") == [] and g._gains       # the gains stay until their window has passed
    for t in range(3, 45):
        g.update(float(t), [], {})
    assert not g._gains and g._times == [float(t) for t in range(4, 45)]    # 40 s and the base


@pytest.mark.parametrize("flow, key", [
    (WEB_OUT, "8080/tcp"), (WEB_IN, "8080/tcp"), (DNS, "53/udp"), (PING, "icmp"),
    (fid("out", 58, "fd00::2", 128, "fd00::3", 0), "icmpv6"), (fid("out", 47, "10.0.0.2", 0, "10.0.0.3", 0), "47"),
    (fid("out", 17, "10.0.0.2", 0, "10.0.0.3", 0, fragment=True), "udp fragments"),
])
def test_port_keys(flow, key):
    assert port_key(flow) == key


def test_service_names_come_from_the_services_database():
    assert service_name(53, "udp") in ("domain", "")      # "" where /etc/services is missing
    assert service_name(1, "tcp") in ("tcpmux", "")
    assert service_name(65000, "udp") == ""


def test_rows_made_at_the_refresh_or_on_demand_are_the_same():
    s, eager, lazy = Sender(), Groups(), Groups()
    eager.want("port")
    for t in range(1, 6):
        s.send(WEB_OUT, float(t), 10, 100)
        s.send(DNS, float(t), 2, 80, dropped=1)
        for g in (eager, lazy):
            g.update(float(t), s.rows(float(t)), {DNS: Owner(77, "dig", "root")})
    assert eager._rows.keys() == {"port"} and lazy._rows == {}
    for kind in ("host", "port", "process"):
        assert eager.rows(kind) == lazy.rows(kind) and eager.rows(kind)
    assert by_key(lazy, "process")["dig (pid 77)"].averages[0] == 2 * 80 * 8 / 2   # 80 B of 160 passed a refresh
