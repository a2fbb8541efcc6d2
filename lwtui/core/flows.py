"""FlowTable: the user-space view of the kernel's `flows` map, with rates.

Each refresh tick the session reads every (flow_key, flow_stats) pair from the
kernel and hands them to FlowTable.update(); new-flow events arrive in between
through note_new(). The table keeps, per flow, a few (time, counters) samples
covering the rate window and a short history of bits/s per tick for
sparklines, and publishes one FlowRecord per flow. Records are replaced, never
mutated, once published: records() is a list of them, safe to hand to the UI
thread while the next update() runs.

What passed and what was dropped are apart: the kernel keeps one drop counter
per flow for drops and dry-run would-drops alike, so the drops a flow gained
since the previous update are booked by the mode of that time (update()'s
dry_run). Rates (pps, bps) are of passed packets: every packet seen but the
really dropped ones. The kernel counts drops in packets, not bytes: a tick's
dropped bytes are its dropped packets at the tick's mean packet size, exact
whenever a flow's packets in a tick were all dropped or none.

Guards, because kernel counters are not a clean series:
- a flow whose counters went down (or whose first_seen moved) was evicted by the
  kernel's LRU and inserted again: its history restarts, no negative rate;
- a new flow's counters accrued since its first packet (first_seen): that is
  its baseline, so a young flow's rate covers its own age, not a whole window
  (a flow younger than _MIN_SPAN counts as that old); a flow that was there
  before the previous update yet new to the table (kept out as idle) has an
  unknown baseline: no rate until its next reading;
- zero or negative periods (wall clock stepped back) give rate 0;
- flows absent from a poll keep their counters, their rate decays to 0 over the
  window; flows idle longer than idle_timeout are removed; the table never holds
  more than max_flows (the most idle go first).
Pure Python: no BCC, no netlink.
"""

from __future__ import annotations

import heapq
import struct
from dataclasses import replace
from typing import Iterable, NamedTuple, Optional

from lwtui.core.model import FlowId, FlowRecord, RuleEntry

_MAX_SAMPLES = 64     # per flow, in case ticks are much shorter than the window
# A flow younger than this has its rate taken over this span: two packets 1 ms
# apart are not 1000 packets/s.
_MIN_SPAN = 0.25
# How far a flow's first_seen (the kernel's coarse clock, converted to wall
# time) may lie before the previous update and still be a flow that began since.
_CLOCK_SLACK = 0.05
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
    """Per-second rate of one growing counter over a sliding window (session totals),
    taken as the flows' rates are, so the header's figures agree with the rows'."""

    def __init__(self, window: float = 3.0, start: Optional[tuple[float, float]] = None):
        """`start`: (time, value) when counting began, the baseline of the first readings."""
        self.window = window
        self.rate = 0.0
        self._samples: list[tuple[float, float]] = [start] if start is not None else []

    def update(self, now: float, value: float, onset: Optional[float] = None) -> float:
        """Add a reading; returns (and keeps in .rate) the per-second rate over the window.

        `onset`: when the counter first grew, if known (the first packet of a session
        whose counters start at 0): a baseline of 0 from before it counts from it, as a
        young flow's rate covers its own age."""
        s = self._samples
        if s and (value < s[-1][1] or now < s[-1][0]):  # counter reset or clock stepped back
            s.clear()
        s.append((now, value))
        _trim(s, now, self.window)
        t0 = s[0][0]
        if onset is not None and s[0][1] == 0 and t0 < onset:
            t0 = min(onset, now)
        period = now - t0
        if period > 0:
            period = max(period, min(_MIN_SPAN, self.window))
        self.rate = (value - s[0][1]) / period if period > 0 else 0.0
        return self.rate


class TotalRates:
    """The session's rates from the kernel's `stats` totals, over the flows' window and
    counted from when counting began: packets and bits that passed, drops, would-drops.
    The kernel counts no dropped bytes: the flows' estimate of them is taken out."""

    def __init__(self, window: float, start: float):
        self._meters = {k: RateMeter(window, start=(start, 0)) for k in ("packets", "bytes", "drops", "would")}

    def update(self, now: float, stats: dict, dropped_bytes: float,
               first_packet: Optional[float] = None) -> dict[str, float]:
        """Totals' rate fields (Totals.pps, bps, drops_ps, would_drops_ps) at `now`;
        `first_packet`: when the session's first flow began (FlowTable.first_packet), so
        the totals of a young session are over its traffic's age, as a young row's are."""
        m = self._meters
        passed = max(0, stats["packets"] - stats["drops"])
        return {"pps": m["packets"].update(now, passed, first_packet),
                "bps": m["bytes"].update(now, max(0.0, stats["bytes"] - dropped_bytes), first_packet) * 8,
                "drops_ps": m["drops"].update(now, stats["drops"]),
                "would_drops_ps": m["would"].update(now, stats["would_drops"])}


class HitSplit:
    """Rule hits booked by mode: the kernel counts a rule's matches in one counter,
    dropped or (dry-run) passed. Each reading's new hits go to the mode of the time
    since the previous reading, as FlowTable does with a flow's drops."""

    def __init__(self):
        self._last: dict[str, tuple[int, int]] = {}   # rule text -> (hits, would-drops)

    def _split(self, e: RuleEntry, dry_run: bool) -> tuple[int, int]:
        hits, would = self._last.get(e.text, (0, 0))
        if e.hits < hits:                             # lifted and added again: counts restart
            hits = would = 0
        return e.hits, would + (e.hits - hits if dry_run or e.dry_run else 0)

    def update(self, entries: Iterable[RuleEntry], dry_run: bool) -> list[RuleEntry]:
        """Book this reading; the entries with would_drops filled in."""
        entries = list(entries)
        split = {e.text: self._split(e, dry_run) for e in entries}
        self._last = split
        return [replace(e, would_drops=split[e.text][1]) for e in entries]

    def view(self, entries: Iterable[RuleEntry], dry_run: bool) -> list[RuleEntry]:
        """As update(), without booking (a read between ticks)."""
        entries = list(entries)
        return [replace(e, would_drops=self._split(e, dry_run)[1]) for e in entries]


class _Entry:
    """Internal per-flow state; `record` is the published, never-mutated copy."""
    __slots__ = ("counters", "samples", "record", "quiet", "tick", "would", "dbytes")

    def __init__(self, record: Optional[FlowRecord] = None):
        self.counters: Optional[Counters] = None
        self.samples: list[tuple] = []    # (time, packets passed, bytes passed, drops, would-drops)
        # None only from update() making the entry to _merge() publishing its first record.
        self.record: FlowRecord = record  # type: ignore[assignment]
        self.quiet = 0                    # trailing ticks with nothing passed or dropped
        self.tick = 0                     # the update() that last merged this flow
        self.would = 0                    # of the kernel's drops, those counted in dry-run
        self.dbytes = 0.0                 # bytes of the really dropped packets (estimated, see _split)


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
        self._keep = (history_len - 1) * 8   # bytes of history a record keeps before the newest value
        self._entries: dict[FlowId, _Entry] = {}
        self._last_update: Optional[float] = None
        self._tick = 0
        self.dropped_bytes = 0.0          # every flow's dropped bytes so far (estimated, see _split)
        self.first_packet: Optional[float] = None   # the earliest first_seen of any flow merged

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

    def update(self, now: float, rows: Iterable[tuple[FlowId, Counters]], dry_run: bool = False) -> None:
        """Merge one poll of the kernel map (every flow it holds) taken at `now`.

        `dry_run`: the mode since the previous update. The kernel counts a flow's
        drops and would-drops in one counter; what it gained since goes to
        would_drops in dry-run, to drops otherwise (so call update() when the
        mode changes, before changing it)."""
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
            merge(e, fid, now, c, dry_run)
        if merged != len(entries):
            for fid, e in list(entries.items()):
                if e.tick == tick:
                    continue
                if e.record.last_seen < oldest:
                    del entries[fid]
                elif e.counters is not None:  # gone from the kernel map: its rates decay
                    merge(e, fid, now, e.counters, dry_run)
        if len(entries) > self.max_flows:
            self._evict(self.max_flows)
        self._last_update = now

    # -- internals ---------------------------------------------------------------
    def _merge(self, e: _Entry, fid: FlowId, now: float, c: Counters, dry_run: bool) -> None:
        """Fold one reading into a flow's samples and publish a new record."""
        s = e.samples
        r = e.record
        if (e.quiet >= self.history_len and c == e.counters and s[-1][0] <= now
                and not (r.bps or r.pps or r.drops_ps or r.would_drops_ps)):
            s.append((now,) + s[-1][1:])      # idle for a whole history: the record stands
            if s[1][0] <= now - self.rate_window or len(s) > _MAX_SAMPLES:
                _trim(s, now, self.rate_window)
            return
        packets, nbytes, kdrops, first_seen, last_seen, tcp_flags, verdict, rule = c
        old: tuple = e.counters or (0, 0, 0)
        fresh = (e.counters is None or packets < old[0] or first_seen != old[3] or nbytes < old[1]
                 or kdrops < old[2])          # new, or evicted and re-inserted (first_seen moved)
        if fresh:
            e.would = 0
            e.dbytes = 0.0
            old = (0, 0, 0)
        dbytes_before = dbytes = e.dbytes
        if kdrops != old[2]:                   # most flows never drop: no split to make
            self._split(e, packets - old[0], nbytes - old[1], kdrops - old[2], nbytes,
                        dry_run or verdict == "would-drop")     # a dry-run rule's flow passes
            dbytes = e.dbytes
        would = e.would
        drops = kdrops - would
        point = (now, packets - drops, nbytes - dbytes, drops, would)
        if s and now < s[-1][0]:               # wall clock stepped back: restart the series here
            s[:] = [point]
        elif fresh:
            s.clear()
            if first_seen > 0 and (self.first_packet is None or first_seen < self.first_packet):
                self.first_packet = first_seen
            since = self._baseline(now, first_seen)
            # Its counts since `since`, all of them; unknown start: no rate until the next reading.
            s.append((since, 0, 0.0, 0, 0) if since is not None else point)
        prev = s[-1]
        pps, bps, dps, wps = self._window_rates(s, point, now)
        # History: bits/s of this tick alone, so a sparkline shows bursts the window smooths.
        tick = now - prev[0]
        tick_bps = (point[2] - prev[2]) * 8 / tick if tick > 0 else 0.0
        if dbytes != dbytes_before:
            self.dropped_bytes += dbytes - dbytes_before
            tick_dbps = (dbytes - dbytes_before) * 8 / tick if tick > 0 else 0.0
        else:
            tick_dbps = 0.0
        if tick_bps or tick_dbps:
            e.quiet = 0
        else:
            e.quiet += 1
        hist, dhist = self._histories(r, tick_bps, tick_dbps)
        # histories given packed (bytes, not the fields' tuples): FlowRecord unpacks them on read.
        e.record = FlowRecord(fid, packets, nbytes, drops, tcp_flags, verdict, rule, first_seen, last_seen,
                              pps, bps, dps, hist, would, wps, dhist)  # type: ignore[arg-type]
        e.counters = c

    def _window_rates(self, s: list, point: tuple, now: float) -> tuple[float, float, float, float]:
        """Add a flow's newest sample, keep what the window needs; packets and bits passed,
        drops and would-drops, per second over the window (or the flow's age)."""
        s.append(point)
        window = self.rate_window
        start = now - window
        if s[1][0] <= start:
            del s[0]                           # steady ticks: one sample leaves the window
            if s[1][0] <= start or len(s) > _MAX_SAMPLES:
                _trim(s, now, window)
        elif len(s) > _MAX_SAMPLES:
            _trim(s, now, window)
        t0, p0, b0, d0, w0 = s[0]
        period = now - t0
        if period <= 0:
            return 0.0, 0.0, 0.0, 0.0
        if period < _MIN_SPAN:
            period = min(_MIN_SPAN, window)
        return ((point[1] - p0) / period, (point[2] - b0) * 8 / period,
                (point[3] - d0) / period, (point[4] - w0) / period)

    def _histories(self, r: Optional[FlowRecord], tick_bps: float, tick_dbps: float) -> tuple[bytes, bytes]:
        """A flow's histories (passed, dropped bits/s per tick) with this tick's values, bounded.

        Published as packed doubles (FlowRecord reads them as tuples): immutable, no
        float object per value, nothing for the GC to track. Only flows that dropped
        carry a drop history."""
        keep = self._keep
        if r is None:
            hist = dhist = b""
        else:
            hist, dhist = r.__dict__["_history"], r.__dict__["_drop_history"]
            if hist.__class__ is not bytes:    # a record made by note_new()
                hist = _pack_history(hist)
        if len(hist) > keep:
            hist = hist[len(hist) - keep:]
        hist += _PACK_ONE(tick_bps)
        if dhist or tick_dbps:
            if dhist.__class__ is not bytes:
                dhist = _pack_history(dhist)
            if len(dhist) > keep:
                dhist = dhist[len(dhist) - keep:]
            dhist += _PACK_ONE(tick_dbps)
        return hist, dhist

    @staticmethod
    def _split(e: _Entry, dp: int, db: int, dd: int, nbytes: int, dry_run: bool) -> None:
        """Book the kernel's new drops (it counts drops and would-drops as one) by the mode
        they happened in, and estimate the bytes of the dropped ones (the kernel counts
        drops in packets): the tick's mean packet size, exact when a tick's packets were
        all dropped or none."""
        if dd <= 0:
            return
        if dry_run:
            e.would += dd
            return
        size = db / dp if dp > 0 else 0.0
        e.dbytes = min(float(nbytes), e.dbytes + dd * size)

    def _baseline(self, now: float, first_seen: float) -> Optional[float]:
        """When a fresh flow's counters were zero: its first packet (first_seen), so a
        young flow's rate covers its own age, not a whole window. None when unknown:
        a flow seen before the previous update (kept out of the table as idle, so its
        counters hold packets from before) or without a first_seen."""
        last = self._last_update
        if first_seen <= 0 or (last is not None and first_seen < last - _CLOCK_SLACK):
            return None
        return min(first_seen, now)

    def _evict(self, target: int) -> None:
        """Remove the most idle flows until at most `target` remain."""
        excess = len(self._entries) - target
        if excess <= 0:
            return
        victims = heapq.nsmallest(excess, self._entries.items(), key=lambda kv: kv[1].record.last_seen)
        for fid, _ in victims:
            del self._entries[fid]
