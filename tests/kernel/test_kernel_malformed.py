"""Packets the programs cannot fully parse are still judged: by host rules
once the addresses are read, by every rule once the ports are, and they
still count as parse errors (no flow entry). IPv6 extension chains are walked
up to LWTUI_IPV6_EXT_MAX headers.

Crafted packets through BPF_PROG_TEST_RUN, then from raw sockets on a real
route against `block host`.
"""

from __future__ import annotations

import pytest

import packets as P
import rawnet
from conftest import _build, _reset
from kutil import BPF_DROP, BPF_OK, add_rule, flows, host_key, port_key, run, want

A, B = "10.0.0.2", "10.0.0.3"
A6, B6 = "fd00:6c77::2", "fd00:6c77::3"


def _dst_chain(n: int, src=A6, dst=B6, sport=5000, dport=53) -> bytes:
    nh, body = P.dstopts_chain(n, P.UDP, P.udp(sport, dport, b"x" * 8))
    return P.ipv6(src, dst, nh, body)


@pytest.mark.parametrize("n", [7, 64, 300])
def test_long_extension_chains_parse(any_probe, n):
    """Chains far past the old bound of 6 give the ports (300 headers: 2,400 bytes)."""
    assert run(any_probe, "out", P.frame(_dst_chain(n))) == BPF_OK
    assert list(flows(any_probe)) == [want(A6, B6, P.UDP, 5000, 53)]
    assert any_probe.read_stats()["parse_errors"] == 0


def test_seven_destination_options_are_blocked_by_host(any_probe):
    add_rule(any_probe, host_key(B6 + "/128"))
    assert run(any_probe, "in", P.frame(_dst_chain(7)), repeat=50) == BPF_DROP
    assert any_probe.read_stats()["drops"] == 50


@pytest.fixture(scope="module")
def short_walk():
    """The programs built with a bound of 8 extension headers."""
    p = _build(["-DIPV6_EXT_MAX=8"])
    yield p
    p.close()


def test_chain_past_the_bound_is_a_parse_error_judged_by_host_rules(short_walk):
    _reset(short_walk)
    assert run(short_walk, "out", P.frame(_dst_chain(8))) == BPF_OK      # 8: walked
    assert run(short_walk, "out", P.frame(_dst_chain(9))) == BPF_OK      # 9: no ports, no rule
    s = short_walk.read_stats()
    assert (s["parse_errors"], len(flows(short_walk))) == (1, 1)
    add_rule(short_walk, port_key(53, P.UDP))
    assert run(short_walk, "out", P.frame(_dst_chain(9))) == BPF_OK      # a port rule needs ports
    add_rule(short_walk, host_key(A6 + "/128"))
    assert run(short_walk, "out", P.frame(_dst_chain(9))) == BPF_DROP    # a host rule needs none
    assert short_walk.read_stats()["parse_errors"] == 3


# name -> (packet, key fields it carries (None: no ports read))
BAD = {
    "tcp-doff-4": (P.ipv4(A, B, P.TCP, P.tcp(1111, 2222, doff=4)), (1111, 2222)),
    "tcp-cut-at-10": (P.ipv4(A, B, P.TCP, P.tcp(1111, 2222)[:10]), (1111, 2222)),
    "tcp-cut-at-3": (P.ipv4(A, B, P.TCP, P.tcp(1111, 2222)[:3]), None),
    "udp-cut-at-6": (P.ipv4(A, B, P.UDP, P.udp(1111, 2222)[:6]), (1111, 2222)),
    "ihl-4": (P.ipv4(A, B, P.UDP, P.udp(1111, 2222), ihl=4), None),
    "ipv6-ext-cut": (P.ipv6(A6, B6, P.HOPOPTS, P.ext_opts(P.UDP, 16)[:12]), None),
    "ipv6-tcp-doff-2": (P.ipv6(A6, B6, P.TCP, P.tcp(1111, 2222, doff=2)), (1111, 2222)),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_parse_errors_are_judged_by_what_was_read(any_probe, name):
    ip, ports = BAD[name]
    host = host_key((B if ip[0] >> 4 == 4 else B6) + ("/32" if ip[0] >> 4 == 4 else "/128"))
    frame = P.frame(ip)
    assert run(any_probe, "in", frame) == BPF_OK                 # no rule: passed
    add_rule(any_probe, port_key(2222, 0))
    assert run(any_probe, "in", frame) == (BPF_DROP if ports else BPF_OK)
    add_rule(any_probe, host_key("192.0.2.0/24"))
    add_rule(any_probe, host)
    assert run(any_probe, "in", frame) == BPF_DROP               # addresses read: host rules apply
    s = any_probe.read_stats()
    assert s["parse_errors"] == 3 and flows(any_probe) == {}
    assert s["drops"] == (2 if ports else 1)


def test_nothing_read_is_passed(any_probe):
    add_rule(any_probe, host_key("0.0.0.0/0"))
    add_rule(any_probe, host_key("::/1"))
    for bad in (P.frame(P.ipv4(A, B, P.UDP, b"")[:19], P.ETH_P_EXPERIMENTAL),
                P.frame(P.ipv4(A, B, P.UDP, P.udp(1, 2), version=5), P.ETH_P_IP)):
        assert run(any_probe, "in", bad) == BPF_OK
    assert any_probe.read_stats()["parse_errors"] == 2


def test_dry_run_counts_would_drops_of_bad_packets(probe):
    probe.set_config(dry_run=True)
    add_rule(probe, host_key(B + "/32"))
    assert run(probe, "in", P.frame(BAD["tcp-doff-4"][0]), repeat=5) == BPF_OK
    s = probe.read_stats()
    assert (s["would_drops"], s["drops"], s["parse_errors"]) == (5, 0, 5)


# -- real packets from raw sockets --------------------------------------------

N = 200


@pytest.mark.parametrize("rule", [None, "host"])
def test_raw_ipv6_udp_behind_seven_dstopts(probe, topo, on_route, rule):
    """Delivered to a UDP socket by the receiver's kernel; `block host` stops every one."""
    cli, srv = topo.client_v6, topo.server_v6
    on_route(probe, "in", 6, ns="server")
    nh, body = P.dstopts_chain(7, P.UDP, P.with_l4_checksum(cli, srv, P.UDP, P.udp(40000, 5353, b"seven")))
    pkt = P.ipv6(cli, srv, nh, body)
    if rule:
        add_rule(probe, host_key(srv + "/128"))
    with rawnet.receiver(topo.server_ns, 6, N, 3.0 if rule is None else 1.0, "udp", 5353) as r:
        assert rawnet.send(topo.client_ns, srv, [pkt], N) == N
        got = r.result()
    s = probe.read_stats()
    if rule is None:
        assert got == N and s["parse_errors"] == 0
        assert flows(probe)[want(cli, srv, P.UDP, 40000, 5353, "in")].packets == N
    else:
        assert got == 0, f"{got} of {N} reached the blocked host"
        assert s["drops"] == N


@pytest.mark.parametrize("rule", [None, "host"])
def test_raw_ipv4_tcp_with_data_offset_4(probe, topo, on_route, rule):
    """Seen by a raw TCP socket on the receiver unless `block host` drops them."""
    cli, srv = topo.client_v4, topo.server_v4
    on_route(probe, "in", 4, ns="server")
    pkt = P.ipv4(cli, srv, P.TCP, P.tcp(40001, 7777, P.SYN, doff=4), ident=77)
    if rule:
        add_rule(probe, host_key(srv + "/32"))
    with rawnet.receiver(topo.server_ns, 4, N, 3.0 if rule is None else 1.0, "tcp", 40001, 7777, P.SYN) as r:
        assert rawnet.send(topo.client_ns, srv, [pkt], N) == N
        got = r.result()
    s = probe.read_stats()
    assert s["parse_errors"] == N and flows(probe) == {}
    if rule is None:
        assert got == N
    else:
        assert got == 0, f"{got} of {N} reached the blocked host"
        assert s["drops"] == N
