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

The text of rules is parsed by lwtui.core.grammar (parse_rule), which the filter
language (lwtui.core.filters) shares. Pure Python: no BCC, no netlink.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import ClassVar, Iterable, Optional, Union

from lwtui.core import names
from lwtui.core.model import FlowId, IPAddress, IPNetwork

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_PORT_PROTOS = (names.IPPROTO_TCP, names.IPPROTO_UDP)
EPHEMERAL = range(32768, 61000)  # Linux's default ip_local_port_range 32768-60999


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
    return names.PROTO_NAMES.get(proto, str(proto))


def _endpoint_text(addr: IPAddress, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


class _Formatted:
    """`.text`: the rule's canonical grammar text."""
    __slots__ = ()

    @property
    def text(self) -> str:
        try:
            return self._text       # rules are frozen: format once (ticks ask thousands of times)
        except AttributeError:
            text = format_rule(self)
            object.__setattr__(self, "_text", text)
            return text


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
        check_flow(self.proto, self.src, self.sport, self.dst, self.dport)

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
        check_network(self.network)

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
        check_port_rule(self.port, self.proto)

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


def check_flow(proto, src, sport, dst, dport, err=_plain, pos=(0, 0, 0, 0)) -> None:
    """Raise err(message, offset) for a flow no packet can have; pos: proto, src, sport, dport."""
    if not 0 <= proto <= 255:
        raise err(f"protocol must be 0..255, got {proto}", pos[0])
    if src.version != dst.version:
        raise err("source and destination must both be IPv4 or both IPv6", pos[1])
    if proto == names.IPPROTO_ICMP and src.version == 6:
        raise err("ICMP over IPv6 is icmpv6: write flow icmpv6 ...", pos[0])
    if proto == names.IPPROTO_ICMPV6 and src.version == 4:
        raise err("icmpv6 is for IPv6 addresses: write flow icmp ... for IPv4", pos[0])
    if proto not in _PORT_PROTOS + names.ICMP_PROTOS and (sport or dport):
        raise err(f"lwtui reads no ports for protocol {proto} (its flows have ports 0): "
                  "write SRC:0 DST:0", pos[2] if sport else pos[3])
    for port, at in ((sport, pos[2]), (dport, pos[3])):
        if proto in names.ICMP_PROTOS and not 0 <= port <= 255:
            raise err(f"ICMP type and code are 0..255 (SRC:TYPE DST:CODE), got {port}", at)
        if not 0 <= port <= 65535:
            raise err(f"port must be 0..65535, got {port}", at)


def check_network(net, err=_plain, pos: int = 0) -> None:
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


def check_port_rule(port: int, proto: int | None, err=_plain, pos=(0, 0)) -> None:
    """pos: offsets of the port and of the protocol."""
    if not 0 <= port <= 65535:
        raise err(f"port must be 0..65535, got {port}", pos[0])
    if proto is None:
        return
    if proto in names.ICMP_PROTOS:
        raise err("ICMP has no ports: block it with host ADDR or flow icmp SRC:TYPE DST:CODE", pos[1])
    if proto not in _PORT_PROTOS:
        raise err(f"port rules apply to tcp and udp, the protocols whose ports lwtui reads: "
                  f"port {port}/tcp, port {port}/udp, or port {port} for both", pos[1])


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
                    if flow.proto in names.PROTO_NAMES else f"protocol {flow.proto}")
            raise RuleError(f"{what} has no ports: block the host (h) or the flow (d)")
        return PortRule(service_port(flow.sport, flow.dport), flow.proto)
    raise ValueError(f"kind must be flow, host or port, got {kind!r}")


def rules_blocking(flow: FlowId, rules: Iterable[Rule]) -> list[Rule]:
    """The rules (of those given) that match this flow, in their order."""
    return [r for r in rules if r.matches(flow)]
