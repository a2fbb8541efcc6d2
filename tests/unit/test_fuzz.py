"""Hypothesis: random input never breaks the parsers or the event decoder, and rule
matching agrees with a model of the kernel's lookups on the encoded keys."""

from __future__ import annotations

import collections
import ctypes as ct
import ipaddress
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lwtui.kernel import kstructs
from lwtui.core.model import FlowId, FlowRecord
from lwtui.kernel.codec import decode, encode
from lwtui.core.filters import parse_filter
from lwtui.core.grammar import parse_rule
from lwtui.core.rules import FlowRule, HostRule, PortRule, RuleError, format_rule, icmp_pair

# LWTUI_FUZZ_EXAMPLES=20000 for a deeper run than the default suite's.
FUZZ = settings(max_examples=int(os.environ.get("LWTUI_FUZZ_EXAMPLES", "400")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Words that reach deep into the grammar, glued together at random.
VOCAB = ["flow", "host", "port", "proto", "src", "dst", "hook", "verdict", "and", "or", "not",
         "(", ")", "->", "tcp", "udp", "icmp", "icmpv6", "in", "out", "xmit", "drop", "allow",
         "would-drop", "10.0.0.3", "10.0.0.0/24", "10.0.0.3/24", "10.0.0.2:40000", "[fd00::2]:53",
         "fd00::2:53", "fd00::/64", "::/0", "::ffff:10.0.0.1", "[", "]", ":", "/", "80", "80/tcp",
         "65536", "53/icmp", "0", "999999999999", "1.2.3.4/33", "[10.0.0.1]:1", "fe80::1%lo", "٣"]

words = st.lists(st.one_of(st.sampled_from(VOCAB), st.text(max_size=6)), max_size=12)
glue = st.sampled_from([" ", "", "  ", "\t", "(", ")", ":", "/", "[", "]"])


@st.composite
def grammar_soup(draw):
    ws = draw(words)
    return "".join(w + draw(glue) for w in ws)


def _only_rule_errors(fn, text):
    try:
        fn(text)
    except RuleError as e:
        assert isinstance(e.message, str) and e.message
        assert 0 <= e.position <= len(text)
        assert e.pretty(text)                      # never raises either


@FUZZ
@given(st.one_of(st.text(), grammar_soup()))
def test_parse_rule_raises_only_rule_error(text):
    _only_rule_errors(parse_rule, text)


@FUZZ
@given(st.one_of(st.text(), grammar_soup()))
def test_parse_filter_raises_only_rule_error(text):
    _only_rule_errors(parse_filter, text)


RECORD = FlowRecord(id=FlowId("in", 6, ipaddress.ip_address("10.0.0.2"), 40000,
                              ipaddress.ip_address("10.0.0.3"), 80))


@FUZZ
@given(grammar_soup())
def test_parsed_filters_evaluate_without_error(text):
    try:
        f = parse_filter(text)
    except RuleError:
        return
    assert f.matches(RECORD) in (True, False)


@FUZZ
@given(grammar_soup())
def test_every_rule_that_parses_formats_back_to_itself(text):
    try:
        rule = parse_rule(text)
    except RuleError:
        return
    assert parse_rule(format_rule(rule)) == rule
    assert decode(*encode(rule)) == rule


EVENT_SIZE = ct.sizeof(kstructs.LwtuiEvent)
# Short records, whole ones, and whole ones with trailing bytes (perf pads records to 8 bytes).
event_records = st.one_of(st.binary(max_size=EVENT_SIZE - 1),
                          st.binary(min_size=EVENT_SIZE, max_size=EVENT_SIZE),
                          st.binary(min_size=EVENT_SIZE + 1, max_size=2 * EVENT_SIZE))


def test_decode_event_gives_an_event_or_value_error():
    outcomes = collections.Counter()

    @FUZZ
    @given(event_records)
    def decode(data):
        try:
            ev = kstructs.decode_event(data)
        except ValueError:
            assert len(data) < EVENT_SIZE
            outcomes["short"] += 1
            return
        assert isinstance(ev, kstructs.LwtuiEvent)
        assert bytes(ev) == data[:EVENT_SIZE]
        outcomes["decoded"] += 1

    decode()
    assert outcomes["decoded"] > 0 and outcomes["short"] > 0, outcomes


# -- matching agrees with the kernel's lookups on the encoded keys ----------------------

V4 = [ipaddress.ip_address(a) for a in ("10.0.0.2", "10.0.0.3", "10.0.1.2", "0.0.0.0", "255.255.255.255")]
V6 = [ipaddress.ip_address(a) for a in ("fd00::2", "fd00::3", "fd00:1::2", "::", "::ffff:10.0.0.2",
                                          "2001:db8::1")]
v4 = st.one_of(st.sampled_from(V4), st.ip_addresses(v=4))
v6 = st.one_of(st.sampled_from(V6), st.ip_addresses(v=6))
ports = st.one_of(st.sampled_from([0, 8, 53, 80, 8080, 40000]), st.integers(0, 65535))
protos = st.sampled_from([1, 6, 17, 58, 132])


@st.composite
def flows(draw):
    six = draw(st.booleans())
    proto = draw(protos)
    if proto in (1, 58):
        proto = 58 if six else 1
    addr = v6 if six else v4
    frag = draw(st.booleans()) and draw(st.booleans())
    sport, dport = (0, 0) if frag else (draw(ports), draw(ports))
    if proto in (1, 58):
        sport, dport = sport % 256, dport % 256
    if proto not in (1, 6, 17, 58):
        sport = dport = 0          # the programs read no ports for other protocols
    hook = draw(st.sampled_from(["in", "out", "xmit"]))
    return FlowId(hook, proto, draw(addr), sport, draw(addr), dport, frag)


@st.composite
def rules(draw):
    kind = draw(st.sampled_from(["flow", "host", "port"]))
    if kind == "flow":
        f = draw(flows())
        return FlowRule(f.proto, f.src, f.sport, f.dst, f.dport)
    if kind == "port":
        return PortRule(draw(ports), draw(st.sampled_from([None, 6, 17])))
    while True:
        addr = draw(st.one_of(v4, v6))
        net = ipaddress.ip_network((addr, draw(st.integers(0, addr.max_prefixlen))), strict=False)
        try:
            return HostRule(net)
        except RuleError:      # IPv6 networks overlapping IPv4-mapped space are refused
            continue


def _flow_key(f: FlowId, swap: bool) -> bytes:
    """The key the program looks up for a flow, or (swap) for its reverse: ICMP's
    reverse is the counterpart type with the same code (match_flow in the C)."""
    src, sport, dst, dport = (f.dst, f.dport, f.src, f.sport) if swap else (f.src, f.sport, f.dst, f.dport)
    if swap and f.proto in (1, 58):
        sport, dport = icmp_pair(f.proto, f.sport), f.dport
    k = kstructs.FlowKey(sport=sport, dport=dport, proto=f.proto, family=f.family, hook=0, flags=0)
    k.saddr[:] = list(kstructs.addr_to_bytes(src))
    k.daddr[:] = list(kstructs.addr_to_bytes(dst))
    return bytes(k)


def _lpm_hit(key: kstructs.HostKey, addr) -> bool:
    """The trie's test: the first prefixlen bits of the 16-byte forms are equal."""
    shift = 128 - key.prefixlen
    want = int.from_bytes(bytes(key.addr), "big") >> shift
    return want == int.from_bytes(kstructs.addr_to_bytes(addr), "big") >> shift


def kernel_would_match(map_name: str, key, f: FlowId) -> bool:
    """What the BPF program's lookups find for this flow, given one installed key."""
    if map_name == "verdicts":
        return bytes(key) in (_flow_key(f, False), _flow_key(f, True))
    if map_name == "host_rules":
        return _lpm_hit(key, f.src) or _lpm_hit(key, f.dst)
    if f.fragment or f.proto not in (6, 17):
        return False
    return key.port in (f.sport, f.dport) and key.proto in (0, f.proto)


@FUZZ
@given(rules(), flows())
def test_matches_agrees_with_the_kernel_lookups(rule, f):
    assert rule.matches(f) == kernel_would_match(*encode(rule), f)


@FUZZ
@given(rules(), flows())
def test_a_rule_made_from_a_flow_matches_it_and_round_trips(rule, f):
    assert parse_rule(format_rule(rule)) == rule
    assert decode(*encode(rule)) == rule
    exact = FlowRule(f.proto, f.src, f.sport, f.dst, f.dport)
    if f.proto in (1, 58):  # the reverse of an ICMP message is its counterpart type, same code
        reverse = FlowId(f.hook, f.proto, f.dst, icmp_pair(f.proto, f.sport), f.src, f.dport, f.fragment)
    else:
        reverse = FlowId(f.hook, f.proto, f.dst, f.dport, f.src, f.sport, f.fragment)
    assert exact.matches(f) and exact.matches(reverse)
