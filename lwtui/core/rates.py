"""Rates over a sliding window: the session's totals (RateMeter, TotalRates), the
rule hits booked by mode (HitSplit), the flows' samples in a ring indexed by tick
(SampleRing, which FlowStore reads its rows' rates from), and the flows' bits/s per
tick for sparklines (HistoryRing).

Every rate is (value now - value at the window's start) / the time between, where
the start is the newest sample at or before now - window, or a series' baseline
when it is younger than that (see FlowStore). Python and numpy only.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterable, Optional

import numpy as np

from lwtui.core.model import RuleEntry

MAX_SAMPLES = 64     # per flow, in case ticks are much shorter than the window
# A series younger than this has its rate taken over this span: two packets 1 ms
# apart are not 1000 packets/s.
MIN_SPAN = 0.25


def earliest(current: Optional[float], first_seen: np.ndarray) -> Optional[float]:
    """The earlier of `current` and the earliest known (non-zero) time in `first_seen`."""
    known = first_seen[first_seen > 0]
    if len(known) and (current is None or known.min() < current):
        return float(known.min())
    return current


def _trim(samples: list, now: float, window: float) -> None:
    """Drop samples older than needed: keep the newest one at or before now-window."""
    start = now - window
    while len(samples) > 1 and samples[1][0] <= start:
        del samples[0]
    if len(samples) > MAX_SAMPLES:
        del samples[:len(samples) - MAX_SAMPLES]


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
            period = max(period, min(MIN_SPAN, self.window))
        self.rate = (value - s[0][1]) / period if period > 0 else 0.0
        return self.rate


class TotalRates:
    """The session's rates from the kernel's `stats` totals, over the flows' window and
    counted from when counting began: packets and bits that passed, drops, would-drops.
    The kernel counts no dropped bytes: the flows' estimate of them is taken out."""

    def __init__(self, window: float, start: float):
        self._meters = {k: RateMeter(window, start=(start, 0)) for k in ("packets", "bytes", "drops", "would")}

    def update(self, now: float, stats: dict, dropped_bytes: float, first_packet: Optional[float] = None,
               first_drop: Optional[float] = None, first_would_drop: Optional[float] = None) -> dict[str, float]:
        """Totals' rate fields (Totals.pps, bps, drops_ps, would_drops_ps) at `now`;
        `first_packet`: when the session's first flow began (FlowStore.first_packet), so
        the totals of a young session are over its traffic's age, as a young row's are;
        `first_drop`, `first_would_drop` the same for the session's first drops and
        would-drops (FlowStore.first_drop, first_would_drop): a flow blocked from its
        first packet reads its drop rate in the header as on its row."""
        m = self._meters
        passed = max(0, stats["packets"] - stats["drops"])
        return {"pps": m["packets"].update(now, passed, first_packet),
                "bps": m["bytes"].update(now, max(0.0, stats["bytes"] - dropped_bytes), first_packet) * 8,
                "drops_ps": m["drops"].update(now, stats["drops"], first_drop),
                "would_drops_ps": m["would"].update(now, stats["would_drops"], first_would_drop)}


class HitSplit:
    """Rule hits booked by mode: the kernel counts a rule's matches in one counter,
    dropped or (dry-run) passed. Each reading's new hits go to the mode of the time
    since the previous reading, as FlowStore does with a flow's drops."""

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



def grown(buf: np.ndarray, n: int, m: int) -> np.ndarray:
    """A buffer whose first n rows are buf's and whose next m rows are zero: buf itself while
    it has the room (rows past those in use are kept zero), else one with twice the room,
    so appending flow after flow copies the rows in use a logarithmic number of times
    (zeroed pages a buffer has not used yet are not resident)."""
    if n + m <= len(buf):
        return buf
    new = np.zeros((max(n + m, 2 * len(buf), 1024),) + buf.shape[1:], dtype=buf.dtype)
    new[:n] = buf[:n]
    return new


class SampleRing:
    """The rate window's samples of every flow row: passed packets and bytes, drops and
    would-drops (SAMPLES) at each of the last `size` ticks, in a ring indexed by tick
    number, with the time of each tick. The ring starts at 4 ticks and doubles (up to
    MAX_SAMPLES) when ticks are shorter than the window / its size."""

    SAMPLES = (("sp", np.int64), ("sb", np.float64), ("sd", np.int64), ("sw", np.int64))

    def __init__(self, rows: int = 0, size: int = 4):
        self.size = size
        self.t = np.full(size, np.nan)
        self.k = np.full(size, -1, dtype=np.int64)
        # The rows in use (views of _buf, which has room for more); numpy arrays typed Any:
        # mypy's numpy stubs refuse mixed arithmetic on generic dtypes
        self._buf: dict[str, Any] = {name: np.zeros((rows, size), dtype=t) for name, t in self.SAMPLES}
        self.s: dict[str, Any] = dict(self._buf)

    # -- rows --------------------------------------------------------------------
    def take(self, idx: np.ndarray) -> None:
        """Keep rows `idx`, in that order."""
        self._buf = {k: v[idx] for k, v in self.s.items()}
        self.s = dict(self._buf)

    def append(self, m: int) -> None:
        """m rows more, without samples."""
        n = len(self.s["sp"])
        self._buf = {k: grown(v, n, m) for k, v in self._buf.items()}
        self.s = {k: v[:n + m] for k, v in self._buf.items()}

    # -- ticks -------------------------------------------------------------------
    def tick_time(self, k: int) -> float:
        """When tick k was taken; nan once the ring has overwritten it."""
        slot = k % self.size
        return float(self.t[slot]) if self.k[slot] == k else float("nan")

    def start_tick(self, seq: int, now: float, window: float) -> int:
        """Make room for tick `seq` at `now` and stamp it; its slot."""
        self._grow(seq, now, window)
        slot = seq % self.size
        self.t[slot], self.k[slot] = now, seq
        return slot

    def _grow(self, seq: int, now: float, window: float) -> None:
        """Double the ring while the tick `seq` would overwrite may still be the window's
        start (ticks shorter than the window / ring size)."""
        while self.size < MAX_SAMPLES:
            k = seq - self.size      # the tick this one overwrites
            after = self.tick_time(k + 1)
            if k < 1 or not (after > now - window):
                return
            size = self.size * 2
            ticks = [kk for kk in range(seq - self.size + 1, seq) if kk >= 1]
            t, kk_arr = np.full(size, np.nan), np.full(size, -1, dtype=np.int64)
            rows = len(self.s["sp"])
            new = {name: np.zeros((rows, size), v.dtype) for name, v in self.s.items()}
            for kk in ticks:
                t[kk % size], kk_arr[kk % size] = self.tick_time(kk), kk
                for name in new:
                    new[name][:, kk % size] = self.s[name][:, kk % self.size]
            self.t, self.k, self._buf, self.s, self.size = t, kk_arr, new, dict(new), size

    def write(self, sel, slot: int, point) -> None:
        """This tick's samples (sp, sb, sd, sw) of the rows `sel` selects."""
        for (name, _), arr in zip(self.SAMPLES, point):
            self.s[name][sel, slot] = arr

    def reference(self, now: float, seq: int, window: float, rows, born, bt, bvals):
        """Each row's sample at the window's start: the newest tick at or before now - window
        that the row has a sample for (born at or before it), else its baseline (bt, bvals)."""
        start = now - window
        valid = (self.k >= 0) & (self.k > seq - self.size)
        before = valid & (self.t <= start) & (self.k < seq)
        ref_t, ref = bt, list(bvals)
        if before.any():
            k0 = int(self.k[before].max())
        elif valid.sum() >= self.size:       # the ring is full of ticks inside the window
            k0 = int(self.k[valid].min())
        else:
            return ref_t, ref
        use = born <= k0
        if not use.any():
            return ref_t, ref
        slot = k0 % self.size
        ref_t = np.where(use, self.t[slot], bt)
        ref = [np.where(use, self.s[name][rows, slot], b) for (name, _), b in zip(self.SAMPLES, bvals)]
        return ref_t, ref


class HistoryRing:
    """Every flow row's bits/s passed per tick and, once it drops, dropped per tick: two
    rings of history_len + SLACK ticks indexed by tick number. How many of a row's
    values are real is kept by the caller (the hlen, dlen columns). Single precision
    (7 digits) is plenty for sparklines and halves the table's largest arrays."""

    SLACK = 4     # ticks a snapshot's histories stay readable after the table moved on
    DTYPE = np.float32

    def __init__(self, rows: int, history_len: int):
        self.len = history_len
        self.size = history_len + self.SLACK
        # hist and dhist: the rows in use, views of buffers with room for more (append)
        self._buf = np.zeros((rows, self.size), dtype=self.DTYPE)
        self._dbuf: Optional[np.ndarray] = None     # made at the first drop
        self.hist = self._buf
        self.dhist: Optional[np.ndarray] = None

    def take(self, idx: np.ndarray) -> None:
        """Keep rows `idx`, in that order (new buffers: a reader holding the old ones keeps them)."""
        self._buf = self.hist = self.hist[idx]
        if self.dhist is not None:
            self._dbuf = self.dhist = self.dhist[idx]

    def append(self, m: int) -> None:
        n = len(self.hist)
        self._buf = grown(self._buf, n, m)
        self.hist = self._buf[:n + m]
        if self._dbuf is not None:
            self._dbuf = grown(self._dbuf, n, m)
            self.dhist = self._dbuf[:n + m]

    def push(self, sel, rows: np.ndarray, seq: int, tick_bps: np.ndarray, tick_dbps: np.ndarray,
             hlen: np.ndarray, dlen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tick `seq`'s bits/s passed (every row `sel` selects: `rows`) and dropped (rows that
        ever dropped); the new (hlen of `sel`, whole dlen), as new arrays."""
        col = seq % self.size
        self.hist[sel, col] = tick_bps
        new_hlen = np.minimum(hlen[sel] + 1, self.len).astype(np.int32)
        drop = (dlen[sel] > 0) | (tick_dbps != 0)
        if not drop.any():
            return new_hlen, dlen
        if self._dbuf is None:
            self._dbuf = np.zeros_like(self._buf)
            self.dhist = self._dbuf[:len(self.hist)]
        assert self.dhist is not None
        d = rows[drop]
        self.dhist[d, col] = tick_dbps[drop]
        dlen = dlen.copy()
        dlen[d] = np.minimum(dlen[d] + 1, self.len)
        return new_hlen, dlen

    def reader(self, hlen: np.ndarray, dlen: np.ndarray, now_seq: Callable[[], int]):
        """read(row, seq) -> a row's (history, drop history) as of tick `seq`, as native doubles
        packed in bytes (as FlowRecord keeps them), from the rings of now; values the table has
        overwritten since (now_seq(): its tick; a view read long after) are left out."""
        hist, dhist, ring, buf = self.hist, self.dhist, self.size, self._buf

        def read(i: int, seq: int) -> tuple[bytes, bytes]:
            lost = now_seq() - seq - self.SLACK if self._buf is buf else 0     # else: frozen, all kept
            out = []
            for ring_arr, count in ((hist, int(hlen[i])), (dhist, int(dlen[i]))):
                count = max(0, count - max(0, lost))
                if ring_arr is None or count == 0:
                    out.append(b"")
                    continue
                cols = (np.arange(seq - count + 1, seq + 1)) % ring
                out.append(ring_arr[i, cols].astype(np.float64).tobytes())
            return out[0], out[1]
        return read
