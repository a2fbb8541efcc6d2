"""Verdicts in the real programs: each rule kind drops exactly what it should,
the per-flow verdict cache follows rules_gen, TTLs, hit counts, dry-run."""

from __future__ import annotations

import pytest

import packets as P
from kutil import (BPF_DROP, BPF_OK, HOOKS, add_rule, bump_gen, del_rule, flow_key, flows, host_key,
                   mono_ns, port_key, rule_val, run, want)
from lwtui.kernel import bpfsys, kstructs

A, B, C = "10.0.0.2", "10.0.0.3", "10.0.0.4"
A6, B6 = "2001:db8:1::2", "2001:db8:2::3"


def tcp(src, dst, sport, dport, flags=P.ACK):
    return P.packet(4 if ":" not in src else 6, P.TCP, src, dst, sport, dport, flags=flags)


def udp(src, dst, sport, dport):
    return P.packet(4 if ":" not in src else 6, P.UDP, src, dst, sport, dport)


def verdicts(probe, hook, frames):
    return [run(probe, hook, f) for f in frames]


@pytest.mark.parametrize("hook", HOOKS)
def test_flow_rule_drops_both_directions_only(probe, hook):
    add_rule(probe, flow_key(A, B, P.TCP, 40000, 8080))
    assert verdicts(probe, hook, [
        tcp(A, B, 40000, 8080),   # the flow
        tcp(B, A, 8080, 40000),   # its reply
        tcp(A, B, 40001, 8080),   # another source port
        tcp(A, C, 40000, 8080),   # another host
        udp(A, B, 40000, 8080),   # another protocol
        tcp(A, B, 8080, 40000),   # ports swapped, addresses not
    ]) == [BPF_DROP, BPF_DROP, BPF_OK, BPF_OK, BPF_OK, BPF_OK]
    got = flows(probe)
    fwd = got[want(A, B, P.TCP, 40000, 8080, hook)]
    assert (fwd.verdict, fwd.rule_kind, fwd.drops, fwd.packets) == (kstructs.DROP, kstructs.RULE_FLOW, 1, 1)
    assert got[want(A, B, P.TCP, 40001, 8080, hook)].verdict == kstructs.ALLOW
    assert probe.read_stats()["drops"] == 2
    assert rule_val(probe, flow_key(A, B, P.TCP, 40000, 8080)).hits == 2


def test_flow_rule_ipv6(probe):
    add_rule(probe, flow_key(A6, B6, P.UDP, 5000, 53))
    assert verdicts(probe, "out", [udp(A6, B6, 5000, 53), udp(B6, A6, 53, 5000), udp(A6, B6, 5001, 53)]) \
        == [BPF_DROP, BPF_DROP, BPF_OK]


def test_host_rule_v4_32(probe):
    add_rule(probe, host_key("10.0.0.3/32"))
    assert verdicts(probe, "in", [
        tcp(A, B, 1, 2), tcp(B, A, 2, 1), udp(C, B, 5, 6), tcp(A, C, 1, 2), udp(C, A, 7, 8),
    ]) == [BPF_DROP, BPF_DROP, BPF_DROP, BPF_OK, BPF_OK]
    assert flows(probe)[want(A, B, P.TCP, 1, 2, "in")].rule_kind == kstructs.RULE_HOST
    assert rule_val(probe, host_key("10.0.0.3/32")).hits == 3


def test_host_rule_v4_24_uses_mapped_prefix(probe):
    k = host_key("10.0.1.0/24")
    assert k.prefixlen == 120
    add_rule(probe, k)
    assert verdicts(probe, "out", [
        udp(A, "10.0.1.77", 1, 2), udp("10.0.1.1", A, 1, 2), udp(A, "10.0.2.1", 1, 2), udp(A, "10.0.0.255", 1, 2),
        udp(A6, B6, 1, 2),
    ]) == [BPF_DROP, BPF_DROP, BPF_OK, BPF_OK, BPF_OK]


def test_host_rule_v6(probe):
    add_rule(probe, host_key("2001:db8:2::/64"))
    assert verdicts(probe, "xmit", [
        tcp(A6, B6, 1, 2), tcp(B6, A6, 2, 1), tcp(A6, "2001:db8:3::3", 1, 2), tcp(A, B, 1, 2),
    ]) == [BPF_DROP, BPF_DROP, BPF_OK, BPF_OK]


def test_host_rule_covers_icmp_and_fragments(probe):
    add_rule(probe, host_key("10.0.0.3/32"))
    frag = P.frame(P.ipv4(A, B, P.UDP, b"x" * 8, frag_offset=2))
    assert verdicts(probe, "in", [P.packet(4, P.ICMP, A, B, 8, 0), frag]) == [BPF_DROP, BPF_DROP]


def test_port_rule_with_proto(probe):
    add_rule(probe, port_key(8080, P.TCP))
    assert verdicts(probe, "out", [
        tcp(A, B, 40000, 8080), tcp(B, A, 8080, 40000), tcp(A6, B6, 40000, 8080),
        udp(A, B, 40000, 8080), tcp(A, B, 40000, 8081),
    ]) == [BPF_DROP, BPF_DROP, BPF_DROP, BPF_OK, BPF_OK]
    assert flows(probe)[want(A, B, P.TCP, 40000, 8080)].rule_kind == kstructs.RULE_PORT


def test_port_rule_any_proto(probe):
    add_rule(probe, port_key(53, 0))
    assert verdicts(probe, "out", [
        udp(A, B, 5000, 53), tcp(A, B, 5000, 53), udp(B, A, 53, 5000), udp(A, B, 5000, 54),
        P.packet(4, P.ICMP, A, B, 53, 0),  # ICMP type 53 is not a port
    ]) == [BPF_DROP, BPF_DROP, BPF_DROP, BPF_OK, BPF_OK]


def test_port_rules_skip_fragments_and_portless_protocols(probe):
    add_rule(probe, port_key(0, 0))
    add_rule(probe, port_key(0, P.UDP))
    frag = P.frame(P.ipv4(A, B, P.UDP, b"x" * 8, frag_offset=2))
    gre = P.packet(4, P.GRE, A, B)
    assert verdicts(probe, "in", [frag, gre, P.packet(6, P.ICMPV6, A6, B6, 0, 0)]) == [BPF_OK] * 3


def test_rule_order_flow_before_host_before_port(probe):
    add_rule(probe, port_key(80, P.TCP))
    add_rule(probe, host_key("10.0.0.3/32"))
    add_rule(probe, flow_key(A, B, P.TCP, 1000, 80))
    run(probe, "out", tcp(A, B, 1000, 80))
    run(probe, "out", tcp(A, B, 1001, 80))
    run(probe, "out", tcp(A, C, 1001, 80))
    got = flows(probe)
    assert got[want(A, B, P.TCP, 1000, 80)].rule_kind == kstructs.RULE_FLOW
    assert got[want(A, B, P.TCP, 1001, 80)].rule_kind == kstructs.RULE_HOST
    assert got[want(A, C, P.TCP, 1001, 80)].rule_kind == kstructs.RULE_PORT
    # one hit per packet, on the rule that decided
    assert [rule_val(probe, k).hits for k in (flow_key(A, B, P.TCP, 1000, 80), host_key("10.0.0.3/32"),
                                              port_key(80, P.TCP))] == [1, 1, 1]


def test_allowed_flow_is_cached_until_rules_gen_changes(probe):
    f = tcp(A, B, 1, 2)
    assert run(probe, "out", f) == BPF_OK
    add_rule(probe, host_key("10.0.0.3/32"), bump=False)
    assert run(probe, "out", f, repeat=3) == BPF_OK  # cached: the rule is not consulted
    assert rule_val(probe, host_key("10.0.0.3/32")).hits == 0
    assert run(probe, "out", tcp(A, B, 9, 9)) == BPF_DROP  # a new flow does see it
    bump_gen(probe)
    assert run(probe, "out", f) == BPF_DROP
    st = flows(probe)[want(A, B, P.TCP, 1, 2)]
    assert (st.packets, st.drops, st.rules_gen) == (5, 1, probe.get_config().rules_gen)


def test_deleting_rule_lifts_drop(probe):
    f = udp(A, B, 1, 2)
    add_rule(probe, host_key("10.0.0.2/32"))
    assert run(probe, "in", f, repeat=4) == BPF_DROP
    del_rule(probe, host_key("10.0.0.2/32"))
    assert run(probe, "in", f) == BPF_OK
    st = flows(probe)[want(A, B, P.UDP, 1, 2, "in")]
    assert (st.verdict, st.rule_kind, st.drops, st.packets) == (kstructs.ALLOW, kstructs.RULE_NONE, 4, 5)


def test_dropped_flow_reevaluates_without_bump(probe):
    """A dropping flow asks the rules every packet, so a delete acts at once."""
    f = udp(A, B, 1, 2)
    add_rule(probe, port_key(2, P.UDP))
    assert run(probe, "in", f) == BPF_DROP
    del_rule(probe, port_key(2, P.UDP), bump=False)
    assert run(probe, "in", f) == BPF_OK


def test_expired_rule_does_not_match(probe):
    add_rule(probe, flow_key(A, B, P.TCP, 1, 2), expires_ns=mono_ns() - 1_000_000)
    add_rule(probe, flow_key(A, B, P.TCP, 3, 4), expires_ns=mono_ns() + 60 * 10**9)
    assert verdicts(probe, "out", [tcp(A, B, 1, 2), tcp(A, B, 3, 4)]) == [BPF_OK, BPF_DROP]
    assert rule_val(probe, flow_key(A, B, P.TCP, 1, 2)).hits == 0


def test_rule_expiring_lifts_drop_of_a_dropping_flow(probe):
    key = flow_key(A, B, P.TCP, 3, 4)
    add_rule(probe, key, expires_ns=mono_ns() + 60 * 10**9)
    assert run(probe, "out", tcp(A, B, 3, 4)) == BPF_DROP
    v = rule_val(probe, key)
    v.expires_ns = mono_ns() - 1  # as if its TTL ran out
    bpfsys.map_update(probe.map_fd("verdicts"), key, v)
    assert run(probe, "out", tcp(A, B, 3, 4)) == BPF_OK


def test_hits_and_stats_count_every_drop(probe):
    key = flow_key(A6, B6, P.UDP, 7, 8)
    add_rule(probe, key)
    assert run(probe, "xmit", udp(A6, B6, 7, 8), repeat=250) == BPF_DROP
    assert rule_val(probe, key).hits == 250
    st = flows(probe)[want(A6, B6, P.UDP, 7, 8, "xmit")]
    assert (st.packets, st.drops) == (250, 250)
    s = probe.read_stats()
    assert (s["drops"], s["would_drops"], s["packets"]) == (250, 0, 250)


def test_dry_run_passes_and_counts(probe):
    probe.set_config(dry_run=True)
    add_rule(probe, host_key("10.0.0.3/32"))
    assert run(probe, "out", tcp(A, B, 1, 2), repeat=7) == BPF_OK
    assert run(probe, "out", tcp(A, C, 1, 2)) == BPF_OK
    st = flows(probe)[want(A, B, P.TCP, 1, 2)]
    assert (st.verdict, st.drops, st.packets) == (kstructs.DROP, 7, 7)
    assert flows(probe)[want(A, C, P.TCP, 1, 2)].drops == 0
    s = probe.read_stats()
    assert (s["would_drops"], s["drops"]) == (7, 0)
    probe.set_config(dry_run=False)
    assert run(probe, "out", tcp(A, B, 1, 2)) == BPF_DROP


def test_verdict_keys_ignore_hook(probe):
    add_rule(probe, flow_key(A, B, P.UDP, 1, 2))
    assert [run(probe, h, udp(A, B, 1, 2)) for h in HOOKS] == [BPF_DROP] * 3
