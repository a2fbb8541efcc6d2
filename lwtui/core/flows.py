"""FlowTable: the user-space view of the kernel's `flows` map, with rates.

Each refresh tick the session reads every (flow_key, flow_stats) pair from the
kernel and hands them to FlowTable.update(); new-flow events arrive in between
through note_new(). The table keeps, per flow, a few (time, counters) samples
covering the rate window and a short history of bits/s per tick for
sparklines, and publishes one FlowRecord per flow. Records are replaced, never
mutated, once published: records() is a list of them, safe to hand to the UI
thread while the next update() runs.

Guards, because kernel counters are not a clean series:
- a flow whose counters went down (or whose first_seen moved) was evicted by the
  kernel's LRU and inserted again: its history restarts, no negative rate;
- a new flow was absent at the previous update, so its counters accrued since
  then: that is its baseline (before any update: the rate window);
- zero or negative periods (wall clock stepped back) give rate 0;
- flows absent from a poll keep their counters, their rate decays to 0 over the
  window; flows idle longer than idle_timeout are removed; the table never holds
  more than max_flows (the most idle go first).
Pure Python: no BCC, no netlink.
"""

from __future__ import annotations

import heapq
import struct
from typing import Iterable, NamedTuple, Optional

from lwtui.core.model import FlowId, FlowRecord

_MAX_SAMPLES = 64     # per flow, in case ticks are much shorter than the window
_PACK_ONE = struct.Struct("d").pack   # one history value, as FlowRecord.history stores it (model.py)


def _pack_history(values) -> bytes:
    return struct.pack(f"{len(values)}d", *values)


class Counters(NamedTuple):
    """One flow's counters as read from the kernel (times are wall-clock seconds)."""
    packets: int
    bytes: int
    drops: int
    first_seen: float
    last_seen: float
    tcp_flags: int = 0
    verdict: str = "allow"
    rule: str = ""


def _trim(samples: list, now: float, window: float) -> None:
    """Drop samples older than needed: keep the newest one at or before now-window."""
    start = now - window
    while len(samples) > 1 and samples[1][0] <= start:
        del samples[0]
    if len(samples) > _MAX_SAMPLES:
        del samples[:len(samples) - _MAX_SAMPLES]


class RateMeter:
    """Per-second rate of one growing counter over a sliding window (session totals)."""

    def __init__(self, window: float = 3.0):
        self.window = window
        self.rate = 0.0
        self._samples: list[tuple[float, float]] = []

    def update(self, now: float, value: float) -> float:
        """Add a reading; returns (and keeps in .rate) the per-second rate over the window."""
        s = self._samples
        if s and (value < s[-1][1] or now < s[-1][0]):  # counter reset or clock stepped back
            s.clear()
        s.append((now, value))
        _trim(s, now, self.window)
        period = now - s[0][0]
        self.rate = (value - s[0][1]) / period if period > 0 else 0.0
        return self.rate


class _Entry:
    """Internal per-flow state; `record` is the published, never-mutated copy."""
    __slots__ = ("counters", "samples", "record", "quiet", "tick")

    def __init__(self, record: Optional[FlowRecord] = None):
        self.counters: Optional[Counters] = None
        self.samples: list[tuple] = []    # (time, packets, bytes, drops)
        # None only from update() making the entry to _merge() publishing its first record.
        self.record: FlowRecord = record  # type: ignore[assignment]
        self.quiet = 0                    # trailing zero entries in record.history
        self.tick = 0                     # the update() that last merged this flow


class FlowTable:
    """Flows merged from polls and events; see the module docstring for the maths."""

    def __init__(self, max_flows: int = 100_000, idle_timeout: float = 60.0,
                 history_len: int = 60, rate_window: float = 3.0):
        if max_flows < 1 or history_len < 1 or rate_window <= 0 or idle_timeout <= 0:
            raise ValueError("max_flows, history_len, rate_window and idle_timeout must be positive")
        self.max_flows = max_flows
        self.idle_timeout = idle_timeout
        self.history_len = history_len
        self.rate_window = rate_window
        self._entries: dict[FlowId, _Entry] = {}
        self._last_update: Optional[float] = None
        self._tick = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, flow_id: FlowId) -> bool:
        return flow_id in self._entries

    def get(self, flow_id: FlowId) -> Optional[FlowRecord]:
        e = self._entries.get(flow_id)
        return None if e is None else e.record

    def records(self) -> list[FlowRecord]:
        """Every flow's current record (records are never mutated after publication)."""
        return [e.record for e in self._entries.values()]

    def note_new(self, flow_id: FlowId, now: float) -> None:
        """A new-flow event: make the row exist (zero counters) before the next poll."""
        if flow_id in self._entries:
            return
        if len(self._entries) >= self.max_flows:
            # Evict a little more than one so a burst of events is not O(n) each.
            self._evict(max(0, self.max_flows - max(1, self.max_flows // 100)))
        self._entries[flow_id] = _Entry(FlowRecord(id=flow_id, first_seen=now, last_seen=now))

    def update(self, now: float, rows: Iterable[tuple[FlowId, Counters]]) -> None:
        """Merge one poll of the kernel map (every flow it holds) taken at `now`."""
        entries = self._entries
        oldest = now - self.idle_timeout
        self._tick = tick = self._tick + 1
        merge = self._merge
        merged = 0
        for fid, c in rows:
            e = entries.get(fid)
            if c[4] < oldest:                 # last_seen: idle too long; hidden even if the kernel has it
                if e is not None:
                    del entries[fid]
                continue
            if e is None:
                e = entries[fid] = _Entry()
            elif e.tick == tick:              # the same flow twice in one poll: the first wins
                continue
            e.tick = tick
            merged += 1
            merge(e, fid, now, c)
        if merged != len(entries):
            for fid, e in list(entries.items()):
                if e.tick == tick:
                    continue
                if e.record.last_seen < oldest:
                    del entries[fid]
                elif e.counters is not None:  # gone from the kernel map: its rates decay
                    merge(e, fid, now, e.counters)
        if len(entries) > self.max_flows:
            self._evict(self.max_flows)
        self._last_update = now

    # -- internals ---------------------------------------------------------------
    def _merge(self, e: _Entry, fid: FlowId, now: float, c: Counters) -> None:
        """Fold one reading into a flow's samples and publish a new record."""
        s = e.samples
        r = e.record
        if (e.quiet >= self.history_len and c == e.counters and s[-1][0] <= now
                and not (r.bps or r.pps or r.drops_ps)):
            s.append((now, c[0], c[1], c[2]))   # idle for a whole history: the record stands
            if s[1][0] <= now - self.rate_window or len(s) > _MAX_SAMPLES:
                _trim(s, now, self.rate_window)
            return
        packets, nbytes, drops, first_seen, last_seen, tcp_flags, verdict, rule = c
        old = e.counters
        if s and now < s[-1][0]:               # wall clock stepped back: restart the series here
            s[:] = [(now, packets, nbytes, drops)]
        elif (old is None or packets < old[0] or first_seen != old[3] or nbytes < old[1]
              or drops < old[2]):
            s.clear()                          # new, or evicted and re-inserted (first_seen moved)
            s.append((self._baseline(now, first_seen), 0, 0, 0))
        prev = s[-1]
        s.append((now, packets, nbytes, drops))
        start = now - self.rate_window
        if s[1][0] <= start:
            del s[0]                           # steady ticks: one sample leaves the window
            if s[1][0] <= start or len(s) > _MAX_SAMPLES:
                _trim(s, now, self.rate_window)
        elif len(s) > _MAX_SAMPLES:
            _trim(s, now, self.rate_window)
        t0, p0, b0, d0 = s[0]
        period = now - t0
        if period > 0:
            pps, bps, dps = (packets - p0) / period, (nbytes - b0) * 8 / period, (drops - d0) / period
        else:
            pps = bps = dps = 0.0
        # History: bits/s of this tick alone, so a sparkline shows bursts the window smooths.
        prev_t = prev[0]
        tick_bps = (nbytes - prev[2]) * 8 / (now - prev_t) if now > prev_t else 0.0
        if tick_bps:
            e.quiet = 0
        else:
            e.quiet += 1
        # Published as packed doubles (FlowRecord.history reads them as a tuple):
        # immutable, no float object per value, nothing for the GC to track.
        hist = r.__dict__["_history"] if r is not None else b""
        if hist.__class__ is not bytes:        # a record made by note_new()
            hist = _pack_history(hist)
        keep = (self.history_len - 1) * 8
        if len(hist) > keep:
            hist = hist[len(hist) - keep:]
        # history given packed (bytes, not the field's tuple): FlowRecord.history unpacks it on read.
        e.record = FlowRecord(fid, packets, nbytes, drops, tcp_flags, verdict, rule, first_seen, last_seen,
                              pps, bps, dps, hist + _PACK_ONE(tick_bps))  # type: ignore[arg-type]
        e.counters = c

    def _baseline(self, now: float, first_seen: float) -> float:
        """When a fresh flow's counters were zero: the previous update (it was absent
        then), or before any update the rate window (or first_seen if older)."""
        last = self._last_update
        if last is not None and last < now:
            return last
        start = now - self.rate_window
        return first_seen if 0 < first_seen < start else start

    def _evict(self, target: int) -> None:
        """Remove the most idle flows until at most `target` remain."""
        excess = len(self._entries) - target
        if excess <= 0:
            return
        victims = heapq.nsmallest(excess, self._entries.items(), key=lambda kv: kv[1].record.last_seen)
        for fid, _ in victims:
            del self._entries[fid]
