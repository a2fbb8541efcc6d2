"""Parsing in the real programs: every protocol at every hook, IPv4 options,
IPv6 extension headers, fragments, truncated and malformed headers (how rules
judge those: test_kernel_malformed.py).

Each case runs on both header-reading paths (direct access and
bpf_skb_load_bytes) through BPF_PROG_TEST_RUN, and reads `flows` back.
"""

from __future__ import annotations

import pytest

import packets as P
from kutil import BPF_OK, HOOKS, flows, run, want
from lwtui.kernel import kstructs

V4 = ("10.0.0.2", "10.0.0.3")
V6 = ("2001:db8::2", "2001:db8::3")

CASES = [  # family, proto, sport, dport (ICMP: type, code)
    (4, P.TCP, 40000, 8080),
    (4, P.UDP, 5353, 53),
    (4, P.ICMP, 8, 0),
    (4, P.ICMP, 3, 4),
    (4, P.GRE, 0, 0),
    (6, P.TCP, 40000, 443),
    (6, P.UDP, 1234, 53),
    (6, P.ICMPV6, 128, 0),
    (6, P.ICMPV6, 1, 3),
    (6, P.SCTP, 0, 0),
]


def _addrs(family):
    return V4 if family == 4 else V6


@pytest.mark.parametrize("hook", HOOKS)
@pytest.mark.parametrize("family,proto,sport,dport", CASES)
def test_every_protocol_at_every_hook(any_probe, hook, family, proto, sport, dport):
    src, dst = _addrs(family)
    frame = P.packet(family, proto, src, dst, sport, dport, payload=b"p" * 33)
    n = 5
    for _ in range(n):
        assert run(any_probe, hook, frame) == BPF_OK
    got = flows(any_probe)
    key = want(src, dst, proto, sport, dport, hook)
    assert list(got) == [key]
    st = got[key]
    ip_len = len(frame) - 14
    assert (st.packets, st.bytes, st.drops) == (n, n * ip_len, 0)
    assert 0 < st.first_seen_ns <= st.last_seen_ns
    assert (st.verdict, st.rule_kind, st.rules_gen) == (kstructs.ALLOW, kstructs.RULE_NONE, 1)
    stats = any_probe.read_stats()
    assert stats["packets"] == n and stats["bytes"] == n * ip_len
    assert stats["new_flows"] == 1 and stats["parse_errors"] == 0 and stats["drops"] == 0


def test_repeat_counts_add_up(any_probe):
    """Counters are exact over many runs (atomic adds, one entry)."""
    frame = P.packet(4, P.UDP, *V4, 1000, 2000, payload=b"x" * 100)
    assert run(any_probe, "xmit", frame, repeat=1000) == BPF_OK
    st = flows(any_probe)[want(*V4, P.UDP, 1000, 2000, "xmit")]
    assert (st.packets, st.bytes) == (1000, 1000 * (len(frame) - 14))
    assert any_probe.read_stats()["packets"] == 1000


def test_directions_and_hooks_are_separate_flows(any_probe):
    a = P.packet(4, P.TCP, *V4, 40000, 80)
    b = P.packet(4, P.TCP, V4[1], V4[0], 80, 40000)
    for hook in ("in", "out"):
        run(any_probe, hook, a)
        run(any_probe, hook, b)
    got = flows(any_probe)
    assert set(got) == {want(*V4, P.TCP, 40000, 80, h) for h in ("in", "out")} | \
        {want(V4[1], V4[0], P.TCP, 80, 40000, h) for h in ("in", "out")}


@pytest.mark.parametrize("family", [4, 6])
def test_tcp_flags_are_ored(any_probe, family):
    src, dst = _addrs(family)
    for fl in (P.SYN, P.ACK, P.PSH | P.ACK, P.FIN | P.ACK):
        run(any_probe, "out", P.packet(family, P.TCP, src, dst, 1, 2, flags=fl))
    st = flows(any_probe)[want(src, dst, P.TCP, 1, 2)]
    assert st.tcp_flags == P.SYN | P.ACK | P.PSH | P.FIN


def test_udp_flow_has_no_tcp_flags(any_probe):
    run(any_probe, "out", P.packet(4, P.UDP, *V4, 1, 2))
    assert flows(any_probe)[want(*V4, P.UDP, 1, 2)].tcp_flags == 0


@pytest.mark.parametrize("options", [P.ipv4_option_rr(1), P.ipv4_option_rr(9), b"\x01" * 40])
@pytest.mark.parametrize("proto,sport,dport", [(P.TCP, 1111, 2222), (P.UDP, 3333, 4444), (P.ICMP, 0, 0)])
def test_ipv4_options(any_probe, options, proto, sport, dport):
    ip = P.ipv4(*V4, proto, P.l4(proto, sport, dport, b"data"), options=options)
    assert run(any_probe, "in", P.frame(ip)) == BPF_OK
    assert list(flows(any_probe)) == [want(*V4, proto, sport, dport, "in")]


CHAINS = [
    ["hop"], ["dst"], ["rt"], ["ah"], ["frag"],
    ["hop", "rt", "dst"],
    ["hop", "dst", "rt", "frag", "ah", "dst"],
    ["hop", "dst", "rt", "dst", "rt", "dst", "dst"],  # seven: past the old bound of six
]


@pytest.mark.parametrize("chain", CHAINS, ids=lambda c: "-".join(c))
@pytest.mark.parametrize("proto,sport,dport", [(P.TCP, 5000, 443), (P.UDP, 5001, 53), (P.ICMPV6, 129, 0)])
def test_ipv6_extension_chains(any_probe, chain, proto, sport, dport):
    ip = P.ipv6_chain(*V6, chain, proto, P.l4(proto, sport, dport, b"body"))
    assert run(any_probe, "out", P.frame(ip)) == BPF_OK
    assert list(flows(any_probe)) == [want(*V6, proto, sport, dport)]
    assert any_probe.read_stats()["parse_errors"] == 0


def test_ipv6_no_next_header(any_probe):
    ip = P.ipv6(*V6, P.HOPOPTS, P.ext_opts(P.NONE))
    assert run(any_probe, "out", P.frame(ip)) == BPF_OK
    assert list(flows(any_probe)) == [want(*V6, P.NONE)]


def test_ipv6_large_extension_headers(any_probe):
    """Header lengths are honoured (a 64-byte dst opts, a 3-address routing header)."""
    body = P.ext_opts(P.ROUTING, 64) + P.ext_routing(P.UDP, 3) + P.udp(7, 8)
    assert run(any_probe, "out", P.frame(P.ipv6(*V6, P.DSTOPTS, body))) == BPF_OK
    assert list(flows(any_probe)) == [want(*V6, P.UDP, 7, 8)]


@pytest.mark.parametrize("proto", [P.UDP, P.TCP, P.ICMP])
def test_ipv4_fragments(any_probe, proto):
    first = P.ipv4(*V4, proto, P.l4(proto, 10, 20, b"a" * 16), more_fragments=True)
    later = P.ipv4(*V4, proto, b"b" * 16, frag_offset=3, more_fragments=True)
    last = P.ipv4(*V4, proto, b"c" * 3, frag_offset=5)
    for ip in (first, later, last):
        assert run(any_probe, "in", P.frame(ip)) == BPF_OK
    got = flows(any_probe)
    frag = want(*V4, proto, 0, 0, "in", kstructs.KEY_FRAGMENT)
    assert set(got) == {want(*V4, proto, 10, 20, "in"), frag}
    assert got[frag].packets == 2


@pytest.mark.parametrize("before", [[], ["hop"], ["hop", "dst"]])
def test_ipv6_fragments(any_probe, before):
    def with_frag(offset, more, body):
        chain_body = P.ext_fragment(P.UDP, offset, more) + body
        nh = P.FRAGMENT
        for kind in reversed(before):
            chain_body = P.ext_opts(nh) + chain_body
            nh = P.HOPOPTS if kind == "hop" else P.DSTOPTS
        return P.frame(P.ipv6(*V6, nh, chain_body))

    assert run(any_probe, "in", with_frag(0, True, P.udp(33, 44, b"x" * 24))) == BPF_OK
    assert run(any_probe, "in", with_frag(4, False, b"y" * 8)) == BPF_OK
    assert set(flows(any_probe)) == {want(*V6, P.UDP, 33, 44, "in"),
                                     want(*V6, P.UDP, 0, 0, "in", kstructs.KEY_FRAGMENT)}


def _headers(family, proto, extra_l3=None):
    """IP packet with a whole L4 header and no payload; len of all headers."""
    src, dst = _addrs(family)
    l4 = P.l4(proto, 8, 0) if proto in (P.ICMP, P.ICMPV6) else P.l4(proto, 1234, 80)
    if family == 4:
        ip = P.ipv4(src, dst, proto, l4, options=extra_l3 or b"")
    else:
        ip = P.ipv6_chain(src, dst, extra_l3 or [], proto, l4)
    return ip, P.ETH_P_IP if family == 4 else P.ETH_P_IPV6


TRUNC = [(4, P.TCP, None), (4, P.UDP, None), (4, P.ICMP, None),
         (6, P.TCP, None), (6, P.UDP, None), (6, P.ICMPV6, None),
         (4, P.TCP, P.ipv4_option_rr(2)), (6, P.UDP, ["hop", "frag", "rt"])]


@pytest.mark.parametrize("family,proto,extra", TRUNC)
def test_truncation_at_every_byte(any_probe, family, proto, extra):
    ip, ethertype = _headers(family, proto, extra)
    min_ip = 20 if family == 4 else 40
    for cut in range(len(ip)):
        et = ethertype if cut >= min_ip else P.ETH_P_EXPERIMENTAL
        assert run(any_probe, "out", P.frame(ip[:cut], et)) == BPF_OK, cut
        assert flows(any_probe) == {}, f"flow created from {cut} of {len(ip)} header bytes"
    stats = any_probe.read_stats()
    assert stats["parse_errors"] == len(ip) and stats["packets"] == len(ip)
    assert run(any_probe, "out", P.frame(ip, ethertype)) == BPF_OK  # whole headers: one flow
    assert len(flows(any_probe)) == 1
    assert any_probe.read_stats()["parse_errors"] == len(ip)


MALFORMED = {
    "ihl-4": P.frame(P.ipv4(*V4, P.UDP, P.udp(1, 2), ihl=4)),
    "ihl-0": P.frame(P.ipv4(*V4, P.UDP, P.udp(1, 2), ihl=0)),
    "ihl-past-end": P.frame(P.ipv4(*V4, P.GRE, b"", ihl=15)),
    "ipv4-short": P.frame(P.ipv4(*V4, P.GRE, b"")[:19], P.ETH_P_EXPERIMENTAL),
    "ipv6-short": P.frame(P.ipv6(*V6, P.UDP, b"")[:39], P.ETH_P_EXPERIMENTAL),
    "empty": P.frame(b"", P.ETH_P_EXPERIMENTAL),
    "version-5-as-ipv4": P.frame(P.ipv4(*V4, P.UDP, P.udp(1, 2), version=5), P.ETH_P_IP),
    "version-5-as-ipv6": P.frame(P.ipv6(*V6, P.UDP, P.udp(1, 2), version=5), P.ETH_P_IPV6),
    "version-0": P.frame(b"\x00" * 40, P.ETH_P_IP),
    "tcp-doff-4": P.frame(P.ipv4(*V4, P.TCP, P.tcp(1, 2, doff=4))),
    "ipv6-ext-cut": P.frame(P.ipv6(*V6, P.HOPOPTS, P.ext_opts(P.UDP, 16)[:12])),
    "ipv6-frag-cut": P.frame(P.ipv6(*V6, P.FRAGMENT, P.ext_fragment(P.UDP, 2)[:6])),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_is_a_parse_error(any_probe, name):
    assert run(any_probe, "in", MALFORMED[name]) == BPF_OK
    assert flows(any_probe) == {}
    assert any_probe.read_stats()["parse_errors"] == 1


def test_large_packet_counts_skb_len(any_probe):
    frame = P.packet(6, P.UDP, *V6, 9, 9, payload=b"z" * 3000)
    run(any_probe, "out", frame)
    assert flows(any_probe)[want(*V6, P.UDP, 9, 9)].bytes == len(frame) - 14
