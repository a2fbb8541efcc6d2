"""Rule grammar (a contract: README.md, "Rules") and what each rule matches, as the kernel does.

    flow PROTO SRC:SPORT DST:DPORT   one connection, both directions; IPv6 in brackets
    host ADDR[/LEN]                  any packet from or to that address or network
    port PORT[/PROTO]                any TCP or UDP packet from or to that port

`matches()` mirrors what the BPF programs do with the encoded keys, so the
dashboard knows which rules a key like `a` lifts, and, given the kind of rule the
kernel says decided a flow, which rule of that kind it was (rule_of_kind):
- flow rules match either direction (the program also looks the key up with
  source and destination swapped) on every hook; a non-first fragment (ports 0)
  matches only a flow rule with ports 0; the reverse of an ICMP query is its
  reply (icmp_pair: echo 8/0, ICMPv6 echo 128/129, ...) with the same code;
- host rules match source or destination (one LPM trie, IPv4 stored IPv4-mapped);
- port rules match the source or destination port of TCP and UDP only (the
  ports the programs read; ICMP type/code are not ports), never fragments.
IPv4 rules never match IPv6 traffic nor the reverse: IPv6 host rules that would
overlap ::ffff:0:0/96 in the trie are refused at parse time for that reason.
(The one case the trie forces: an IPv6 packet with an IPv4-mapped address,
which Linux never puts on the wire, hits IPv4 host rules; matches() agrees.)

The text of rules is parsed by lwtui.core.grammar (parse_rule), which the filter
language (lwtui.core.filters) shares; how a rule becomes map keys is
lwtui.kernel.codec's. Pure Python: no BCC, no netlink.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import ClassVar, Iterable, Optional, Union, cast

from lwtui.core import names
from lwtui.core.compound import CompoundRule, member
from lwtui.core.model import FlowId, IPAddress, IPNetwork
from lwtui.core.ruleerror import SHOWN, RuleError  # noqa: F401  (re-exported)

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_PORT_PROTOS = names.PORT_PROTOS
EPHEMERAL = range(32768, 61000)  # Linux's default ip_local_port_range 32768-60999


# A rule's TTL in seconds, the same in the dashboard (t) and on the command line
# (--ttl): a second at least, a week at most (longer: no TTL, lift it by hand).
TTL_MIN = 1
TTL_MAX = 7 * 86400

# -- the rules ---------------------------------------------------------------

class _Formatted:
    """`.text`: the rule's canonical grammar text."""
    __slots__ = ()

    @property
    def text(self) -> str:
        try:
            return self._text  # type: ignore[attr-defined]  # set below: rules are frozen, format once
        except AttributeError:
            text = format_rule(cast("Rule", self))   # every subclass is one of the Rule kinds
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
        if f.sport == self.sport and f.dport == self.dport and f.src == s and f.dst == d:
            return True
        if f.src != d or f.dst != s:
            return False
        if self.proto in names.ICMP_PROTOS:  # the reply to the rule's query, same code
            return f.sport == icmp_pair(self.proto, self.sport) and f.dport == self.dport
        return f.sport == self.dport and f.dport == self.sport


# ICMP queries and their replies (either way round), as the programs pair them.
_ICMP_PAIRS = {
    names.IPPROTO_ICMP: {0: 8, 8: 0, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17},
    names.IPPROTO_ICMPV6: {128: 129, 129: 128, 139: 140, 140: 139},
}


def icmp_pair(proto: int, icmp_type: int) -> int:
    """The type that answers an ICMP query type (or asks for a reply type);
    any other type is its own counterpart, as in the programs' reverse lookup."""
    return _ICMP_PAIRS.get(proto, {}).get(icmp_type, icmp_type)


@dataclass(frozen=True)
class HostRule(_Formatted):
    """Every packet from or to an address or network."""
    network: IPNetwork
    kind: ClassVar[str] = "host"

    def __post_init__(self):
        check_network(self.network)

    def matches(self, f: FlowId) -> bool:
        return _in(f.src, self.network) or _in(f.dst, self.network)


_in = member   # membership as the kernel's trie sees it (IPv4-mapped IPv6 is IPv4)


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


Rule = Union[FlowRule, HostRule, PortRule, CompoundRule]


def format_rule(rule: Rule) -> str:
    """The canonical text of a rule: parse_rule(format_rule(r)) == r."""
    if isinstance(rule, FlowRule):
        return (f"flow {names.proto_name(rule.proto)} {names.endpoint(rule.src, rule.sport)} "
                f"{names.endpoint(rule.dst, rule.dport)}")
    if isinstance(rule, HostRule):
        net = rule.network
        return f"host {net.network_address}" if net.prefixlen == net.max_prefixlen else f"host {net}"
    if isinstance(rule, PortRule):
        return f"port {rule.port}" + ("" if rule.proto is None else f"/{names.proto_name(rule.proto)}")
    if isinstance(rule, CompoundRule):
        return rule.format()
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


# Why a flow rule cannot be tried in dry-run (the flag lives in a compound entry), and what to write.
FLOW_DRY_RUN = ("dry-run is for host, port and compound rules, not single flows: write the flow's parts, "
                "e.g. 'src host A and src port P and dst host B and dst port Q'")


def remote_addr(flow: FlowId, local_hint: Iterable[IPAddress] | None = None) -> IPAddress:
    """The flow's remote end: the side not in `local_hint` (the local addresses) when that
    decides it, else the destination at out/xmit and the source at in."""
    local = set(local_hint or ())
    if flow.src in local and flow.dst not in local:
        return flow.dst
    if flow.dst in local and flow.src not in local:
        return flow.src
    return flow.src if flow.hook == "in" else flow.dst


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
        return HostRule(ipaddress.ip_network(remote_addr(flow, local_hint)))
    if kind == "port":
        if flow.fragment or flow.proto not in _PORT_PROTOS:
            what = ("a non-first fragment" if flow.fragment else f"{flow.proto_name.upper()} traffic"
                    if flow.proto in names.PROTO_NAMES else f"protocol {flow.proto}")
            raise RuleError(f"{what} has no ports: block the host (h) or the flow (d)")
        return PortRule(service_port(flow.sport, flow.dport), flow.proto)
    raise ValueError(f"kind must be flow, host or port, got {kind!r}")


def rule_of_kind(flow: FlowId, kind: str, rules: Iterable[Rule]) -> Optional[Rule]:
    """The rule of `kind` that the kernel matched for this flow, among `rules` (the
    active rules listed from the maps). The kernel says which kind decided (a flow's
    rule_kind); within a kind one key matches, looked up as the programs do: flow, the
    key either way round; host, the longest prefix holding the source, else the
    destination's; port, the source then the destination port of the flow's protocol,
    then the destination then the source port for any protocol. None when no active
    rule of that kind matches (it was lifted since the flow's last packet)."""
    mine = [r for r in rules if r.kind == kind and r.matches(flow)]
    if len(mine) < 2:
        return mine[0] if mine else None
    hosts = [r for r in mine if isinstance(r, HostRule)]
    for addr in (flow.src, flow.dst) if hosts else ():
        held = [r for r in hosts if _in(addr, r.network)]
        if held:
            return max(held, key=lambda r: r.network.prefixlen)
    ports = {(r.port, r.proto): r for r in mine if isinstance(r, PortRule)}
    for key in ((flow.sport, flow.proto), (flow.dport, flow.proto), (flow.dport, None), (flow.sport, None)):
        if key in ports:
            return ports[key]
    return mine[0]


def rules_blocking(flow: FlowId, rules: Iterable[Rule]) -> list[Rule]:
    """The rules (of those given) that match this flow, in their order."""
    return [r for r in rules if r.matches(flow)]
