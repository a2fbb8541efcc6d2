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
    except (OSError, OverflowError):
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
    """The three groupings of one session's flows, updated once per refresh (any thread;
    `rows` may be read from another)."""

    def __init__(self, windows: tuple[float, ...] = WINDOWS):
        self.windows = windows
        self._lock = threading.Lock()
        self._times: list[float] = []                           # refreshes within the longest window, and one before
        self._seen: dict[FlowId, tuple[int, int, int]] = {}     # flow -> (packets, bytes, drops) at the last refresh
        self._keys: dict[FlowId, tuple[str, str]] = {}          # flow -> (host key, port key)
        self._gains: dict[tuple[str, str], list[tuple[float, float]]] = {}   # (kind, key) -> [(time, bytes passed)]
        self._rows: dict[str, list[GroupRow]] = {k: [] for k in KINDS}

    def update(self, now: float, flows: Iterable[FlowRecord], owners: Mapping[FlowId, Owner] | None) -> None:
        """Book a refresh: the flows (every row of the snapshot) and their owners at `now` (None:
        the session does not look processes up; every flow's process is unknown)."""
        flows = list(flows)
        with self._lock:
            last = self._times[-1] if self._times else None
            sums: dict[str, dict[str, list]] = {k: {} for k in KINDS}
            seen: dict[FlowId, tuple[int, int, int]] = {}
            keys: dict[FlowId, tuple[str, str]] = {}
            for rec in flows:
                fid = rec.id
                hp = keys[fid] = self._keys.get(fid) or (host_key(fid), port_key(fid))
                seen[fid] = (rec.packets, rec.bytes, rec.drops)
                gained = self._gained(rec, last)
                for kind, key in zip(KINDS, (*hp, process_key(fid, owners))):
                    s = sums[kind].get(key)
                    if s is None:
                        s = sums[kind][key] = [0, 0, 0, 0, 0, 0.0, 0.0]
                    s[0] += 1
                    s[1] += rec.packets
                    s[2] += rec.bytes
                    s[3] += rec.drops
                    s[4] += rec.would_drops
                    s[5] += rec.pps
                    s[6] += rec.bps
                    if gained and last is not None:
                        ring = self._gains.setdefault((kind, key), [])
                        if ring and ring[-1][0] == now:
                            ring[-1] = (now, ring[-1][1] + gained)
                        else:
                            ring.append((now, gained))
            self._seen, self._keys = seen, keys
            self._times.append(now)
            self._prune(now)
            self._rows = {kind: self._make_rows(kind, sums[kind], now) for kind in KINDS}

    def _gained(self, rec: FlowRecord, last: float | None) -> float:
        """Bytes the flow passed since the last refresh (see the module docstring)."""
        before = self._seen.get(rec.id)
        if before is None:
            if last is None or rec.first_seen <= last:
                return 0.0
            before = (0, 0, 0)
        packets = rec.packets - before[0]
        nbytes = rec.bytes - before[1]
        if packets <= 0 or nbytes <= 0:     # nothing new (or the kernel's entry started again)
            return 0.0
        dropped = min(packets, max(0, rec.drops - before[2]))
        return nbytes * (packets - dropped) / packets

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

    def _make_rows(self, kind: str, sums: dict[str, list], now: float) -> list[GroupRow]:
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
            return list(self._rows[kind])
