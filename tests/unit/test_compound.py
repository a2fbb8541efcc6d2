"""Compound rules: the rule grammar's and/or/not, normalised to the DNF the
kernel enforces, the same language as the dashboard's filter; what the kernel
cannot enforce is refused with a caret under the term."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from lwtui.core.compound import MAX_CONJUNCTIONS, MAX_TERMS, CompoundRule, Term
from lwtui.core.filters import parse_filter
from lwtui.core.grammar import parse_rule
from lwtui.core.model import FlowId, FlowRecord
from lwtui.core.records import rule_json
from lwtui.core.model import RuleEntry
from lwtui.core.rules import HostRule, PortRule, RuleError

A = ipaddress.ip_address
N = ipaddress.ip_network


def flow(proto=6, src="10.0.0.3", sport=40000, dst="10.0.0.1", dport=8080, hook="in", fragment=False):
    return FlowId(hook, proto, A(src), sport, A(dst), dport, fragment)


SEED = "src host 10.0.0.3 and dst port 8080/tcp"


def test_the_seed_ingress_program_is_one_conjunction():
    r = parse_rule(SEED)
    assert isinstance(r, CompoundRule) and r.kind == "rule"
    assert r.dnf == ((Term("src host", N("10.0.0.3/32")), Term("dst port", 8080, 6)),)
    assert r.matches(flow())
    assert not r.matches(flow(dport=8081))
    assert not r.matches(flow(src="10.0.0.4"))
    assert not r.matches(flow(proto=17))
    assert not r.matches(flow(src="10.0.0.1", sport=8080, dst="10.0.0.3", dport=40000))  # the reply


@pytest.mark.parametrize("text, hits, misses", [
    ("dst port 8081/tcp and not src host 10.0.0.4", [flow(dport=8081)], [flow(src="10.0.0.4", dport=8081),
                                                                          flow(dport=8080)]),
    ("host 10.0.0.0/24 and not port 22", [flow(), flow(proto=1, sport=8, dport=0)],
     [flow(dport=22), flow(src="10.0.1.3", dst="10.0.1.1")]),
    ("proto udp or src port 53", [flow(proto=17), flow(sport=53)], [flow()]),
    ("not proto tcp", [flow(proto=17)], [flow()]),
])
def test_the_issue_examples_match_what_they_say(text, hits, misses):
    r = parse_rule(text)
    assert all(r.matches(f) for f in hits) and not any(r.matches(f) for f in misses)


@pytest.mark.parametrize("text, canonical, parts", [
    (SEED, SEED, 1),
    ("(port 1 or port 2) and src 10.0.0.2", "port 1 and src host 10.0.0.2 or port 2 and src host 10.0.0.2", 2),
    ("not (host 10.0.0.1 and port 80)", "not host 10.0.0.1 or not port 80", 2),
    ("not not proto 17", "proto udp", 1),
    ("SRC HOST 10.0.0.3 AND DST PORT 8080/TCP", SEED, 1),
    ("proto tcp and proto tcp", "proto tcp", 1),
    ("proto 6 or proto tcp", "proto tcp", 1),
    ("host 10.0.0.1 and not host 10.0.0.1 or proto udp", "proto udp", 1),
])
def test_rules_normalise_to_a_canonical_dnf(text, canonical, parts):
    r = parse_rule(text)
    assert r.text == canonical and parse_rule(r.text) == r
    assert len(r.dnf) == parts


def test_single_keys_stay_single_key_rules():
    assert parse_rule("host 10.0.0.3") == HostRule(N("10.0.0.3/32"))
    assert parse_rule("(port 80/tcp)") == PortRule(80, 6)
    assert parse_rule("host 10.0.0.3 and host 10.0.0.3") == HostRule(N("10.0.0.3/32"))
    assert parse_rule("flow tcp 10.0.0.2:1 10.0.0.3:2").kind == "flow"
    assert parse_rule("not host 10.0.0.3").kind == "rule"
    assert parse_rule("src host 10.0.0.3").kind == "rule"


@pytest.mark.parametrize("text, pos, words", [
    ("src host 10.0.0.3 and hook in", 22, ["cannot enforce 'hook'", "--hook"]),
    ("verdict drop", 0, ["cannot enforce 'verdict'"]),
    ("port 80 and flow tcp 10.0.0.2:1 10.0.0.3:2", 12, ["a flow rule stands alone"]),
    ("not flow tcp 10.0.0.2:1 10.0.0.3:2", 4, ["a flow rule stands alone"]),
    (" and ".join(f"not port {p}" for p in range(MAX_TERMS + 1)), 15 * MAX_TERMS + 4,     # the extra term
     [f"more than {MAX_TERMS} terms"]),
    (" or ".join(f"port {p}" for p in range(MAX_CONJUNCTIONS + 1)), 10 * MAX_CONJUNCTIONS,  # the extra `or`'s
     [f"more than {MAX_CONJUNCTIONS} kernel rules"]),
    ("host 10.0.0.1 and not host 10.0.0.1", 0, ["can never match"]),
    ("src host 10.0.0.3 dst port 80", 18, ["unexpected 'dst'", "join conditions with and, or"]),
    ("src 10.0.0.3 and (port 80", 17, ["unclosed '('"]),
    ("src nowhere", 4, ["not an IP address"]),
    ("dst port 80/icmp", 12, ["ICMP has no ports"]),
    ("10.0.0.3", 0, ["unknown rule", "flow, host or port"]),
])
def test_what_the_kernel_cannot_enforce_is_refused_with_a_caret(text, pos, words):
    with pytest.raises(RuleError) as info:
        parse_rule(text)
    e = info.value
    for w in words:
        assert w in e.message, (w, e.message)
    assert e.position == pos, (e.position, e.pretty())
    assert "^" in e.pretty().splitlines()[-1]


def test_filters_speak_the_rule_grammar():
    rec = FlowRecord(flow())
    assert parse_filter(SEED).matches(rec)
    assert parse_filter("src port 40000 and dst host 10.0.0.1").matches(rec)
    assert not parse_filter("dst port 8080/udp").matches(rec)
    assert parse_filter("src 10.0.0.0/24 tcp").matches(rec)      # the filter's shorthands stay


def test_rule_json_carries_the_terms():
    d = rule_json(RuleEntry(text="dst port 8081/tcp and not src host 10.0.0.4", kind="rule", hits=3,
                            expires_in=None, created=0.0))
    assert d["terms"] == [[{"field": "dst port", "value": 8081, "negate": False, "proto": "tcp"},
                           {"field": "src host", "value": "10.0.0.4/32", "negate": True}]]
    assert "terms" not in rule_json(RuleEntry(text="host 10.0.0.4", kind="host", hits=0, expires_in=None,
                                              created=0.0))


# -- fuzz: the DNF means what the expression means ------------------------------

ATOMS = ["host 10.0.0.3", "src host 10.0.0.0/24", "dst host 10.0.0.1", "host fd00::/64", "port 22",
         "src port 53/udp", "dst port 8080/tcp", "port 8080", "proto tcp", "proto icmp", "proto 17"]
exprs = st.recursive(st.sampled_from(ATOMS), lambda inner: st.one_of(
    st.builds(lambda a: f"not ({a})", inner),
    st.builds(lambda a, b, op: f"({a}) {op} ({b})", inner, inner, st.sampled_from(["and", "or"]))),
    max_leaves=6)
flows_ = st.builds(flow, proto=st.sampled_from([1, 6, 17]),
                   src=st.sampled_from(["10.0.0.3", "10.0.0.1", "10.0.1.3", "fd00::3"]),
                   sport=st.sampled_from([22, 53, 8080, 40000]),
                   dst=st.sampled_from(["10.0.0.1", "10.0.0.3", "10.0.1.1", "fd00::1"]),
                   dport=st.sampled_from([22, 53, 8080, 40000]), fragment=st.booleans())


@settings(max_examples=300, deadline=None)
@given(text=exprs, flows=st.lists(flows_, min_size=1, max_size=8))
def test_fuzz_the_dnf_matches_exactly_what_the_expression_does(text, flows):
    """The filter evaluates the expression as written (a tree of predicates);
    the rule is its normal form: on every flow they agree."""
    try:
        rule = parse_rule(text)
    except RuleError as e:
        assert "kernel rules" in e.message or "terms" in e.message or "never match" in e.message
        return
    assert parse_rule(rule.text) == rule
    filt = parse_filter(text)
    for f in flows:
        assert rule.matches(f) == filt.matches(FlowRecord(f)), (text, rule.text, f)
