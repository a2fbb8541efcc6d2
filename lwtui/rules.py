"""Rule grammar (a DESIGN.md contract) and its encoding in the kernel's verdict maps.

    flow PROTO SRC:SPORT DST:DPORT   one connection, both directions; IPv6 in brackets
    host ADDR[/LEN]                  any packet from or to that address or network
    port PORT[/PROTO]                any TCP or UDP packet from or to that port

`matches()` mirrors what the BPF programs do with the encoded keys, so the
dashboard can tell which rule drops a flow without asking the kernel:
- flow rules match either direction (the program also looks the key up with
  source and destination swapped) on every hook; a non-first fragment (ports 0)
  matches only a flow rule with ports 0;
- host rules match source or destination (one LPM trie, IPv4 stored IPv4-mapped);
- port rules match the source or destination port of TCP and UDP only (the
  ports the programs read; ICMP type/code are not ports), never fragments.
IPv4 rules never match IPv6 traffic nor the reverse: IPv6 host rules that would
overlap ::ffff:0:0/96 in the trie are refused at parse time for that reason.
(The one case the trie forces: an IPv6 packet with an IPv4-mapped address,
which Linux never puts on the wire, hits IPv4 host rules; matches() agrees.)

The dashboard's filter language (lwtui/filters.py) reuses this module's atoms;
parse_filter and Filter are reachable from here too. Pure Python: no BCC, no netlink.
"""

from __future__ import annotations

import ctypes as ct
import ipaddress
import re
from dataclasses import dataclass
from typing import ClassVar, Iterable, Optional, Union

from . import kstructs
from .model import FlowId, IPAddress, IPNetwork

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_DIGITS = re.compile(r"[0-9]{1,9}\Z")  # ASCII only: int() would take '٣' and '1_0'
_TOKENS = re.compile(r"[()]|[^\s()]+")
_PORT_PROTOS = (kstructs.IPPROTO_TCP, kstructs.IPPROTO_UDP)
EPHEMERAL = range(32768, 61000)  # Linux's default ip_local_port_range 32768-60999
MAX_NESTING = 32


class RuleError(ValueError):
    """A rule or filter that does not parse. `message` names the fix, `position`
    is the character offset of the offending token in `text` (when known)."""

    def __init__(self, message: str, position: int = 0, text: str | None = None, length: int = 1):
        super().__init__(message)
        self.message = message
        self.position = position
        self.text = text
        self.length = max(1, length)

    def pretty(self, text: str | None = None, indent: str = "  ") -> str:
        """The message, then the text with a caret under the offending token."""
        text = self.text if text is None else text
        if text is None:
            return self.message
        shown = re.sub(r"\s", " ", text)
        pos = min(max(self.position, 0), len(shown))
        return f"{self.message}\n{indent}{shown}\n{indent}{' ' * pos}{'^' * self.length}"

    def __str__(self) -> str:
        return self.pretty()


# -- the rules ---------------------------------------------------------------

def _proto_text(proto: int) -> str:
    return kstructs.PROTO_NAMES.get(proto, str(proto))


def _endpoint_text(addr: IPAddress, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


class _Formatted:
    """`.text`: the rule's canonical grammar text."""
    __slots__ = ()

    @property
    def text(self) -> str:
        return format_rule(self)


@dataclass(frozen=True)
class FlowRule(_Formatted):
    """One connection, matched in both directions. ICMP: sport is the type, dport the code."""
    proto: int
    src: IPAddress
    sport: int
    dst: IPAddress
    dport: int
    kind: ClassVar[str] = "flow"

    def __post_init__(self):
        _check_flow(self.proto, self.src, self.sport, self.dst, self.dport)

    def matches(self, f: FlowId) -> bool:
        # The kernel keys verdicts without hook and flags: a non-first fragment
        # (ports 0) matches only a rule whose ports are 0 as well.
        if f.proto != self.proto or f.src.version != self.src.version:
            return False
        s, d = self.src, self.dst
        return ((f.sport == self.sport and f.dport == self.dport and f.src == s and f.dst == d)
                or (f.sport == self.dport and f.dport == self.sport and f.src == d and f.dst == s))


@dataclass(frozen=True)
class HostRule(_Formatted):
    """Every packet from or to an address or network."""
    network: IPNetwork
    kind: ClassVar[str] = "host"

    def __post_init__(self):
        _check_network(self.network)

    def matches(self, f: FlowId) -> bool:
        return _in(f.src, self.network) or _in(f.dst, self.network)


def _in(addr: IPAddress, net: IPNetwork) -> bool:
    """Membership as the kernel's trie sees it: an IPv6 packet's IPv4-mapped address
    (::ffff:a.b.c.d, never valid on the wire) is the same 16 bytes as IPv4 a.b.c.d."""
    if addr.version == net.version:
        return addr in net
    return net.version == 4 and addr.ipv4_mapped is not None and addr.ipv4_mapped in net


@dataclass(frozen=True)
class PortRule(_Formatted):
    """Every packet from or to a port, of one protocol or (proto None) any."""
    port: int
    proto: Optional[int] = None
    kind: ClassVar[str] = "port"

    def __post_init__(self):
        _check_port_rule(self.port, self.proto)

    def matches(self, f: FlowId) -> bool:
        if f.fragment or f.proto not in _PORT_PROTOS:     # the kernel reads no other ports
            return False
        if self.proto is not None and f.proto != self.proto:
            return False
        return f.sport == self.port or f.dport == self.port


Rule = Union[FlowRule, HostRule, PortRule]


def format_rule(rule: Rule) -> str:
    """The canonical text of a rule: parse_rule(format_rule(r)) == r."""
    if isinstance(rule, FlowRule):
        return (f"flow {_proto_text(rule.proto)} {_endpoint_text(rule.src, rule.sport)} "
                f"{_endpoint_text(rule.dst, rule.dport)}")
    if isinstance(rule, HostRule):
        net = rule.network
        return f"host {net.network_address}" if net.prefixlen == net.max_prefixlen else f"host {net}"
    if isinstance(rule, PortRule):
        return f"port {rule.port}" + ("" if rule.proto is None else f"/{_proto_text(rule.proto)}")
    raise TypeError(f"not a rule: {rule!r}")


# -- checks shared by the constructors and the parser ------------------------

def _plain(message: str, pos: int) -> RuleError:
    return RuleError(message, pos)


def _check_flow(proto, src, sport, dst, dport, err=_plain, pos=(0, 0, 0, 0)) -> None:
    """Raise err(message, offset) for a flow no packet can have; pos: proto, src, sport, dport."""
    if not 0 <= proto <= 255:
        raise err(f"protocol must be 0..255, got {proto}", pos[0])
    if src.version != dst.version:
        raise err("source and destination must both be IPv4 or both IPv6", pos[1])
    if proto == kstructs.IPPROTO_ICMP and src.version == 6:
        raise err("ICMP over IPv6 is icmpv6: write flow icmpv6 ...", pos[0])
    if proto == kstructs.IPPROTO_ICMPV6 and src.version == 4:
        raise err("icmpv6 is for IPv6 addresses: write flow icmp ... for IPv4", pos[0])
    if proto not in _PORT_PROTOS + kstructs.ICMP_PROTOS and (sport or dport):
        raise err(f"lwtui reads no ports for protocol {proto} (its flows have ports 0): "
                  "write SRC:0 DST:0", pos[2] if sport else pos[3])
    for port, at in ((sport, pos[2]), (dport, pos[3])):
        if proto in kstructs.ICMP_PROTOS and not 0 <= port <= 255:
            raise err(f"ICMP type and code are 0..255 (SRC:TYPE DST:CODE), got {port}", at)
        if not 0 <= port <= 65535:
            raise err(f"port must be 0..65535, got {port}", at)


def _check_network(net, err=_plain, pos: int = 0) -> None:
    """Refuse IPv6 networks that would overlap IPv4 in the kernel's one LPM trie."""
    if not isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        raise TypeError(f"HostRule needs an ipaddress network, got {net!r}")
    if net.version == 6 and net.subnet_of(_MAPPED):
        v4 = ipaddress.IPv4Network((net.network_address.ipv4_mapped, net.prefixlen - 96))
        short = v4.network_address if v4.prefixlen == 32 else v4
        raise err(f"{net} is IPv4-mapped: write it as IPv4, host {short}", pos)
    if net.version == 6 and net.supernet_of(_MAPPED):
        raise err(f"{net} would also match every IPv4 packet (the kernel stores IPv4 as "
                  "::ffff:0:0/96): use a longer prefix, or host 0.0.0.0/0 for all IPv4", pos)


def _check_port_rule(port: int, proto: int | None, err=_plain, pos=(0, 0)) -> None:
    """pos: offsets of the port and of the protocol."""
    if not 0 <= port <= 65535:
        raise err(f"port must be 0..65535, got {port}", pos[0])
    if proto is None:
        return
    if proto in kstructs.ICMP_PROTOS:
        raise err("ICMP has no ports: block it with host ADDR or flow icmp SRC:TYPE DST:CODE", pos[1])
    if proto not in _PORT_PROTOS:
        raise err(f"port rules apply to tcp and udp, the protocols whose ports lwtui reads: "
                  f"port {port}/tcp, port {port}/udp, or port {port} for both", pos[1])


# -- tokens and atoms ----------------------------------------------------------

class _Tokens:
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


def _number(s: str, pos: int, what: str, limit: int, tk: _Tokens) -> int:
    if not _DIGITS.match(s) or int(s) > limit:
        raise tk.error(f"{what} must be a number 0..{limit}, got {s!r}", pos, len(s))
    return int(s)


def _proto(s: str, pos: int, tk: _Tokens) -> int:
    name = s.lower()
    if name in kstructs.PROTO_BY_NAME:
        return kstructs.PROTO_BY_NAME[name]
    if _DIGITS.match(s) and int(s) <= 255:
        return int(s)
    raise tk.error(f"unknown protocol {s!r}: use tcp, udp, icmp, icmpv6 or a number 0..255", pos, len(s))


def _address(s: str, pos: int, tk: _Tokens) -> IPAddress:
    if "%" in s:
        raise tk.error(f"{s!r}: zone ids (%...) are not part of rules; leave them out", pos, len(s))
    try:
        return ipaddress.ip_address(s)
    except ValueError:
        raise tk.error(f"{s!r} is not an IP address (e.g. 10.0.0.3 or fd00::3)", pos, len(s)) from None


def _network(s: str, pos: int, tk: _Tokens) -> IPNetwork:
    addr_s, slash, len_s = s.partition("/")
    addr = _address(addr_s, pos, tk)
    bits = addr.max_prefixlen
    if slash:
        bits = _number(len_s, pos + len(addr_s) + 1, f"IPv{addr.version} prefix length",
                       addr.max_prefixlen, tk)
    net = ipaddress.ip_network((addr, bits), strict=False)
    if net.network_address != addr:
        raise tk.error(f"{s} has host bits set: did you mean {net}?", pos, len(s))
    _check_network(net, tk.error, pos)
    return net


def _is_address(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def _endpoint(s: str, pos: int, tk: _Tokens) -> tuple[IPAddress, int, int]:
    """ADDR:PORT or [ADDR]:PORT -> (address, port, offset of the port)."""
    if s.startswith("["):
        addr_s, close, rest = s[1:].partition("]")
        if not close or not rest.startswith(":"):
            raise tk.error(f"expected [ADDR]:PORT, e.g. [fd00::2]:5000, got {s!r}", pos, len(s))
        addr, port_s, port_pos = _address(addr_s, pos + 1, tk), rest[1:], pos + len(addr_s) + 3
    else:
        addr_s, colon, port_s = s.rpartition(":")
        if ":" in addr_s or (not colon and s.count(":") > 1):
            split_ok = _is_address(addr_s) and _DIGITS.match(port_s)
            example = f"[{addr_s}]:{port_s}" if split_ok else f"[{s}]:PORT"
            raise tk.error(f"IPv6 addresses in flow rules go in brackets: {example}", pos, len(s))
        if not colon:
            raise tk.error(f"expected ADDR:PORT, e.g. 10.0.0.3:8080, got {s!r}", pos, len(s))
        addr, port_pos = _address(addr_s, pos, tk), pos + len(addr_s) + 1
    return addr, _number(port_s, port_pos, "port", 65535, tk), port_pos


def _flow_atom(tk: _Tokens) -> FlowRule:
    p_tok, p_pos = tk.take("a protocol: flow PROTO SRC:SPORT DST:DPORT")
    proto = _proto(p_tok, p_pos, tk)
    s_tok, s_pos = tk.take("SRC:SPORT, e.g. flow tcp 10.0.0.2:40000 10.0.0.3:8080")
    src, sport, sp_pos = _endpoint(s_tok, s_pos, tk)
    if tk.peek() == "->":
        tk.take("->")
    d_tok, d_pos = tk.take("DST:DPORT, e.g. flow tcp 10.0.0.2:40000 10.0.0.3:8080")
    dst, dport, dp_pos = _endpoint(d_tok, d_pos, tk)
    _check_flow(proto, src, sport, dst, dport, tk.error, (p_pos, d_pos, sp_pos, dp_pos))
    return FlowRule(proto, src, sport, dst, dport)


def _port_atom(s: str, pos: int, tk: _Tokens) -> PortRule:
    port_s, slash, proto_s = s.partition("/")
    port = _number(port_s, pos, "port", 65535, tk)
    proto = _proto(proto_s, pos + len(port_s) + 1, tk) if slash else None
    _check_port_rule(port, proto, tk.error, (pos, pos + len(port_s) + 1))
    return PortRule(port, proto)


def _rule_atom(word: str, pos: int, tk: _Tokens) -> Rule:
    if word == "flow":
        return _flow_atom(tk)
    if word == "host":
        return HostRule(_network(*tk.take("an address: host ADDR[/LEN], e.g. host 10.0.0.3"), tk))
    if word == "port":
        return _port_atom(*tk.take("a port: port PORT[/PROTO], e.g. port 8080/tcp"), tk)
    raise tk.error(f"unknown rule {word!r}: rules start with flow, host or port", pos, len(word))


def parse_rule(text: str) -> Rule:
    """Parse one rule of the grammar; RuleError (with position) when it does not."""
    tk = _Tokens(text)
    word, pos = tk.take("a rule: flow PROTO SRC:SPORT DST:DPORT, host ADDR[/LEN] or port PORT[/PROTO]")
    rule = _rule_atom(word.lower(), pos, tk)
    if tk.peek() is not None:
        extra, epos = tk.take("")
        raise tk.error(f"unexpected {extra!r} after the rule {rule.text!r}", epos, len(extra))
    return rule


# -- kernel encoding ---------------------------------------------------------------

def _addr16(addr: IPAddress):
    return (ct.c_uint8 * 16)(*kstructs.addr_to_bytes(addr))


def encode(rule: Rule) -> tuple[str, ct.Structure]:
    """(map name, key) of the rule in the session's verdict maps."""
    if isinstance(rule, FlowRule):
        key = kstructs.FlowKey(saddr=_addr16(rule.src), daddr=_addr16(rule.dst), sport=rule.sport,
                               dport=rule.dport, proto=rule.proto, family=rule.src.version, hook=0, flags=0)
        return "verdicts", key
    if isinstance(rule, HostRule):
        net = rule.network
        plen = net.prefixlen + (96 if net.version == 4 else 0)
        return "host_rules", kstructs.HostKey(prefixlen=plen, addr=_addr16(net.network_address))
    if isinstance(rule, PortRule):
        return "port_rules", kstructs.PortKey(port=rule.port, proto=rule.proto or 0, pad=0)
    raise TypeError(f"not a rule: {rule!r}")


def decode(map_name: str, key) -> Rule:
    """Inverse of encode(); ValueError for a key no rule encodes to."""
    if map_name == "verdicts":
        if key.family not in (4, 6):
            raise ValueError(f"verdict key with family {key.family}")
        src = kstructs.bytes_to_addr(bytes(key.saddr), key.family)
        dst = kstructs.bytes_to_addr(bytes(key.daddr), key.family)
        return FlowRule(key.proto, src, key.sport, dst, key.dport)
    if map_name == "host_rules":
        raw = bytes(key.addr)
        if key.prefixlen > 128:
            raise ValueError(f"host key with prefix length {key.prefixlen}")
        if key.prefixlen >= 96 and raw[:12] == kstructs.addr_to_bytes(ipaddress.IPv4Address(0))[:12]:
            net = ipaddress.IPv4Network((raw[12:], key.prefixlen - 96), strict=False)
        else:
            net = ipaddress.IPv6Network((raw, key.prefixlen), strict=False)
        return HostRule(net)
    if map_name == "port_rules":
        return PortRule(key.port, key.proto or None)
    raise ValueError(f"no rules in map {map_name!r}")


# -- rules from a flow (the dashboard's d/h/p) -----------------------------------

def service_port(sport: int, dport: int) -> int:
    """Which of two ports is the service: a well-known port (<1024) wins; else the
    one outside the ephemeral range 32768-60999; else the lower one."""
    if (sport < 1024) != (dport < 1024):
        return sport if sport < 1024 else dport
    if (sport in EPHEMERAL) != (dport in EPHEMERAL):
        return dport if sport in EPHEMERAL else sport
    return min(sport, dport)


def rule_for(flow: FlowId, kind: str, local_hint: Iterable[IPAddress] | None = None) -> Rule:
    """The rule behind the dashboard's keys: 'flow' (d) this exact flow; 'host' (h)
    the remote end; 'port' (p) the service port with its protocol.

    The remote end is the side not in `local_hint` (the local addresses) when that
    decides it, else the destination at out/xmit and the source at in.
    """
    kind = {"d": "flow", "h": "host", "p": "port"}.get(kind, kind)
    if kind == "flow":
        return FlowRule(flow.proto, flow.src, flow.sport, flow.dst, flow.dport)
    if kind == "host":
        local = set(local_hint or ())
        if flow.src in local and flow.dst not in local:
            remote = flow.dst
        elif flow.dst in local and flow.src not in local:
            remote = flow.src
        else:
            remote = flow.src if flow.hook == "in" else flow.dst
        return HostRule(ipaddress.ip_network(remote))
    if kind == "port":
        if flow.fragment or flow.proto not in _PORT_PROTOS:
            what = ("a non-first fragment" if flow.fragment else f"{flow.proto_name.upper()} traffic"
                    if flow.proto in kstructs.PROTO_NAMES else f"protocol {flow.proto}")
            raise RuleError(f"{what} has no ports: block the host (h) or the flow (d)")
        return PortRule(service_port(flow.sport, flow.dport), flow.proto)
    raise ValueError(f"kind must be flow, host or port, got {kind!r}")


def rules_blocking(flow: FlowId, rules: Iterable[Rule]) -> list[Rule]:
    """The rules (of those given) that match this flow, in their order."""
    return [r for r in rules if r.matches(flow)]


# -- the filter language lives in filters.py (same atoms); re-exported here ------

def parse_filter(text: str):
    """The dashboard's filter (see lwtui.filters.parse_filter)."""
    from .filters import parse_filter as parse
    return parse(text)


def __getattr__(name: str):
    if name == "Filter":
        from .filters import Filter
        return Filter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
