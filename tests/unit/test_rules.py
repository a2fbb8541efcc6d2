"""Rule grammar, matching semantics, kernel encoding, and the filter language
(lwtui.core.grammar, rules, filters; lwtui.kernel.codec)."""

from __future__ import annotations

import ctypes as ct
from ipaddress import ip_address as A
from ipaddress import ip_network as N

import pytest

from lwtui.kernel import kstructs
from lwtui.core.model import FlowId, FlowRecord
from lwtui.kernel.codec import decode, encode
from lwtui.core.filters import parse_filter
from lwtui.core.grammar import parse_rule
from lwtui.core.rules import FlowRule, HostRule, PortRule, RuleError, format_rule, rule_for, rule_of_kind, rules_blocking, service_port


def flow(proto=6, src="10.0.0.2", sport=40000, dst="10.0.0.3", dport=8080, hook="out", fragment=False):
    return FlowId(hook, proto, A(src), sport, A(dst), dport, fragment)


# -- grammar: round trips ------------------------------------------------------

CANONICAL = [
    ("flow tcp 10.0.0.2:40000 10.0.0.3:8080", FlowRule(6, A("10.0.0.2"), 40000, A("10.0.0.3"), 8080)),
    ("flow udp [fd00::2]:5000 [fd00::3]:53", FlowRule(17, A("fd00::2"), 5000, A("fd00::3"), 53)),
    ("flow icmp 10.0.0.2:8 10.0.0.3:0", FlowRule(1, A("10.0.0.2"), 8, A("10.0.0.3"), 0)),
    ("flow icmpv6 [fd00::2]:128 [fd00::3]:0", FlowRule(58, A("fd00::2"), 128, A("fd00::3"), 0)),
    ("flow 132 10.0.0.2:0 10.0.0.3:0", FlowRule(132, A("10.0.0.2"), 0, A("10.0.0.3"), 0)),
    ("flow tcp 10.0.0.2:0 10.0.0.3:65535", FlowRule(6, A("10.0.0.2"), 0, A("10.0.0.3"), 65535)),
    ("host 10.0.0.3", HostRule(N("10.0.0.3/32"))),
    ("host 10.0.0.0/24", HostRule(N("10.0.0.0/24"))),
    ("host 0.0.0.0/0", HostRule(N("0.0.0.0/0"))),
    ("host fd00::3", HostRule(N("fd00::3/128"))),
    ("host fd00:6c77::/64", HostRule(N("fd00:6c77::/64"))),
    ("port 8080", PortRule(8080, None)),
    ("port 8080/tcp", PortRule(8080, 6)),
    ("port 53/udp", PortRule(53, 17)),
    ("port 0", PortRule(0, None)),
    ("port 65535/udp", PortRule(65535, 17)),
]


@pytest.mark.parametrize("text, rule", CANONICAL)
def test_canonical_text_round_trips(text, rule):
    assert parse_rule(text) == rule
    assert format_rule(rule) == text
    assert rule.text == text
    assert parse_rule(format_rule(rule)) == rule


@pytest.mark.parametrize("text, canonical", [
    ("FLOW TCP 10.0.0.2:40000 10.0.0.3:8080", "flow tcp 10.0.0.2:40000 10.0.0.3:8080"),
    ("flow 6 10.0.0.2:40000 -> 10.0.0.3:8080", "flow tcp 10.0.0.2:40000 10.0.0.3:8080"),
    ("  flow\tudp  [FD00:0:0::2]:5000   [fd00::3]:53 ", "flow udp [fd00::2]:5000 [fd00::3]:53"),
    ("flow tcp [10.0.0.2]:1 10.0.0.3:2", "flow tcp 10.0.0.2:1 10.0.0.3:2"),
    ("host 10.0.0.3/32", "host 10.0.0.3"),
    ("host fd00:0::3/128", "host fd00::3"),
    ("Host FD00:6C77:0::/64", "host fd00:6c77::/64"),
    ("port 53/17", "port 53/udp"),
    ("port 80/TCP", "port 80/tcp"),
    ("port 00080", "port 80"),
])
def test_other_spellings_format_canonically(text, canonical):
    assert format_rule(parse_rule(text)) == canonical


def test_kind_names():
    assert [parse_rule(t).kind for t in ("flow tcp 10.0.0.2:1 10.0.0.3:2", "host 10.0.0.3", "port 80")] == \
        ["flow", "host", "port"]


# -- grammar: errors ------------------------------------------------------------

@pytest.mark.parametrize("text, pos, words", [
    ("", 0, ["expected a rule"]),
    ("   ", 3, ["expected a rule"]),
    ("block 10.0.0.3", 0, ["unknown rule", "flow, host or port"]),
    ("host", 4, ["expected an address", "host 10.0.0.3"]),
    ("host 10.0.0.3/24", 5, ["host bits set", "did you mean 10.0.0.0/24"]),
    ("host fd00:6c77::1/64", 5, ["did you mean fd00:6c77::/64"]),
    ("host 10.0.0.0/33", 14, ["prefix length", "0..32"]),
    ("host fd00::/129", 12, ["prefix length", "0..128"]),
    ("host 10.0.0.0/x", 14, ["prefix length"]),
    ("host 10.0.0.300", 5, ["not an IP address"]),
    ("host fe80::1%eth0", 5, ["zone"]),
    ("host ::/0", 5, ["would also match every IPv4 packet", "0.0.0.0/0"]),
    ("host ::/64", 5, ["every IPv4 packet"]),
    ("host ::ffff:10.0.0.0/104", 5, ["IPv4-mapped", "host 10.0.0.0/8"]),
    ("host ::ffff:10.0.0.1", 5, ["host 10.0.0.1"]),
    ("host 10.0.0.3 extra", 14, ["unexpected 'extra'"]),
    ("port", 4, ["expected a port"]),
    ("port 65536", 5, ["0..65535"]),
    ("port -1", 5, ["0..65535"]),
    ("port 8o", 5, ["0..65535"]),
    ("port 1" + "0" * 5000, 5, ["0..65535"]),
    ("port ٣", 5, ["0..65535"]),                    # unicode digits are not ports
    ("port 1_0", 5, ["0..65535"]),
    ("port 80/tpc", 8, ["unknown protocol 'tpc'", "tcp, udp, icmp, icmpv6"]),
    ("port 80/256", 8, ["unknown protocol"]),
    ("port 80/icmp", 8, ["ICMP has no ports"]),
    ("port 80/0", 8, ["port rules apply to tcp and udp", "port 80/tcp"]),
    ("port 80/sctp", 8, ["unknown protocol"]),
    ("port 80/132", 8, ["port rules apply to tcp and udp"]),
    ("flow 132 10.0.0.2:0 10.0.0.3:9", 29, ["no ports for protocol 132", "SRC:0 DST:0"]),
    ("flow 47 10.0.0.2:1 10.0.0.3:0", 17, ["no ports for protocol 47"]),
    ("flow", 4, ["expected a protocol"]),
    ("flow tcp", 8, ["expected SRC:SPORT"]),
    ("flow tcp 10.0.0.2:1", 19, ["expected DST:DPORT"]),
    ("flow xyz 10.0.0.2:1 10.0.0.3:2", 5, ["unknown protocol"]),
    ("flow tcp 10.0.0.2 10.0.0.3:2", 9, ["expected ADDR:PORT"]),
    ("flow tcp 10.0.0.2:70000 10.0.0.3:2", 18, ["0..65535"]),
    ("flow tcp 10.0.0.2:1 10.0.0.3:", 29, ["port must be a number"]),
    ("flow udp fd00::2:5000 [fd00::3]:53", 9,
     ["IPv6 addresses in flow rules go in brackets: [fd00::2]:5000"]),
    ("flow udp [fd00::2]:5000 fd00::3", 24, ["IPv6 addresses in flow rules go in brackets: [fd00::3]:PORT"]),
    ("flow udp [fd00::2:5000 [fd00::3]:53", 9, ["expected [ADDR]:PORT"]),
    ("flow udp [fd00::2]5000 [fd00::3]:53", 9, ["expected [ADDR]:PORT"]),
    ("flow udp [fd00::zz]:5000 [fd00::3]:53", 10, ["not an IP address"]),
    ("flow tcp 10.0.0.2:1 [fd00::3]:2", 20, ["both be IPv4 or both IPv6"]),
    ("flow icmp 10.0.0.2:300 10.0.0.3:0", 19, ["ICMP type and code are 0..255"]),
    ("flow icmp 10.0.0.2:8 10.0.0.3:256", 30, ["ICMP type and code are 0..255"]),
    ("flow icmp [fd00::2]:128 [fd00::3]:0", 5, ["icmpv6"]),
    ("flow icmpv6 10.0.0.2:8 10.0.0.3:0", 5, ["flow icmp"]),
    ("flow tcp 10.0.0.2:1 10.0.0.3:2 (", 31, ["unexpected '('"]),
])
def test_errors_name_the_fix_and_point_at_the_token(text, pos, words):
    with pytest.raises(RuleError) as info:
        parse_rule(text)
    e = info.value
    for w in words:
        assert w in e.message, (w, e.message)
    assert e.position == pos, (e.position, e.message)
    assert "\n" not in e.message


def test_error_pretty_puts_a_caret_under_the_token():
    with pytest.raises(RuleError) as info:
        parse_rule("host 10.0.0.3/24")
    e = info.value
    assert e.pretty() == ("10.0.0.3/24 has host bits set: did you mean 10.0.0.0/24?\n"
                          "  host 10.0.0.3/24\n"
                          "       ^^^^^^^^^^^")
    assert str(e) == e.pretty()
    assert e.pretty("host 10.0.0.3/24", indent="") .splitlines()[2] == "     ^^^^^^^^^^^"
    assert isinstance(e, ValueError)


def test_error_without_text_is_just_the_message():
    e = RuleError("bad", 3)
    assert str(e) == "bad" and e.pretty() == "bad"
    assert e.pretty("abcdef").splitlines()[-1] == "     ^"


def test_constructors_refuse_impossible_rules():
    with pytest.raises(RuleError, match="both be IPv4 or both IPv6"):
        FlowRule(6, A("10.0.0.1"), 1, A("fd00::1"), 2)
    with pytest.raises(RuleError, match="0..65535"):
        FlowRule(6, A("10.0.0.1"), 70000, A("10.0.0.2"), 2)
    with pytest.raises(RuleError, match="0..65535"):
        PortRule(-1)
    with pytest.raises(RuleError, match="ICMP has no ports"):
        PortRule(80, 58)
    with pytest.raises(RuleError, match="tcp and udp"):
        PortRule(80, 0)
    with pytest.raises(RuleError, match="no ports for protocol 132"):
        FlowRule(132, A("10.0.0.1"), 1, A("10.0.0.2"), 0)
    with pytest.raises(RuleError, match="every IPv4 packet"):
        HostRule(N("::/0"))
    with pytest.raises(TypeError):
        HostRule("10.0.0.0/8")


# -- matching (what the kernel does with the encoded keys) --------------------

def test_flow_rule_matches_both_directions_on_any_hook():
    r = parse_rule("flow tcp 10.0.0.2:40000 10.0.0.3:8080")
    assert r.matches(flow())
    assert r.matches(flow(hook="in"))
    assert r.matches(flow(src="10.0.0.3", sport=8080, dst="10.0.0.2", dport=40000, hook="xmit"))
    assert not r.matches(flow(proto=17))
    assert not r.matches(flow(sport=40001))
    assert not r.matches(flow(dport=8081))
    assert not r.matches(flow(src="10.0.0.3", sport=40000, dst="10.0.0.2", dport=8080))  # ports not swapped
    assert not r.matches(flow(dst="10.0.0.4"))


def test_flow_rule_v6_never_matches_v4():
    r6 = parse_rule("flow tcp [::ffff:10.0.0.2]:40000 [::ffff:10.0.0.3]:8080")
    assert not r6.matches(flow())
    assert r6.matches(flow(src="::ffff:10.0.0.2", dst="::ffff:10.0.0.3"))


def test_flow_rule_icmp_type_code():
    r = parse_rule("flow icmp 10.0.0.2:8 10.0.0.3:0")
    assert r.matches(flow(proto=1, sport=8, dport=0))
    assert r.matches(flow(proto=1, src="10.0.0.3", sport=0, dst="10.0.0.2", dport=0))  # its echo reply
    assert not r.matches(flow(proto=1, src="10.0.0.3", sport=8, dst="10.0.0.2", dport=0))  # B's own echo
    assert not r.matches(flow(proto=1, src="10.0.0.3", sport=0, dst="10.0.0.2", dport=1))  # another code
    unreach = parse_rule("flow icmp 10.0.0.2:3 10.0.0.3:4")  # unpaired: the same type both ways
    assert unreach.matches(flow(proto=1, src="10.0.0.3", sport=3, dst="10.0.0.2", dport=4))
    v6 = parse_rule("flow icmpv6 [fd00::2]:128 [fd00::3]:0")
    assert v6.matches(flow(proto=58, src="fd00::3", sport=129, dst="fd00::2", dport=0))
    assert not v6.matches(flow(proto=58, src="fd00::3", sport=0, dst="fd00::2", dport=128))  # old swap


def test_flow_rule_and_fragments():
    frag = flow(proto=17, sport=0, dport=0, fragment=True)
    assert not parse_rule("flow udp 10.0.0.2:40000 10.0.0.3:8080").matches(frag)
    assert parse_rule("flow udp 10.0.0.2:0 10.0.0.3:0").matches(frag)   # the kernel keys without flags


def test_host_rule_matches_src_or_dst_and_networks():
    assert parse_rule("host 10.0.0.3").matches(flow())
    assert parse_rule("host 10.0.0.2").matches(flow())
    assert parse_rule("host 10.0.0.0/30").matches(flow())
    assert not parse_rule("host 10.0.0.4/30").matches(flow())
    assert parse_rule("host 0.0.0.0/0").matches(flow(proto=1, fragment=True))
    v6 = flow(src="fd00:6c77::2", dst="fd00:6c77::3")
    assert parse_rule("host fd00:6c77::/64").matches(v6)
    assert not parse_rule("host fd00:6c78::/64").matches(v6)


def test_host_rules_v4_and_v6_never_match_each_other():
    assert not parse_rule("host 0.0.0.0/0").matches(flow(src="fd00::2", dst="fd00::3"))
    assert not parse_rule("host 8000::/1").matches(flow())
    assert not parse_rule("host fd00::/8").matches(flow(src="253.0.0.1"))


def test_host_rule_sees_ipv4_mapped_ipv6_addresses_as_the_kernel_trie_does():
    # One trie, IPv4 stored as ::ffff:a.b.c.d: an IPv6 packet carrying such an
    # address (not valid on the wire) is the same key, so the kernel matches it.
    assert parse_rule("host 10.0.0.0/24").matches(flow(src="fd00::2", dst="::ffff:10.0.0.3"))
    assert not parse_rule("host 10.0.1.0/24").matches(flow(src="fd00::2", dst="::ffff:10.0.0.3"))


def test_port_rule_matches_either_port_any_or_one_proto():
    assert parse_rule("port 8080").matches(flow())
    assert parse_rule("port 40000").matches(flow())
    assert parse_rule("port 8080").matches(flow(proto=17))
    assert parse_rule("port 8080/tcp").matches(flow())
    assert not parse_rule("port 8080/udp").matches(flow())
    assert not parse_rule("port 8081").matches(flow())
    assert parse_rule("port 53/udp").matches(flow(proto=17, src="fd00::2", dst="fd00::3", dport=53))


def test_port_rules_never_match_icmp_or_fragments():
    assert not parse_rule("port 8").matches(flow(proto=1, sport=8, dport=0))
    assert not parse_rule("port 0").matches(flow(proto=58, src="fd00::2", dst="fd00::3", sport=128, dport=0))
    assert not parse_rule("port 0").matches(flow(proto=17, sport=0, dport=0, fragment=True))
    assert not parse_rule("port 0/udp").matches(flow(proto=17, sport=0, dport=0, fragment=True))


def test_port_rules_match_only_tcp_and_udp():
    assert not parse_rule("port 0").matches(flow(proto=132, sport=0, dport=0))   # the kernel reads no ports
    assert not parse_rule("port 0").matches(flow(proto=47, sport=0, dport=0))


def test_rules_blocking_lists_every_matching_rule_in_order():
    rules = [parse_rule(t) for t in ("port 53", "host 10.0.0.3", "port 8080/tcp",
                                     "flow tcp 10.0.0.3:8080 10.0.0.2:40000", "host fd00::/8")]
    assert [r.text for r in rules_blocking(flow(), rules)] == \
        ["host 10.0.0.3", "port 8080/tcp", "flow tcp 10.0.0.3:8080 10.0.0.2:40000"]
    assert rules_blocking(flow(dst="10.0.0.9", dport=1), rules) == []


def test_rule_of_kind_names_the_rule_of_the_kernels_kind():
    f = FlowId("out", 6, A("10.0.0.2"), 40000, A("10.0.0.3"), 8080)
    rules = [parse_rule(t) for t in ("port 8080", "host 10.0.0.0/8", "host 10.0.0.3", "host 10.0.0.2",
                                     "port 40000/tcp", "port 8080/tcp", "flow tcp 10.0.0.3:8080 10.0.0.2:40000")]
    text = lambda kind: rule_of_kind(f, kind, rules).text
    assert text("flow") == "flow tcp 10.0.0.3:8080 10.0.0.2:40000"       # the key either way round
    assert text("host") == "host 10.0.0.2"      # the source's longest prefix first, as the trie lookups
    assert text("port") == "port 40000/tcp"     # source port with the protocol first
    assert rule_of_kind(f, "port", [parse_rule("port 8080"), parse_rule("port 8080/tcp")]).text == "port 8080/tcp"
    assert rule_of_kind(f, "host", [parse_rule("host 10.0.0.3"), parse_rule("host 10.0.0.0/24")]).text \
        == "host 10.0.0.0/24"                   # 10.0.0.2 (the source) is in the /24
    assert rule_of_kind(f, "port", [parse_rule("host 10.0.0.2")]) is None  # lifted since: none of that kind


# -- kernel encoding ------------------------------------------------------------

@pytest.mark.parametrize("text, _rule", CANONICAL)
def test_encode_decode_round_trip(text, _rule):
    rule = parse_rule(text)
    map_name, key = encode(rule)
    copy = type(key).from_buffer_copy(bytes(key))      # as read back from a map
    assert decode(map_name, copy) == rule


def test_encode_flow_key_layout():
    name, k = encode(parse_rule("flow udp 10.0.0.2:5000 10.0.0.3:53"))
    assert name == "verdicts" and isinstance(k, kstructs.FlowKey)
    assert bytes(k.saddr) == b"\0" * 10 + b"\xff\xff" + bytes([10, 0, 0, 2])
    assert bytes(k.daddr) == kstructs.addr_to_bytes(A("10.0.0.3"))
    assert (k.sport, k.dport, k.proto, k.family, k.hook, k.flags) == (5000, 53, 17, 4, 0, 0)
    _, k6 = encode(parse_rule("flow tcp [fd00::2]:1 [fd00::3]:2"))
    assert bytes(k6.saddr) == A("fd00::2").packed and k6.family == 6


def test_encode_host_key_prefix_lengths():
    name, k = encode(parse_rule("host 10.0.0.0/24"))
    assert name == "host_rules" and isinstance(k, kstructs.HostKey)
    assert k.prefixlen == 24 + 96
    assert bytes(k.addr) == kstructs.addr_to_bytes(A("10.0.0.0"))
    assert encode(parse_rule("host 10.0.0.3"))[1].prefixlen == 128
    assert encode(parse_rule("host 0.0.0.0/0"))[1].prefixlen == 96
    _, k6 = encode(parse_rule("host fd00:6c77::/64"))
    assert k6.prefixlen == 64 and bytes(k6.addr) == A("fd00:6c77::").packed


def test_encode_port_key():
    name, k = encode(parse_rule("port 53/udp"))
    assert name == "port_rules" and isinstance(k, kstructs.PortKey)
    assert (k.port, k.proto, k.pad) == (53, 17, 0)
    assert encode(parse_rule("port 8080"))[1].proto == 0
    assert ct.sizeof(k) == 4


def test_decode_refuses_foreign_keys():
    with pytest.raises(ValueError):
        decode("verdicts", kstructs.FlowKey(family=5))
    with pytest.raises(ValueError):
        decode("host_rules", kstructs.HostKey(prefixlen=129))
    with pytest.raises(ValueError):
        decode("flows", kstructs.PortKey())


def test_decode_host_key_with_stray_bits_masks_them():
    k = kstructs.HostKey(prefixlen=96 + 24)
    k.addr[:] = list(kstructs.addr_to_bytes(A("10.0.0.77")))
    assert decode("host_rules", k) == HostRule(N("10.0.0.0/24"))


# -- rules from a flow (d/h/p) -----------------------------------------------

def test_rule_for_flow_is_the_exact_flow():
    f = flow(hook="in")
    assert rule_for(f, "flow") == FlowRule(6, A("10.0.0.2"), 40000, A("10.0.0.3"), 8080)
    assert rule_for(f, "d").matches(f)


def test_rule_for_host_is_the_remote_end():
    f = flow()
    assert rule_for(f, "host").text == "host 10.0.0.3"                    # out: remote is dst
    assert rule_for(flow(hook="xmit"), "h").text == "host 10.0.0.3"
    assert rule_for(flow(hook="in"), "host").text == "host 10.0.0.2"      # in: remote is src
    # A local address known: the other side, whatever the hook.
    assert rule_for(f, "host", local_hint={A("10.0.0.3")}).text == "host 10.0.0.2"
    assert rule_for(flow(hook="in"), "host", local_hint=[A("10.0.0.2")]).text == "host 10.0.0.3"
    assert rule_for(flow(src="fd00::2", dst="fd00::3"), "host").text == "host fd00::3"


def test_rule_for_port_is_the_service_side():
    assert rule_for(flow(sport=40000, dport=8080), "port").text == "port 8080/tcp"
    assert rule_for(flow(proto=17, sport=53, dport=51000), "p").text == "port 53/udp"


@pytest.mark.parametrize("a, b, service", [
    (40000, 8080, 8080),    # one ephemeral
    (8080, 40000, 8080),
    (443, 50000, 443),      # well-known wins
    (22, 5000, 22),         # well-known wins even over a non-ephemeral port
    (80, 443, 80),          # both well-known: the lower
    (5000, 6000, 5000),     # neither ephemeral: the lower
    (33000, 45000, 33000),  # both ephemeral: the lower
    (61000, 40000, 61000),  # 61000 is outside Linux's 32768-60999
])
def test_service_port_heuristic(a, b, service):
    assert service_port(a, b) == service
    assert service_port(b, a) == service


def test_rule_for_port_refuses_icmp_and_fragments():
    with pytest.raises(RuleError, match="ICMP traffic has no ports"):
        rule_for(flow(proto=1, sport=8, dport=0), "port")
    with pytest.raises(RuleError, match="fragment"):
        rule_for(flow(proto=17, sport=0, dport=0, fragment=True), "port")
    with pytest.raises(RuleError, match="protocol 47 has no ports"):
        rule_for(flow(proto=47, sport=0, dport=0), "port")
    with pytest.raises(ValueError):
        rule_for(flow(), "everything")


def test_rules_from_a_flow_match_that_flow():
    for f in (flow(), flow(hook="in", src="fd00::2", dst="fd00::3", proto=17, sport=53, dport=40000)):
        for kind in ("flow", "host", "port"):
            r = rule_for(f, kind)
            assert r.matches(f) and parse_rule(r.text) == r


# -- the filter language ------------------------------------------------------------

def rec(verdict="allow", **kw):
    return FlowRecord(id=flow(**kw), verdict=verdict)


RECORDS = {
    "web": rec(),
    "web_in": rec(hook="in", src="10.0.0.3", sport=8080, dst="10.0.0.2", dport=40000),
    "dns6": rec(proto=17, src="fd00::2", sport=5353, dst="fd00::3", dport=53, hook="xmit"),
    "ping": rec(proto=1, sport=8, dport=0, src="10.0.0.2", dst="10.0.1.9"),
    "dropped": rec(verdict="drop", sport=41000, dport=22, dst="10.0.0.9"),
    "would": rec(verdict="would-drop", proto=17, sport=41001, dport=53, dst="10.0.0.9"),
}


def hits(text):
    f = parse_filter(text)
    return sorted(name for name, r in RECORDS.items() if f.matches(r))


@pytest.mark.parametrize("text, names", [
    ("", sorted(RECORDS)),
    ("   ", sorted(RECORDS)),
    ("host 10.0.0.3", ["web", "web_in"]),
    ("10.0.0.3", ["web", "web_in"]),                               # bare address = host
    ("10.0.0.0/24", ["dropped", "ping", "web", "web_in", "would"]),
    ("10.0.1.0/24", ["ping"]),
    ("fd00::/64", ["dns6"]),
    ("port 53", ["dns6", "would"]),
    ("53", ["dns6", "would"]),                                      # bare number = port
    ("53/udp", ["dns6", "would"]),
    ("port 8", []),                                                 # ICMP type is not a port
    ("proto icmp", ["ping"]),
    ("icmp", ["ping"]),
    ("udp or icmp", ["dns6", "ping", "would"]),
    ("src 10.0.0.3", ["web_in"]),
    ("dst 10.0.0.9/32", ["dropped", "would"]),
    ("hook in", ["web_in"]),
    ("hook XMIT", ["dns6"]),
    ("verdict drop", ["dropped", "would"]),                         # drop includes would-drop
    ("verdict would-drop", ["would"]),
    ("verdict allow", ["dns6", "ping", "web", "web_in"]),
    ("flow tcp 10.0.0.3:8080 10.0.0.2:40000", ["web", "web_in"]),   # both directions
    ("not tcp", ["dns6", "ping", "would"]),
    ("not not tcp", ["dropped", "web", "web_in"]),
    ("tcp and hook out", ["dropped", "web"]),
    ("tcp hook out", ["dropped", "web"]),                            # juxtaposition = and
    ("tcp and not port 22", ["web", "web_in"]),
    ("hook in or verdict drop and udp", ["web_in", "would"]),        # and binds tighter
    ("(hook in or verdict drop) and udp", ["would"]),
    ("not (tcp or udp)", ["ping"]),
    ("((((icmp))))", ["ping"]),
    ("NOT ( HOST 10.0.0.3 OR Port 53 ) AND verdict allow", ["ping"]),
])
def test_filter_combinations(text, names):
    assert hits(text) == names


@pytest.mark.parametrize("text, pos, words", [
    ("(", 1, ["expected a condition"]),
    ("(tcp", 0, ["unclosed '('"]),
    ("tcp)", 3, ["unmatched ')'"]),
    (")", 0, ["unmatched ')'"]),
    ("()", 0, ["empty parentheses"]),
    ("and tcp", 0, ["'and' needs a condition on each side"]),
    ("tcp and", 7, ["expected a condition"]),
    ("tcp or or udp", 7, ["'or' needs a condition"]),
    ("not", 3, ["expected a condition"]),
    ("bogus", 0, ["unknown word 'bogus'", "host, port"]),
    ("tcp bogus", 4, ["unknown word"]),
    ("hook sideways", 5, ["hook is one of in, out, xmit"]),
    ("hook", 4, ["expected hook in|out|xmit"]),
    ("verdict maybe", 8, ["verdict is one of drop, would-drop, allow"]),
    ("proto nope", 6, ["unknown protocol"]),
    ("src 10.0.0.1/24", 4, ["did you mean 10.0.0.0/24"]),
    ("dst", 3, ["expected an address"]),
    ("host 10.0.0.3/24", 5, ["did you mean"]),
    ("99999", 0, ["0..65535"]),
    ("80/xyz", 3, ["unknown protocol"]),
    ("10.0.0.300", 0, ["not an IP address"]),
    ("tcp and flow udp fd00::2:1 [fd00::3]:2", 17, ["go in brackets"]),
    ("(" * 40 + "tcp" + ")" * 40, 32, ["nested deeper"]),
])
def test_filter_errors(text, pos, words):
    with pytest.raises(RuleError) as info:
        parse_filter(text)
    for w in words:
        assert w in info.value.message, (w, info.value.message)
    assert info.value.position == pos, info.value.message


def test_filter_object():
    f = parse_filter("tcp")
    assert not f.empty and f.text == "tcp" and "tcp" in repr(f)
    assert parse_filter("").empty
    deep = parse_filter("(" * 30 + "tcp" + ")" * 30)
    assert deep.matches(RECORDS["web"]) and not deep.matches(RECORDS["ping"])
    long_or = parse_filter(" or ".join(f"port {p}" for p in range(1000, 3000)))  # no recursion limit
    assert not long_or.matches(RECORDS["web"])
    assert parse_filter("not " * 500 + "tcp").matches(RECORDS["web"])
