"""Flows grouped by remote host, by service port, or by process, as bandwhich's three
tables, with iftop's 2 s / 10 s / 40 s average rates.

The groups are made from the flow rows a snapshot carries (`Snapshot.flows`,
the store's public output) and its owners, once per refresh: a group's flows,
packets, bytes, drops and current rates are the sums over its rows now. The
averages are of the bits that passed (as the rows' rates are), over the last
2, 10 and 40 seconds, from what each flow gained between refreshes, kept per
group as a short list of (refresh time, bytes passed) for the refreshes in
which it gained something. A flow's passed bytes are its bytes less its
dropped packets' share, at the refresh's mean packet size (exact when all
of a refresh's packets were dropped, or none), as the flow store reckons.

Window arithmetic: refreshes at t0 < t1 < ... < now. The W-second average
is the bits gained in the refreshes after b, divided by now - b, where b is
the latest refresh at or before now - W (so at a 1 s interval the 2 s
average is the last two refreshes over 2 s; at a 3 s interval, the last one
over 3 s); while the grouping is younger than W, b is its first refresh.
What came before the first refresh is not in any average.

A flow first met at a refresh counts whole when its first packet came after
the refresh before (it is new); otherwise (it came back after the store had
expired it) it counts from there on.

Pure Python: no textual, no kernel.
"""

from __future__ import annotations

import functools
import socket
import threading
from dataclasses import dataclass
from typing import Iterable, Mapping

from lwtui.core.model import FlowId, FlowRecord, Owner
from lwtui.core.names import PORT_PROTOS, proto_name
from lwtui.core.rules import remote_addr, service_port

KINDS = ("host", "port", "process")
WINDOWS = (2.0, 10.0, 40.0)
UNKNOWN = "unknown"         # a flow with no local socket found: forwarded, or its process gone


@dataclass(frozen=True)
class GroupRow:
    """One group as the view shows it."""
    key: str                 # "10.0.0.3", "8080/tcp", "curl (pid 4242)"
    flows: int
    packets: int
    bytes: int
    drops: int               # really dropped
    would_drops: int         # dry-run: matched a rule, passed
    pps: float               # passed, the rows' rates summed
    bps: float
    averages: tuple[float, ...]   # bits/s passed over each of WINDOWS


@functools.lru_cache(maxsize=4096)
def service_name(port: int, proto: str) -> str:
    """The port's name in /etc/services ("http-alt"), or "" when it has none."""
    try:
        return socket.getservbyport(port, proto)
    except (OSError, OverflowError):    # /etc/services names no such port (or no such number)
        return ""


def host_key(flow: FlowId) -> str:
    """The remote end's address (rules.remote_addr: the side `h` would block)."""
    return str(remote_addr(flow))


def port_key(flow: FlowId) -> str:
    """'8080/tcp' for TCP and UDP (the service side); the protocol name for the others."""
    name = proto_name(flow.proto)
    if flow.proto not in PORT_PROTOS:
        return name
    if flow.fragment:
        return f"{name} fragments"
    return f"{service_port(flow.sport, flow.dport)}/{name}"


def process_key(flow: FlowId, owners: Mapping[FlowId, Owner] | None) -> str:
    owner = owners.get(flow) if owners is not None else None
    return UNKNOWN if owner is None else f"{owner.comm} (pid {owner.pid})"


class Groups:
    """The three groupings of one session's flows. `update` books each refresh (any thread);
    `rows(kind)` gives a kind's groups as of the last one. Booking is cheap: per flow, one
    look at what it gained; the sums of a kind are made only for the kind `want`ed (the one
    on screen) at each refresh, or when `rows` asks for another."""

    def __init__(self, windows: tuple[float, ...] = WINDOWS):
        self.windows = windows
        self._lock = threading.Lock()
        self._times: list[float] = []                           # refreshes within the longest window, and one before
        # flow -> (packets, bytes, drops, (host key, port key)) at the last refresh
        self._state: dict[FlowId, tuple] = {}
        self._gains: dict[tuple[str, str], list[tuple[float, float]]] = {}   # (kind, key) -> [(time, bytes passed)]
        self._flows: list[FlowRecord] = []                      # the last refresh's rows and owners
        self._owners: Mapping[FlowId, Owner] | None = None
        self._rows: dict[str, list[GroupRow]] = {}              # kind -> rows, made at the last refresh
        self.wanted: str | None = None

    def age(self) -> float:
        """Seconds between the first refresh booked and the last (0: none yet)."""
        with self._lock:
            return self._times[-1] - self._times[0] if self._times else 0.0

    def clear(self) -> None:
        """Forget every refresh: the next one starts the averages afresh."""
        with self._lock:
            self._times, self._state, self._gains, self._flows, self._owners, self._rows = [], {}, {}, [], None, {}

    def want(self, kind: str | None) -> None:
        """Make this kind's rows at each refresh (None: none, booking only)."""
        self.wanted = kind

    def update(self, now: float, flows: Iterable[FlowRecord], owners: Mapping[FlowId, Owner] | None) -> None:
        """Book a refresh: the flows (every row of the snapshot) and their owners at `now` (None:
        the session does not look processes up; every flow's process is unknown)."""
        flows = list(flows)
        with self._lock:
            last = self._times[-1] if self._times else None
            before_all = self._state
            state: dict[FlowId, tuple] = {}
            by_pair: dict[tuple[str, str], float] = {}      # (host, port) -> bytes passed this refresh
            by_proc: dict[str, float] = {}
            unknown = 0.0                                   # bytes passed by flows without an owner
            for rec in flows:
                fid = rec.id
                packets, nbytes, drops = rec.packets, rec.bytes, rec.drops
                before = before_all.get(fid)
                if before is None:
                    pair = (host_key(fid), port_key(fid))
                    state[fid] = (packets, nbytes, drops, pair)
                    if last is None or rec.first_seen <= last:   # met again after the store expired it
                        continue
                    gained = _passed(packets, nbytes, drops, 0, 0, 0)
                else:
                    pair = before[3]
                    state[fid] = (packets, nbytes, drops, pair) if packets != before[0] else before
                    if packets == before[0]:
                        continue
                    gained = _passed(packets, nbytes, drops, before[0], before[1], before[2])
                if gained:
                    by_pair[pair] = by_pair.get(pair, 0.0) + gained
                    if owners and fid in owners:
                        proc = process_key(fid, owners)
                        by_proc[proc] = by_proc.get(proc, 0.0) + gained
                    else:
                        unknown += gained
            if unknown:
                by_proc[UNKNOWN] = by_proc.get(UNKNOWN, 0.0) + unknown
            for (host, port), gained in by_pair.items():
                self._book(("host", host), now, gained)
                self._book(("port", port), now, gained)
            for proc, gained in by_proc.items():
                self._book(("process", proc), now, gained)
            self._state, self._flows, self._owners = state, flows, owners
            self._times.append(now)
            self._prune(now)
            self._rows = {} if self.wanted is None else {self.wanted: self._make_rows(self.wanted)}

    def _book(self, key: tuple[str, str], now: float, gained: float) -> None:
        self._gains.setdefault(key, []).append((now, gained))

    def _prune(self, now: float) -> None:
        """Keep the refreshes of the longest window and the one before it; drop older gains."""
        oldest = now - max(self.windows)
        while len(self._times) > 1 and self._times[1] <= oldest:
            self._times.pop(0)
        base = self._times[0]
        for key in list(self._gains):
            ring = self._gains[key]
            cut = 0
            while cut < len(ring) and ring[cut][0] <= base:
                cut += 1
            if cut == len(ring):
                del self._gains[key]
            elif cut:
                del ring[:cut]

    def _base(self, now: float, window: float) -> float:
        """The refresh the window counts from: the latest at or before now - window, else the first."""
        before = [t for t in self._times if t <= now - window]
        return before[-1] if before else self._times[0]

    def _make_rows(self, kind: str) -> list[GroupRow]:
        """Sums over the last refresh's rows, and the averages; busiest first."""
        if not self._times:
            return []
        now = self._times[-1]
        index = KINDS.index(kind)
        sums: dict[str, list] = {}
        for rec in self._flows:
            key = process_key(rec.id, self._owners) if index == 2 else self._state[rec.id][3][index]
            s = sums.get(key)
            if s is None:
                s = sums[key] = [0, 0, 0, 0, 0, 0.0, 0.0]
            s[0] += 1
            s[1] += rec.packets
            s[2] += rec.bytes
            s[3] += rec.drops
            s[4] += rec.would_drops
            s[5] += rec.pps
            s[6] += rec.bps
        bases = [self._base(now, w) for w in self.windows]
        rows = []
        for key, (n, packets, nbytes, drops, would, pps, bps) in sums.items():
            ring = self._gains.get((kind, key), [])
            averages = tuple(8 * sum(g for t, g in ring if t > b) / (now - b) if now > b else 0.0 for b in bases)
            rows.append(GroupRow(key, n, packets, nbytes, drops, would, pps, bps, averages))
        rows.sort(key=lambda r: (-r.bps, -r.averages[0], -r.bytes, r.key))
        return rows

    def rows(self, kind: str) -> list[GroupRow]:
        """The groups of `kind` ("host", "port" or "process") as of the last refresh, busiest first."""
        with self._lock:
            made = self._rows.get(kind)
            if made is None:
                made = self._rows[kind] = self._make_rows(kind)
            return list(made)


def _passed(packets: int, nbytes: int, drops: int, packets0: int, bytes0: int, drops0: int) -> float:
    """Bytes a flow passed between two readings of its packets, bytes and drops: its new bytes
    less the dropped packets' share at the mean size (see the module docstring)."""
    packets -= packets0
    nbytes -= bytes0
    if packets <= 0 or nbytes <= 0:     # nothing new (or the kernel's entry started again)
        return 0.0
    dropped = drops - drops0
    if dropped <= 0:
        return float(nbytes)
    return nbytes * (packets - min(packets, dropped)) / packets
