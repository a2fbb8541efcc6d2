"""ICMP flow rules in both directions: the reverse of a query is its reply.

Crafted packets through BPF_PROG_TEST_RUN for every query pair, then real
`ping` both ways between two namespaces with the program on a real route.
"""

from __future__ import annotations

import pytest

import packets as P
from kutil import BPF_DROP, BPF_OK, add_rule, flow_key, run
from lwtui.core.grammar import parse_rule
from lwtui.core.model import FlowId
from lwtui.kernel import codec
from tests.e2e.traffic import ping

A, B = "10.0.0.2", "10.0.0.3"
A6, B6 = "fd00:6c77::2", "fd00:6c77::3"

PAIRS = [(P.ICMP, A, B, q, r) for q, r in ((8, 0), (13, 14), (15, 16), (17, 18))] + \
        [(P.ICMPV6, A6, B6, q, r) for q, r in ((128, 129), (139, 140))]


def _icmp(proto, src, dst, type_, code=0):
    return P.packet(4 if proto == P.ICMP else 6, proto, src, dst, type_, code)


@pytest.mark.parametrize("proto,a,b,query,reply", PAIRS)
def test_reverse_of_a_query_is_its_reply(probe, proto, a, b, query, reply):
    add_rule(probe, flow_key(a, b, proto, query, 0))
    got = [run(probe, "out", _icmp(proto, *pkt)) for pkt in (
        (a, b, query),        # the query itself
        (b, a, reply),        # its reply
        (b, a, query),        # b's own query: another flow
        (a, b, reply),        # a reply the other way: another flow
        (b, a, reply, 1),     # the reply with another code
    )]
    assert got == [BPF_DROP, BPF_DROP, BPF_OK, BPF_OK, BPF_OK]


def test_unpaired_type_matches_itself_both_ways(probe):
    add_rule(probe, flow_key(A, B, P.ICMP, 3, 4))
    got = [run(probe, "in", _icmp(P.ICMP, *pkt)) for pkt in ((A, B, 3, 4), (B, A, 3, 4), (B, A, 4, 3))]
    assert got == [BPF_DROP, BPF_DROP, BPF_OK]


@pytest.mark.parametrize("proto,a,b,query,reply", PAIRS)
def test_python_matches_agrees(proto, a, b, query, reply):
    """FlowRule.matches (the dashboard's copy) says what the kernel does above."""
    name = "icmp" if proto == P.ICMP else "icmpv6"
    fmt = (lambda x: x) if proto == P.ICMP else (lambda x: f"[{x}]")
    rule = parse_rule(f"flow {name} {fmt(a)}:{query} {fmt(b)}:0")
    assert codec.decode(*codec.encode(rule)) == rule

    def fid(src, dst, t, c=0):
        from ipaddress import ip_address
        return FlowId(hook="out", proto=proto, src=ip_address(src), sport=t, dst=ip_address(dst), dport=c)

    assert [rule.matches(fid(*x)) for x in ((a, b, query), (b, a, reply), (b, a, query), (a, b, reply),
                                            (b, a, reply, 1))] == [True, True, False, False, False]


@pytest.mark.parametrize("family", [4, 6])
def test_real_ping_both_ways(probe, topo, on_route, family):
    """`flow icmp CLIENT:8 SERVER:0` with the program on the server's route back
    to the client: the client's pings die (their replies are dropped), the
    server's own pings to the client pass."""
    cli, srv = (topo.client_v4, topo.server_v4) if family == 4 else (topo.client_v6, topo.server_v6)
    proto, echo = (P.ICMP, 8) if family == 4 else (P.ICMPV6, 128)
    on_route(probe, "out", family, ns="server")
    assert ping(topo.client_ns, srv, 3) == 3 and ping(topo.server_ns, cli, 3) == 3
    add_rule(probe, flow_key(cli, srv, proto, echo, 0))
    assert ping(topo.client_ns, srv, 5) == 0, "the replies of the client's pings must be dropped"
    assert ping(topo.server_ns, cli, 5) == 5, "the server's own pings are another flow"
