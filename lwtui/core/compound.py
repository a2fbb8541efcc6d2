"""Compound rules: what a rule says when it is more than one flow, host or port.

    src host 10.0.0.3 and dst port 8080/tcp
    dst port 8081/tcp and not src host 10.0.0.4
    host 10.0.0.0/24 and not port 22

A compound rule is kept as the kernel judges it: a disjunction of
conjunctions (DNF) of terms. A term is one field compared with one value,
negated or not:

    src host NET, dst host NET, host NET (either address)
    src port P[/PROTO], dst port P[/PROTO], port P[/PROTO] (either port)
    proto N

Terms behave as the single-key rules do: an IPv4 network holds IPv4
addresses only (and the IPv4-mapped IPv6 ones, as the kernel's trie does),
ports are those of TCP and UDP packets only (never ICMP type/code, never a
non-first fragment), a port term without a protocol means tcp or udp.
`not` of a term holds exactly when the term does not.

Each conjunction becomes one entry of the kernel's `compound` map (at most
MAX_TERMS terms); the conjunctions of one rule share its text, so lifting
the rule lifts them all. The limits are the kernel's map layout (bpf/lwtui.h,
LWTUI_COMPOUND_*). Pure Python.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import ClassVar, Optional, Union

from lwtui.core import names
from lwtui.core.model import FlowId, IPAddress, IPNetwork

MAX_TERMS = 8           # terms of one conjunction (LWTUI_COMPOUND_TERMS)
MAX_CONJUNCTIONS = 8    # conjunctions of one rule, i.e. kernel entries (`or` after normalising)
MAX_COMPOUND = 8        # conjunctions of all compound rules of a session (LWTUI_COMPOUND_MAX)

ADDR_FIELDS = ("src host", "dst host", "host")
PORT_FIELDS = ("src port", "dst port", "port")
FIELDS = ADDR_FIELDS + PORT_FIELDS + ("proto",)


def member(addr: IPAddress, net: IPNetwork) -> bool:
    """Membership as the kernel sees it: an IPv6 packet's IPv4-mapped address
    (::ffff:a.b.c.d, never valid on the wire) is the same 16 bytes as IPv4 a.b.c.d."""
    if addr.version == net.version:
        return addr in net
    return (net.version == 4 and isinstance(addr, ipaddress.IPv6Address)
            and addr.ipv4_mapped is not None and addr.ipv4_mapped in net)


@dataclass(frozen=True)
class Term:
    """One comparison of a compound rule. `value` is a network (host fields), a
    port (port fields) or a protocol number (proto); `proto` narrows a port
    term to one protocol (None: tcp or udp)."""
    field: str
    value: Union[IPNetwork, int]
    proto: Optional[int] = None
    negate: bool = False

    def __post_init__(self):
        if self.field not in FIELDS:
            raise ValueError(f"unknown term field {self.field!r}")

    def negated(self) -> "Term":
        return Term(self.field, self.value, self.proto, not self.negate)

    def holds(self, f: FlowId) -> bool:
        return self._test(f) != self.negate

    def _test(self, f: FlowId) -> bool:
        field, v = self.field, self.value
        if field == "proto":
            return f.proto == v
        if field in ADDR_FIELDS:
            assert not isinstance(v, int)
            return ((field != "dst host" and member(f.src, v))
                    or (field != "src host" and member(f.dst, v)))
        if f.fragment or f.proto not in names.PORT_PROTOS:     # the kernel reads no other ports
            return False
        if self.proto is not None and f.proto != self.proto:
            return False
        return (field != "dst port" and f.sport == v) or (field != "src port" and f.dport == v)

    @property
    def text(self) -> str:
        v = self.value
        if self.field == "proto":
            assert isinstance(v, int)
            body = f"proto {names.proto_name(v)}"
        elif self.field in ADDR_FIELDS:
            assert not isinstance(v, int)
            body = f"{self.field} {v.network_address if v.prefixlen == v.max_prefixlen else v}"
        else:
            body = f"{self.field} {v}" + ("" if self.proto is None else f"/{names.proto_name(self.proto)}")
        return ("not " if self.negate else "") + body


Conjunction = tuple[Term, ...]


@dataclass(frozen=True)
class CompoundRule:
    """A rule of terms joined by and/or/not, normalised: any of `dnf`'s
    conjunctions, each all of its terms. Equal rules have equal DNFs."""
    dnf: tuple[Conjunction, ...]
    kind: ClassVar[str] = "rule"

    def __post_init__(self):
        if not self.dnf or not all(self.dnf):
            raise ValueError("a compound rule needs at least one term in each conjunction")
        if len(self.dnf) > MAX_CONJUNCTIONS or any(len(c) > MAX_TERMS for c in self.dnf):
            raise ValueError(f"a compound rule has at most {MAX_CONJUNCTIONS} conjunctions "
                             f"of at most {MAX_TERMS} terms")

    def matches(self, f: FlowId) -> bool:
        return any(all(t.holds(f) for t in conj) for conj in self.dnf)

    def format(self) -> str:
        """Canonical text: the conjunctions joined by `or`, their terms by `and`."""
        return " or ".join(" and ".join(t.text for t in conj) for conj in self.dnf)

    @property
    def text(self) -> str:
        return self.format()

    @property
    def terms(self) -> list[list[dict]]:
        """The DNF as plain data (rules --json): per conjunction, its terms."""
        return [[term_json(t) for t in conj] for conj in self.dnf]


def term_json(t: Term) -> dict:
    value = t.value if isinstance(t.value, int) else str(t.value)
    d: dict = {"field": t.field, "value": value, "negate": t.negate}
    if t.field in PORT_FIELDS:
        d["proto"] = None if t.proto is None else names.proto_name(t.proto)
    return d


def normalise(conj: Conjunction) -> Optional[Conjunction]:
    """A conjunction without repeated terms, in first-seen order; None when it
    holds a term and its negation (it can never match)."""
    out: list[Term] = []
    for t in conj:
        if t.negated() in out:
            return None
        if t not in out:
            out.append(t)
    return tuple(out)
