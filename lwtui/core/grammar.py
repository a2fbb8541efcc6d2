"""The one grammar of rules and filters: tokens with their offsets, the atoms
both languages share (flow, host, port, addresses, protocols), and parse_rule.

lwtui.core.filters builds the filter language (and, or, not, parentheses and a
few display-only atoms) on these atoms, so what a person filters on is what
they can block. Errors are RuleError with the offset of the offending token.
Pure Python.
"""

from __future__ import annotations

import ipaddress
import re

from lwtui.core import names
from lwtui.core.model import IPAddress, IPNetwork
from lwtui.core.rules import (FlowRule, HostRule, PortRule, Rule, RuleError, check_flow, check_network,
                              check_port_rule)

_DIGITS = re.compile(r"[0-9]{1,9}\Z")  # ASCII only: int() would take '٣' and '1_0'
_TOKENS = re.compile(r"[()]|[^\s()]+")
MAX_NESTING = 32


class Tokens:
    """The words of a rule or filter with their offsets; errors point at them."""

    def __init__(self, text: str):
        self.text = text
        self.items = [(m.group(), m.start()) for m in _TOKENS.finditer(text)]
        self.i = 0

    def peek(self) -> str | None:
        return self.items[self.i][0].lower() if self.i < len(self.items) else None

    def take(self, what: str) -> tuple[str, int]:
        """The next token; at the end, an error saying `what` was expected."""
        if self.i >= len(self.items):
            raise self.error(f"expected {what}", len(self.text))
        tok = self.items[self.i]
        self.i += 1
        return tok

    def error(self, message: str, pos: int, length: int = 1) -> RuleError:
        return RuleError(message, pos, self.text, length)


def number(s: str, pos: int, what: str, limit: int, tk: Tokens) -> int:
    if not _DIGITS.match(s) or int(s) > limit:
        raise tk.error(f"{what} must be a number 0..{limit}, got {s!r}", pos, len(s))
    return int(s)


def protocol(s: str, pos: int, tk: Tokens) -> int:
    name = s.lower()
    if name in names.PROTO_BY_NAME:
        return names.PROTO_BY_NAME[name]
    if _DIGITS.match(s) and int(s) <= 255:
        return int(s)
    raise tk.error(f"unknown protocol {s!r}: use tcp, udp, icmp, icmpv6 or a number 0..255", pos, len(s))


def address(s: str, pos: int, tk: Tokens) -> IPAddress:
    if "%" in s:
        raise tk.error(f"{s!r}: zone ids (%...) are not part of rules; leave them out", pos, len(s))
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        raise tk.error(f"{s!r} is not an IP address (e.g. 10.0.0.3 or fd00::3)", pos, len(s)) from None


def network(s: str, pos: int, tk: Tokens) -> IPNetwork:
    addr_s, slash, len_s = s.partition("/")
    addr = address(addr_s, pos, tk)
    bits: int = addr.max_prefixlen
    if slash:
        bits = number(len_s, pos + len(addr_s) + 1, f"IPv{addr.version} prefix length",
                       addr.max_prefixlen, tk)
    net = ipaddress.ip_network((addr, bits), strict=False)
    if net.network_address != addr:
        raise tk.error(f"{s} has host bits set: did you mean {net}?", pos, len(s))
    check_network(net, tk.error, pos)
    return net


def is_address(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:      # the question asked: is it an address?
        return False


def endpoint_word(s: str, pos: int, tk: Tokens) -> tuple[IPAddress, int, int]:
    """ADDR:PORT or [ADDR]:PORT -> (address, port, offset of the port)."""
    if s.startswith("["):
        addr_s, close, rest = s[1:].partition("]")
        if not close or not rest.startswith(":"):
            raise tk.error(f"expected [ADDR]:PORT, e.g. [fd00::2]:5000, got {s!r}", pos, len(s))
        addr, port_s, port_pos = address(addr_s, pos + 1, tk), rest[1:], pos + len(addr_s) + 3
    else:
        addr_s, colon, port_s = s.rpartition(":")
        if ":" in addr_s or (not colon and s.count(":") > 1):
            split_ok = is_address(addr_s) and _DIGITS.match(port_s)
            example = f"[{addr_s}]:{port_s}" if split_ok else f"[{s}]:PORT"
            raise tk.error(f"IPv6 addresses in flow rules go in brackets: {example}", pos, len(s))
        if not colon:
            raise tk.error(f"expected ADDR:PORT, e.g. 10.0.0.3:8080, got {s!r}", pos, len(s))
        addr, port_pos = address(addr_s, pos, tk), pos + len(addr_s) + 1
    return addr, number(port_s, port_pos, "port", 65535, tk), port_pos


def flow_atom(tk: Tokens) -> FlowRule:
    p_tok, p_pos = tk.take("a protocol: flow PROTO SRC:SPORT DST:DPORT")
    proto = protocol(p_tok, p_pos, tk)
    s_tok, s_pos = tk.take("SRC:SPORT, e.g. flow tcp 10.0.0.2:40000 10.0.0.3:8080")
    src, sport, sp_pos = endpoint_word(s_tok, s_pos, tk)
    if tk.peek() == "->":
        tk.take("->")
    d_tok, d_pos = tk.take("DST:DPORT, e.g. flow tcp 10.0.0.2:40000 10.0.0.3:8080")
    dst, dport, dp_pos = endpoint_word(d_tok, d_pos, tk)
    check_flow(proto, src, sport, dst, dport, tk.error, (p_pos, d_pos, sp_pos, dp_pos))
    return FlowRule(proto, src, sport, dst, dport)


def port_atom(s: str, pos: int, tk: Tokens) -> PortRule:
    port_s, slash, proto_s = s.partition("/")
    port = number(port_s, pos, "port", 65535, tk)
    proto = protocol(proto_s, pos + len(port_s) + 1, tk) if slash else None
    check_port_rule(port, proto, tk.error, (pos, pos + len(port_s) + 1))
    return PortRule(port, proto)


def rule_atom(word: str, pos: int, tk: Tokens) -> Rule:
    if word == "flow":
        return flow_atom(tk)
    if word == "host":
        return HostRule(network(*tk.take("an address: host ADDR[/LEN], e.g. host 10.0.0.3"), tk))
    if word == "port":
        return port_atom(*tk.take("a port: port PORT[/PROTO], e.g. port 8080/tcp"), tk)
    raise tk.error(f"unknown rule {word!r}: rules start with flow, host or port", pos, len(word))


def parse_rule(text: str) -> Rule:
    """Parse one rule of the grammar; RuleError (with position) when it does not."""
    tk = Tokens(text)
    word, pos = tk.take("a rule: flow PROTO SRC:SPORT DST:DPORT, host ADDR[/LEN] or port PORT[/PROTO]")
    rule = rule_atom(word.lower(), pos, tk)
    if tk.peek() is not None:
        extra, epos = tk.take("")
        raise tk.error(f"unexpected {extra!r} after the rule {rule.text!r}", epos, len(extra))
    return rule
