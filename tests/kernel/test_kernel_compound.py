"""Compound rules in the kernel: the `compound` entries RuleStore writes judge
crafted packets (BPF_PROG_TEST_RUN) exactly as CompoundRule.matches judges
their flows, name themselves in the flow's cached word, lift together, and
refuse what does not fit."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import _build, _reset
from kutil import BPF_DROP, BPF_OK, flows, run, want
from packets import packet
from lwtui.core.grammar import parse_rule
from lwtui.core.model import FlowId
from lwtui.core.rules import RuleError
from lwtui.kernel import features, kstructs
from lwtui.kernel.pins import PINNED_MAPS
from lwtui.kernel.verdicts import RuleStore, VerdictError

TCP, UDP, ICMP = 6, 17, 1


@pytest.fixture(scope="module", params=["loops", "unrolled"])
def compound_probe(request, probe_session):
    """The main build (bounded loops), and the build kernels without bounded
    loops get (LWTUI_HIDE_FEATURES=bounded_loops: every loop unrolled)."""
    if request.param == "loops":
        yield probe_session
        return
    p = _build(features.plan(environ={features.HIDE_ENV: "bounded_loops"}).cflags, hooks=("in",))  # verdict()'s
    yield p
    p.close()


@pytest.fixture
def probe(compound_probe):
    _reset(compound_probe)
    return compound_probe


def store_of(probe) -> RuleStore:
    return RuleStore({n: probe.map_fd(n) for n in PINNED_MAPS})


def verdict(probe, proto, src, dst, sport=0, dport=0, hook="in") -> int:
    return run(probe, hook, packet(ipaddress.ip_address(src).version, proto, src, dst, sport, dport))


def test_the_seed_ingress_program_is_one_rule(probe):
    s = store_of(probe)
    rule = s.add("src host 10.0.0.3 and dst port 8080/tcp")
    assert rule.kind == "rule"
    assert verdict(probe, TCP, "10.0.0.3", "10.0.0.1", 40000, 8080) == BPF_DROP
    assert verdict(probe, TCP, "10.0.0.3", "10.0.0.1", 40001, 8081) == BPF_OK
    assert verdict(probe, TCP, "10.0.0.4", "10.0.0.1", 40002, 8080) == BPF_OK
    assert verdict(probe, UDP, "10.0.0.3", "10.0.0.1", 40003, 8080) == BPF_OK
    st_ = flows(probe)[want("10.0.0.3", "10.0.0.1", TCP, 40000, 8080, hook="in")]
    assert (st_.rule_kind, kstructs.RULE_KIND_NAMES[st_.rule_kind]) == (kstructs.RULE_COMPOUND, "rule")
    entries = s.entries()
    assert [(e.text, e.kind, e.hits) for e in entries] == [(rule.text, "rule", 1)]
    assert s.remove(rule.text)
    assert verdict(probe, TCP, "10.0.0.3", "10.0.0.1", 40000, 8080) == BPF_OK   # a new generation


def test_or_takes_entries_that_lift_together(probe):
    s = store_of(probe)
    rule = s.add("(src host 10.0.0.3 or src host 10.0.0.4) and not port 22")
    assert len(rule.dnf) == 2
    assert verdict(probe, UDP, "10.0.0.4", "10.0.0.1", 5000, 53) == BPF_DROP
    assert verdict(probe, UDP, "10.0.0.3", "10.0.0.1", 5000, 53) == BPF_DROP
    assert verdict(probe, TCP, "10.0.0.3", "10.0.0.1", 5000, 22) == BPF_OK
    st_ = flows(probe)[want("10.0.0.4", "10.0.0.1", UDP, 5000, 53, hook="in")]
    assert st_.rule_index != flows(probe)[want("10.0.0.3", "10.0.0.1", UDP, 5000, 53, hook="in")].rule_index
    assert [e.text for e in s.entries()] == [rule.text]
    assert s.remove(rule.text) and not s.remove(rule.text)
    assert verdict(probe, UDP, "10.0.0.4", "10.0.0.1", 5000, 53) == BPF_OK


def test_the_entries_run_out_with_a_clear_error(probe):
    s = store_of(probe)
    s.add(" or ".join(f"src port {p}" for p in range(kstructs.COMPOUND_MAX - 1)))
    s.add("dst port 1 and proto tcp")                       # the last free entry
    with pytest.raises(VerdictError, match="compound entries") as info:
        s.add("src port 1 and proto udp")
    assert "`lwtui allow`" in str(info.value)
    assert len(s.entries()) == 2
    with pytest.raises(RuleError, match="more than 8 terms"):
        parse_rule(" and ".join(f"not port {p}" for p in range(9)))
    with pytest.raises(RuleError, match="more than 8 kernel rules"):
        parse_rule(" or ".join(f"port {p}" for p in range(9)))


# -- fuzz: the kernel's encoding agrees with matches() --------------------------

ADDRS = ["10.0.0.1", "10.0.0.3", "10.0.0.4", "10.0.1.9"]
NETS = ["10.0.0.3", "10.0.0.4", "10.0.0.0/24", "10.0.0.0/30", "0.0.0.0/0"]
PORTS = [22, 53, 8080, 8081]
atoms = st.one_of(
    st.builds(lambda d, n: f"{d}host {n}", st.sampled_from(["", "src ", "dst "]), st.sampled_from(NETS)),
    st.builds(lambda d, p, pr: f"{d}port {p}{pr}", st.sampled_from(["", "src ", "dst "]),
              st.sampled_from(PORTS), st.sampled_from(["", "/tcp", "/udp"])),
    st.builds(lambda p: f"proto {p}", st.sampled_from(["tcp", "udp", "icmp"])),
)
exprs = st.recursive(atoms, lambda inner: st.one_of(
    st.builds(lambda a: f"not ({a})", inner),
    st.builds(lambda a, b, op: f"({a}) {op} ({b})", inner, inner, st.sampled_from(["and", "or"]))),
    max_leaves=5)
packets_ = st.lists(st.tuples(st.sampled_from([TCP, UDP, ICMP]), st.sampled_from(ADDRS), st.sampled_from(ADDRS),
                              st.sampled_from(PORTS + [40000]), st.sampled_from(PORTS + [40000])),
                    min_size=6, max_size=6)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=exprs, pkts=packets_)
def test_fuzz_kernel_agrees_with_matches(probe, text, pkts):
    try:
        rule = parse_rule(text)
    except RuleError:
        return          # beyond the limits, or never matching: refused before the kernel
    s = store_of(probe)
    s.add(rule)
    try:
        for proto, src, dst, sport, dport in pkts:
            if proto == ICMP:
                sport, dport = 8, 0
            fid = FlowId("in", proto, ipaddress.ip_address(src), sport, ipaddress.ip_address(dst), dport)
            got = verdict(probe, proto, src, dst, sport, dport) == BPF_DROP
            assert got == rule.matches(fid), (rule.text, fid)
    finally:
        s.remove(rule)
        probe.reset_maps()


def test_a_dry_run_rule_counts_would_drops_while_the_others_enforce(probe):
    s = store_of(probe)
    s.add("proto tcp", dry_run=True)
    s.add("port 8080/tcp", dry_run=True)                 # a port rule in dry-run: one compound term
    s.add("src host 10.0.0.3 and dst port 8081/tcp")
    by_text = {e.text: e for e in s.entries()}
    assert {t: e.dry_run for t, e in by_text.items()} == {
        "proto tcp": True, "port 8080/tcp": True, "src host 10.0.0.3 and dst port 8081/tcp": False}
    base = probe.read_stats()
    for _ in range(3):                                   # every packet of the flow is counted
        assert verdict(probe, TCP, "10.0.0.4", "10.0.0.1", 40000, 8080) == BPF_OK
    assert verdict(probe, TCP, "10.0.0.3", "10.0.0.1", 40001, 8081) == BPF_DROP   # the enforcing rule
    assert verdict(probe, TCP, "10.0.0.4", "10.0.0.1", 40002, 8081) == BPF_OK     # only the dry one
    assert verdict(probe, UDP, "10.0.0.4", "10.0.0.1", 40003, 8080) == BPF_OK     # none
    got = probe.read_stats()
    assert got["would_drops"] - base["would_drops"] == 4 and got["drops"] - base["drops"] == 1
    st_ = flows(probe)[want("10.0.0.4", "10.0.0.1", TCP, 40000, 8080, hook="in")]
    assert (st_.verdict, st_.rule_kind, st_.drops) == (kstructs.WOULD_DROP, kstructs.RULE_COMPOUND_DRY, 3)
    assert s.compound_slots[st_.rule_index].text == "proto tcp"      # the first entry that held
    assert flows(probe)[want("10.0.0.3", "10.0.0.1", TCP, 40001, 8081, hook="in")].verdict == kstructs.DROP
    hits = {e.text: e.hits for e in s.entries()}
    assert hits["proto tcp"] == 5 and hits["port 8080/tcp"] == 3
    assert s.remove("port 8080/tcp") and s.remove("proto tcp")
    assert [e.text for e in s.entries()] == ["src host 10.0.0.3 and dst port 8081/tcp"]
    with pytest.raises(VerdictError, match="not single flows"):
        s.add("flow tcp 10.0.0.4:1 10.0.0.1:2", dry_run=True)
