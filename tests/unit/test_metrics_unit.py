"""Pure parts of --metrics: the listen address, the verdict split of a flow, routes by hook and address."""

from __future__ import annotations

import ipaddress

import pytest

from lwtui.kernel import kstructs
from lwtui.net.attrs import Target
from lwtui.session.metrics import _split, parse_listen
from lwtui.session.routeindex import RouteIndex, RouteRef


@pytest.mark.parametrize("text, expected", [
    ("9100", ("127.0.0.1", 9100)),
    ("0.0.0.0:9100", ("0.0.0.0", 9100)),
    ("[::1]:9200", ("::1", 9200)),
    ("[fd00::3]:1", ("fd00::3", 1)),
])
def test_listen_forms(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text, message", [
    ("0", "the port must be a number 1..65535"),
    ("70000", "the port must be a number 1..65535"),
    ("host:9100", "'host' is not an IP address"),
    ("::1:9100", "write an IPv6 address in brackets"),
    ("10.0.0.1:", "the port must be a number"),
    ("10.0.0.300:9100", "'10.0.0.300' is not an IP address"),
])
def test_bad_listen_names_the_form(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_listen(text)


def test_split_is_exact_for_whole_flows_and_equal_sizes():
    assert _split(10, 2280, 0) == (0, 0)
    assert _split(10, 2280, 10) == (10, 2280)
    assert _split(16, 16 * 228, 6) == (6, 6 * 228)
    assert _split(0, 0, 0) == (0, 0)
    assert _split(3, 100, 5) == (3, 100)   # drops never exceed packets


def _mapped(addr: str) -> bytes:
    return kstructs.addr_to_bytes(ipaddress.ip_address(addr))


def test_route_index_takes_the_most_specific_prefix_of_the_hook():
    idx = RouteIndex([Target("10.0.0.0/24", "out"), Target("10.0.0.3/32", "out", "ns1"),
                      Target("10.0.0.3/32", "in", "ns2"), Target("fd00::/64", "out")])
    assert idx.lookup("out", _mapped("10.0.0.3")) == RouteRef("10.0.0.3/32", "out", "ns1")
    assert idx.lookup("out", _mapped("10.0.0.9")) == RouteRef("10.0.0.0/24", "out", None)
    assert idx.lookup("in", _mapped("10.0.0.3")) == RouteRef("10.0.0.3/32", "in", "ns2")
    assert idx.lookup("in", _mapped("10.0.0.9")) is None
    assert idx.lookup("xmit", _mapped("10.0.0.3")) is None
    assert idx.lookup("out", _mapped("fd00::3")) == RouteRef("fd00::/64", "out", None)
    assert idx.lookup("out", _mapped("fd01::3")) is None
    assert idx.lookup("out", _mapped("::ffff:10.0.1.3")) is None


def test_own_cost_per_hook_in_the_stats_record_and_on_screen():
    from lwtui.cli.watch import stats_json
    from lwtui.core.model import Totals
    from lwtui.core.units import fmt_cost
    t = Totals(bpf_runtime=(("in", 0, 0), ("out", 13_100, 100)))
    assert t.ns_per_packet() == {"in": None, "out": 131.0}
    assert stats_json(t, 0.0)["ns_per_packet"] == {"in": None, "out": 131.0}
    assert stats_json(Totals(), 0.0)["ns_per_packet"] == {}
    assert fmt_cost(t.ns_per_packet()) == "in - · out 131"


def test_header_shows_the_cost_only_when_the_kernel_keeps_it():
    from lwtui.core.model import Snapshot, Totals
    from lwtui.ui.header import totals_text
    with_cost = Snapshot(time=0.0, totals=Totals(bpf_runtime=(("out", 13_100, 100),)))
    assert "out 131 ns/pkt" in totals_text(with_cost).plain
    assert "ns/pkt" not in totals_text(Snapshot(time=0.0)).plain
