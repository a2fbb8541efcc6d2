"""The data that leaves a Session: what the CLI prints and the dashboard shows.

Plain dataclasses, no BCC, no netlink, no textual. A Session builds one
Snapshot per refresh tick; everything in it is a copy, safe to hand to another
thread.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Union

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


@dataclass(frozen=True, order=True)
class FlowId:
    """One flow as the kernel keys it (struct flow_key, decoded).

    For ICMP/ICMPv6, `sport` is the type and `dport` the code. `fragment` marks
    non-first fragments, which carry no L4 header (ports 0).
    """
    hook: str          # "in" | "out" | "xmit"
    proto: int
    src: IPAddress
    sport: int
    dst: IPAddress
    dport: int
    fragment: bool = False

    def __hash__(self) -> int:
        # Flow ids key every dict of the flow table and the UI: hash once.
        try:
            return self._hash
        except AttributeError:
            h = hash((self.hook, self.proto, self.src, self.sport, self.dst, self.dport, self.fragment))
            object.__setattr__(self, "_hash", h)
            return h

    @property
    def family(self) -> int:
        return self.src.version

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    @property
    def is_icmp(self) -> bool:
        return self.proto in (1, 58)


@dataclass
class FlowRecord:
    """A flow's counters and derived metrics as of the last tick."""
    id: FlowId
    packets: int = 0
    bytes: int = 0
    drops: int = 0               # dropped, or would-dropped in dry-run
    tcp_flags: int = 0           # OR of flags seen (FIN=0x01 ... CWR=0x80)
    verdict: str = "allow"       # "allow" | "drop" | "would-drop"
    rule: str = ""               # the rule (grammar text) behind a drop verdict, if known
    first_seen: float = 0.0      # wall clock, seconds since the epoch
    last_seen: float = 0.0
    pps: float = 0.0             # over the rate window
    bps: float = 0.0             # bits per second
    drops_ps: float = 0.0
    history: tuple[float, ...] = ()  # bits/s per tick, oldest first, bounded (see the property below)

    def idle(self, now: float) -> float:
        return max(0.0, now - self.last_seen)


def _get_history(rec: FlowRecord) -> tuple[float, ...]:
    h = rec._history
    if h.__class__ is bytes:              # as a FlowTable publishes it: unpacked on first read
        h = rec._history = struct.unpack(f"{len(h) >> 3}d", h)   # same value from any thread
    return h


def _set_history(rec: FlowRecord, value) -> None:
    rec._history = value


# `history` stays a dataclass field (init, ==, repr, fields(), replace() see a
# tuple) stored in `_history`. A FlowTable stores native doubles packed in bytes
# there: immutable, no float object per value, nothing for the garbage collector
# to track, and most records are never drawn (a terminal shows a few dozen of
# 10,000 flows), so the tuple is built only when someone reads `history`.
FlowRecord.history = property(_get_history, _set_history, doc="bits/s per tick, oldest first, bounded")


@dataclass(frozen=True)
class Totals:
    """Session-wide counters (sums of the per-CPU `stats` array) and rates."""
    packets: int = 0
    bytes: int = 0
    drops: int = 0
    would_drops: int = 0
    parse_errors: int = 0
    events_failed: int = 0       # perf output failures inside the program
    events_lost: int = 0         # reported lost by the perf buffer reader
    new_flows: int = 0
    flow_update_failed: int = 0
    pps: float = 0.0
    bps: float = 0.0
    drops_ps: float = 0.0
    active_flows: int = 0
    flow_capacity: int = 0       # max entries of the kernel flow map
    # hook -> that hook's kernel counters (lwtui.kernel.kstructs.STAT_NAMES); a packet
    # that crosses two hooks of one route (out, then xmit) is in both, the totals above count it once
    by_hook: dict = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class RuleEntry:
    """An active verdict rule, as listed from the maps."""
    text: str                    # rule grammar, e.g. "port 8080/tcp"
    kind: str                    # "flow" | "host" | "port"
    hits: int = 0
    expires_in: float | None = None  # seconds left, None without TTL
    created: float = 0.0         # wall clock


@dataclass(frozen=True)
class EventEntry:
    """One line of the event log: a new flow, a drop, a block, an allow, a loss."""
    time: float                  # wall clock
    kind: str                    # "new" | "drop" | "block" | "allow" | "lost" | "info" | "error"
    text: str
    flow: FlowId | None = None


@dataclass(frozen=True)
class AttachedRoute:
    """A route the session has attached to."""
    prefix: str
    hook: str
    netns: str | None
    dev: str | None


@dataclass
class Snapshot:
    """Everything a view needs for one refresh tick."""
    time: float                          # wall clock of the read
    flows: list[FlowRecord] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    rules: list[RuleEntry] = field(default_factory=list)
    events: list[EventEntry] = field(default_factory=list)   # new since the previous snapshot
    routes: list[AttachedRoute] = field(default_factory=list)
    dry_run: bool = False
    keep_blocks: bool = False
    started: float = 0.0                 # wall clock when the session started
    session: str = ""
