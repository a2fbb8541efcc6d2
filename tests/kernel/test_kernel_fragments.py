"""Fragments cannot slip past a rule that needs ports.

A first fragment is judged by its ports (4 bytes of the L4 header are
enough); the programs remember its verdict per datagram (addresses, id,
protocol, hook) and later fragments follow it; a later fragment whose first
fragment was not seen is judged by host rules only. Crafted packets through
BPF_PROG_TEST_RUN, and a TCP SYN split into a tiny first fragment from a raw
socket against a real server.
"""

from __future__ import annotations

import pytest

import packets as P
import rawnet
from kutil import BPF_DROP, BPF_OK, add_rule, flows, host_key, port_key, run, want
from lwtui.kernel import kstructs
from tests.e2e.traffic import http_server

A, B = "10.0.0.2", "10.0.0.3"
A6, B6 = "fd00:6c77::2", "fd00:6c77::3"


def v4_frags(seg: bytes, ident: int, first_len: int = 8, src=A, dst=B, proto=P.TCP) -> list[bytes]:
    """An L4 segment split after first_len bytes (a multiple of 8) into two IPv4 fragments."""
    return [P.ipv4(src, dst, proto, seg[:first_len], more_fragments=True, ident=ident),
            P.ipv4(src, dst, proto, seg[first_len:], frag_offset=first_len // 8, ident=ident)]


def v6_frags(seg: bytes, ident: int, first_len: int = 8, src=A6, dst=B6, proto=P.TCP) -> list[bytes]:
    return [P.ipv6(src, dst, P.FRAGMENT, P.ext_fragment(proto, 0, True, ident) + seg[:first_len]),
            P.ipv6(src, dst, P.FRAGMENT, P.ext_fragment(proto, first_len // 8, False, ident) + seg[first_len:])]


@pytest.mark.parametrize("split", [v4_frags, v6_frags], ids=["ipv4", "ipv6"])
def test_tiny_first_fragment_and_the_rest_follow_the_port_rule(any_probe, split):
    add_rule(any_probe, port_key(8080, P.TCP))
    syn = P.tcp(40000, 8080, P.SYN)
    assert [run(any_probe, "in", P.frame(f)) for f in split(syn, 7)] == [BPF_DROP, BPF_DROP]
    other = P.tcp(40000, 9090, P.SYN)
    assert [run(any_probe, "in", P.frame(f)) for f in split(other, 8)] == [BPF_OK, BPF_OK]
    s = any_probe.read_stats()
    assert (s["drops"], s["parse_errors"]) == (2, 2)  # the tiny first fragments are parse errors
    src, dst = (A, B) if split is v4_frags else (A6, B6)
    frag = flows(any_probe)[want(src, dst, P.TCP, 0, 0, "in", kstructs.KEY_FRAGMENT)]
    assert (frag.packets, frag.drops) == (2, 1)


@pytest.mark.parametrize("split", [v4_frags, v6_frags], ids=["ipv4", "ipv6"])
def test_later_fragments_follow_their_datagram(any_probe, split):
    """A whole-header first fragment makes a normal flow; its verdict carries
    over to its own later fragments only (by id, addresses, protocol, hook)."""
    add_rule(any_probe, port_key(53, P.UDP))
    dgram = P.udp(5000, 53, b"q" * 40)
    first, rest = split(dgram, 11, first_len=16, proto=P.UDP)
    assert run(any_probe, "in", P.frame(first)) == BPF_DROP
    assert run(any_probe, "in", P.frame(rest)) == BPF_DROP
    assert run(any_probe, "out", P.frame(rest)) == BPF_OK          # another hook: first fragment unseen
    _, other_rest = split(dgram, 12, first_len=16, proto=P.UDP)
    assert run(any_probe, "in", P.frame(other_rest)) == BPF_OK     # another datagram
    src, dst = (A, B) if split is v4_frags else (A6, B6)
    got = flows(any_probe)
    assert got[want(src, dst, P.UDP, 5000, 53, "in")].drops == 1
    assert got[want(src, dst, P.UDP, 0, 0, "in", kstructs.KEY_FRAGMENT)].drops == 1
    assert any_probe.read_stats()["parse_errors"] == 0


def test_allowed_datagram_passes_and_orphans_meet_host_rules(probe):
    first, rest = v4_frags(P.udp(5000, 54, b"q" * 40), 13, first_len=16, proto=P.UDP)
    add_rule(probe, port_key(53, P.UDP))
    assert [run(probe, "in", P.frame(f)) for f in (first, rest)] == [BPF_OK, BPF_OK]
    add_rule(probe, host_key(A + "/32"))
    assert run(probe, "in", P.frame(P.ipv4(A, B, P.UDP, b"z" * 8, frag_offset=40, ident=99))) == BPF_DROP
    assert flows(probe)[want(A, B, P.UDP, 0, 0, "in", kstructs.KEY_FRAGMENT)].rule_kind == kstructs.RULE_HOST


def test_dry_run_fragments_would_drop(probe):
    probe.set_config(dry_run=True)
    add_rule(probe, port_key(8080, P.TCP))
    assert [run(probe, "in", P.frame(f)) for f in v4_frags(P.tcp(1, 8080), 21)] == [BPF_OK, BPF_OK]
    s = probe.read_stats()
    assert (s["would_drops"], s["drops"]) == (2, 0)


@pytest.mark.parametrize("rule", [None, "port 8080/tcp"])
def test_split_syn_does_not_reach_a_blocked_server(probe, topo, on_route, tmp_path, rule):
    """A SYN whose first fragment carries only 8 bytes of TCP header: without
    a rule the real server answers SYN-ACK; with `block port 8080/tcp` (at the
    server's `in` hook) it never sees the SYN."""
    cli, srv = topo.client_v4, topo.server_v4
    on_route(probe, "in", 4, ns="server")
    syn = P.with_l4_checksum(cli, srv, P.TCP, P.tcp(41000, 8080, P.SYN))
    frags = v4_frags(syn, 0x4242, src=cli, dst=srv)
    with http_server(topo.server_ns, srv, 8080, str(tmp_path)):  # its readiness check crosses the hook too
        probe.reset_maps()
        if rule:
            add_rule(probe, port_key(8080, P.TCP))
        with rawnet.receiver(topo.client_ns, 4, 1, 3.0 if rule is None else 1.5, "tcp", 8080, 41000,
                             P.SYN | P.ACK) as r:
            assert rawnet.send(topo.client_ns, srv, frags) == 2
            answered = r.result()
    assert answered == (0 if rule else 1)
    if rule:
        assert probe.read_stats()["drops"] == 2
