"""The data that leaves a Session: what the CLI prints and the dashboard shows.

Plain dataclasses, no BCC, no netlink, no textual. A Session builds one
Snapshot per refresh tick; everything in it is a copy, safe to hand to another
thread.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Sequence, Union

from lwtui.core.names import proto_name

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

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
            return self.__dict__["_hash"]
        except KeyError:
            h = hash((self.hook, self.proto, self.src, self.sport, self.dst, self.dport, self.fragment))
            object.__setattr__(self, "_hash", h)
            return h

    @property
    def family(self) -> int:
        return self.src.version

    @property
    def proto_name(self) -> str:
        return proto_name(self.proto)

    @property
    def is_icmp(self) -> bool:
        return self.proto in (1, 58)


@dataclass
class FlowRecord:
    """A flow's counters and derived metrics as of the last tick.

    `packets` and `bytes` count every packet the hook saw; `drops` only those
    really dropped, `would_drops` those a rule matched in dry-run (they passed).
    The rates are of what passed (pps, bps) and of what was dropped or would
    have been (drops_ps, would_drops_ps), so a blocked flow reads 0 pps.
    """
    id: FlowId
    packets: int = 0
    bytes: int = 0
    drops: int = 0               # really dropped (BPF_DROP)
    tcp_flags: int = 0           # OR of flags seen (FIN=0x01 ... CWR=0x80)
    verdict: str = "allow"       # "allow" | "drop" | "would-drop"
    rule: str = ""               # the rule (grammar text) behind a drop verdict, if known
    first_seen: float = 0.0      # wall clock, seconds since the epoch
    last_seen: float = 0.0
    pps: float = 0.0             # packets passed per second, over the rate window
    bps: float = 0.0             # bits passed per second
    drops_ps: float = 0.0        # packets dropped per second
    history: tuple[float, ...] = ()  # bits/s passed per tick, oldest first, bounded (see the property below)
    would_drops: int = 0         # dry-run: matched a rule, passed
    would_drops_ps: float = 0.0
    drop_history: tuple[float, ...] = ()  # bits/s dropped per tick, aligned on the newest history value

    def idle(self, now: float) -> float:
        return max(0.0, now - self.last_seen)


def _get_history(rec: FlowRecord) -> tuple[float, ...]:
    h = rec.__dict__["_history"]
    if h.__class__ is bytes:              # as a FlowStore publishes it: unpacked on first read
        h = rec.__dict__["_history"] = struct.unpack(f"{len(h) >> 3}d", h)   # same value from any thread
    return h


def _set_history(rec: FlowRecord, value: tuple[float, ...] | bytes) -> None:
    rec.__dict__["_history"] = value


def _get_drop_history(rec: FlowRecord) -> tuple[float, ...]:
    h = rec.__dict__["_drop_history"]
    if h.__class__ is bytes:
        h = rec.__dict__["_drop_history"] = struct.unpack(f"{len(h) >> 3}d", h)
    return h


def _set_drop_history(rec: FlowRecord, value: tuple[float, ...] | bytes) -> None:
    rec.__dict__["_drop_history"] = value


# `history` stays a dataclass field (init, ==, repr, fields(), replace() see a
# tuple) stored in `_history`. A FlowStore stores native doubles packed in bytes
# there: immutable, no float object per value, nothing for the garbage collector
# to track, and most records are never drawn (a terminal shows a few dozen of
# 10,000 flows), so the tuple is built only when someone reads `history`.
# The type checker keeps seeing the fields (tuples), which is what every reader gets.
FlowRecord.history = property(_get_history, _set_history,  # type: ignore[assignment]
                              doc="bits/s passed per tick, oldest first, bounded")
FlowRecord.drop_history = property(_get_drop_history, _set_drop_history,  # type: ignore[assignment]
                                   doc="bits/s dropped per tick, oldest first; shorter than history "
                                       "when the flow's first drops are recent (align on the newest)")


@dataclass(frozen=True)
class Totals:
    """Session-wide counters (sums of the per-CPU `stats` array) and rates.

    Rates cover the same window as the flows' rates: pps and bps of what
    passed, drops_ps of what was dropped, would_drops_ps of what dry-run let
    through that a rule matched.
    """
    packets: int = 0
    bytes: int = 0
    drops: int = 0               # really dropped
    would_drops: int = 0         # dry-run: matched a rule, passed
    parse_errors: int = 0
    events_failed: int = 0       # perf output failures inside the program
    events_lost: int = 0         # reported lost by the perf buffer reader
    new_flows: int = 0
    flow_update_failed: int = 0
    # The kernel's flow map full: entries its LRU evicted to make room (new_flows less the
    # entries it holds), and of those the flows evicted before any read saw them (never
    # in the table, never shown). 0 while the map has room.
    flows_evicted: int = 0
    flows_unseen: int = 0
    pps: float = 0.0
    bps: float = 0.0
    drops_ps: float = 0.0
    would_drops_ps: float = 0.0
    active_flows: int = 0
    flow_capacity: int = 0       # max entries of the kernel flow map
    bpf_runtime: tuple[tuple[str, int, int], ...] = ()  # (hook, run_time_ns, run_cnt) of each program
    # hook -> that hook's kernel counters (lwtui.kernel.kstructs.STAT_NAMES); a packet
    # that crosses two hooks of one route (out, then xmit) is in both, the totals above count it once
    by_hook: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # A recording (JSON) gives lists: keep the field hashable and comparable.
        object.__setattr__(self, "bpf_runtime", tuple(tuple(x) for x in self.bpf_runtime))

    def ns_per_packet(self) -> dict[str, float | None]:
        """Mean nanoseconds lwtui's program spent per packet, by hook (None before its first run)."""
        return {hook: (ns / runs if runs else None) for hook, ns, runs in self.bpf_runtime}


@dataclass(frozen=True)
class Owner:
    """The process holding a flow's local socket, as found when it was looked up."""
    pid: int
    comm: str                    # /proc/PID/comm: the command name, at most 15 characters
    user: str                    # user name (or uid when it has no name)


@dataclass(frozen=True)
class Recording:
    """A pcap file being written (--pcap, the dashboard's w), as of one snapshot."""
    path: str
    flow: FlowId | None          # only this flow's packets; None: every dropped and would-drop packet
    packets: int = 0             # packets written
    skipped: int = 0             # packets not written: the file reached its size cap


@dataclass(frozen=True)
class RuleEntry:
    """An active verdict rule, as listed from the maps."""
    text: str                    # rule grammar, e.g. "port 8080/tcp"
    kind: str                    # "flow" | "host" | "port" | "rule" (compound)
    hits: int = 0                # packets it matched: dropped, or passed in dry-run
    expires_in: float | None = None  # seconds left, None without TTL
    created: float = 0.0         # wall clock
    would_drops: int = 0         # of the hits, those matched in dry-run (they passed)
    dry_run: bool = False        # this rule alone counts would-drops (block --dry-run)

    @property
    def drops(self) -> int:
        """Hits that were really dropped."""
        return max(0, self.hits - self.would_drops)


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
    # every flow: a list, or a flow table's FlowView (lwtui.core.flowcols: records built when read)
    flows: Sequence[FlowRecord] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    rules: list[RuleEntry] = field(default_factory=list)
    events: list[EventEntry] = field(default_factory=list)   # new since the previous snapshot
    routes: list[AttachedRoute] = field(default_factory=list)
    dry_run: bool = False
    keep_blocks: bool = False
    started: float = 0.0                 # wall clock when the session started
    session: str = ""
    owners: dict[FlowId, Owner] | None = None  # flows whose process is known; None: no attribution here
    fallbacks: tuple[str, ...] = ()      # kernel features missing or hidden, an older path taken for each
    recordings: tuple[Recording, ...] = ()   # pcap files being written
    capture_lost: int = 0                # captures the kernel could not send (rate cap, full buffer) or
                                         # the reader lost, over the session (not per file: unknown flow)
