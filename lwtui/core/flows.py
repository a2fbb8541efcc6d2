"""FlowStore: the user-space view of the kernel's `flows` map, with rates.

Each refresh tick the session reads every (flow_key, flow_stats) pair from the
kernel as two numpy arrays and hands them to FlowStore.update_columns()
(update() takes the same as objects); new-flow events arrive in between through
note_new(). The table is columnar: one row of numpy arrays per flow (identity,
counters, rates), the samples of the rate window in a ring indexed by tick
(every flow is sampled at every tick), and a short history of bits/s per tick
for sparklines, also a ring. A tick is a few vectorized steps whatever the
number of flows; a FlowRecord is built only when someone reads it: get(),
records(), or a FlowView (view()), the snapshot's copy-free view, whose columns
the table replaces rather than changes, so it can be handed to the UI thread
while the next update runs.

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
  (a flow younger than rates.MIN_SPAN counts as that old); a flow that was there
  before the previous update yet new to the table (kept out as idle) has an
  unknown baseline: no rate until its next reading;
- zero or negative periods (wall clock stepped back) give rate 0;
- flows absent from a poll keep their counters, their rate decays to 0 over the
  window; flows idle longer than idle_timeout are removed; the table never holds
  more than max_flows (the most idle go first).
Flows are matched between ticks by a 64-bit hash of their key (flowcols.KeyIndex),
every match checked against the whole key: two keys with one hash re-seed the hash
(never one flow's counters on another's row); a read in the table's order is matched
without hashing, and the table takes the order of a read of the same flows.
Python and numpy: no BCC, no netlink.
"""

from __future__ import annotations

from typing import Any, Iterable, NamedTuple, Optional

import numpy as np

from lwtui.core.flowcols import (COUNTER_DTYPE, KEY_DTYPE, VERDICT_CODE, VERDICTS, WOULD_DROP, FlowView,
                                 KeyIndex, decode_id, encode_ids, raw_keys, same_keys)
from lwtui.core.model import FlowId, FlowRecord
from lwtui.core.rates import MIN_SPAN, HistoryRing, SampleRing, earliest

# How far a flow's first_seen (the kernel's coarse clock, converted to wall
# time) may lie before the previous update and still be a flow that began since.
_CLOCK_SLACK = 0.05

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


_ROW_COLUMNS = (("h", np.uint64), ("has", np.bool_), ("packets", np.int64), ("bytes", np.int64),
                ("kdrops", np.int64), ("first_seen", np.float64), ("last_seen", np.float64),
                ("tcp_flags", np.uint8), ("verdict", np.int8), ("rule", np.int32), ("would", np.int64),
                ("dbytes", np.float64), ("pps", np.float64), ("bps", np.float64), ("dps", np.float64),
                ("wps", np.float64), ("quiet", np.int32), ("born", np.int64), ("bt", np.float64),
                ("bp", np.int64), ("bb", np.float64), ("bd", np.int64), ("bw", np.int64),
                ("hlen", np.int32), ("dlen", np.int32))
# Columns a FlowView reads (never written in place once published), the counters' columns
# as update_columns reads them, and their fields in COUNTER_DTYPE.
_PUBLISHED = frozenset(("packets", "bytes", "kdrops", "would", "tcp_flags", "verdict", "rule", "first_seen",
                        "last_seen", "pps", "bps", "dps", "wps", "hlen", "dlen"))
_READ = ("packets", "bytes", "kdrops", "first_seen", "last_seen", "tcp_flags", "verdict", "rule")
_FIELDS = ("packets", "bytes", "drops", "first_seen", "last_seen", "tcp_flags", "verdict", "rule")


class FlowStore:
    """Flows merged from polls and events, as columns; see the module docstring for the maths.

    Every flow is a row of numpy arrays (identity, counters, rates, the samples of the
    rate window, histories as ring buffers indexed by tick), so a tick is a few
    vectorized steps whatever the number of flows. Records (FlowRecord) are built
    only when read: get(), records(), or a FlowView (view()) for a snapshot."""

    def __init__(self, max_flows: int = 100_000, idle_timeout: float = 60.0,
                 history_len: int = 60, rate_window: float = 3.0):
        if max_flows < 1 or history_len < 1 or rate_window <= 0 or idle_timeout <= 0:
            raise ValueError("max_flows, history_len, rate_window and idle_timeout must be positive")
        self.max_flows = max_flows
        self.idle_timeout = idle_timeout
        self.history_len = history_len
        self.rate_window = rate_window
        self._last_update: Optional[float] = None
        self.dropped_bytes = 0.0          # every flow's dropped bytes so far (estimated, see _split)
        self.first_packet: Optional[float] = None   # the earliest first_seen of any flow merged
        self.first_drop: Optional[float] = None     # ... of any flow that dropped packets
        self.first_would_drop: Optional[float] = None   # ... of any flow with would-drops
        # Kernel entries the polls have shown: a flow's first reading, and each reading of an
        # entry the kernel made again (evicted, then re-inserted). The kernel's count of the
        # entries it made, less this, is what no poll saw (Session: flows_unseen).
        self.kernel_flows_seen = 0
        self._seq = 0                     # ticks (update() calls) so far
        self._index = KeyIndex()          # rows by key (the `h` column: their hashes)
        self._rules: list[str] = [""]     # rule texts; the `rule` column indexes them
        self._rule_index: dict[str, int] = {"": 0}
        self._pending: dict[FlowId, tuple[float, FlowRecord]] = {}   # note_new() since the last merge
        self._resize(0)

    # -- storage -----------------------------------------------------------------
    def _resize(self, n: int) -> None:
        self._keys = np.zeros(n, dtype=KEY_DTYPE)
        # Columns by name. numpy arrays typed Any: mypy's numpy stubs refuse mixed arithmetic on generic dtypes
        self._c: dict[str, Any] = {name: np.zeros(n, dtype=t) for name, t in _ROW_COLUMNS}
        self._c["born"][:] = -1
        self._ring = SampleRing(n)        # the rate window's samples, a ring indexed by tick
        self._hist = HistoryRing(n, self.history_len)     # bits/s per tick, for sparklines
        self._ids = np.full(n, None, dtype=object)
        self._rec = np.full(n, None, dtype=object)
        self._index.forget()

    def _take(self, idx: np.ndarray) -> None:
        """Keep rows `idx`, in that order (new arrays: a FlowView holding the old ones keeps them)."""
        self._keys = self._keys[idx]
        self._c = {k: v[idx] for k, v in self._c.items()}
        self._ring.take(idx)
        self._hist.take(idx)
        self._ids, self._rec = self._ids[idx], self._rec[idx]
        self._index.forget()

    def _append(self, keys: np.ndarray, ids: Optional[np.ndarray] = None) -> None:
        """Add rows for new flows: no counters yet (has False)."""
        m = len(keys)
        if m == 0:
            return
        self._keys = np.concatenate([self._keys, keys])
        new = {name: np.zeros(m, dtype=t) for name, t in _ROW_COLUMNS}
        new["born"][:] = -1
        new["h"] = self._index.hashes(keys)
        self._c = {k: np.concatenate([v, new[k]]) for k, v in self._c.items()}
        self._ring.append(m)
        self._hist.append(m)
        self._ids = np.concatenate([self._ids, ids if ids is not None else np.full(m, None, dtype=object)])
        self._rec = np.concatenate([self._rec, np.full(m, None, dtype=object)])
        self._index.forget()

    def _match(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first, rows): each distinct key's first index in `keys`, and its row (-1: none)."""
        first, rows, self._c["h"] = self._index.match(self._keys, self._c["h"], keys)
        return first, rows

    def _flush(self) -> bool:
        """Rows for the flows note_new() announced since the last merge; whether any were added."""
        if not self._pending:
            return False
        pending, self._pending = self._pending, {}
        ids = list(pending)
        keys = encode_ids(ids)
        first, rows = self._match(keys)
        idx = first[rows < 0]
        n = len(self._keys)
        self._append(keys[idx])     # no FlowId kept per row: a view makes those it shows
        times = np.array([pending[ids[i]][0] for i in idx])
        self._c["first_seen"][n:] = times
        self._c["last_seen"][n:] = times
        self._rec[n:] = [pending[ids[i]][1] for i in idx]
        return len(idx) > 0

    # -- reading -----------------------------------------------------------------
    def __len__(self) -> int:
        self._flush()
        return len(self._keys)

    def __contains__(self, flow_id: FlowId) -> bool:
        return self._row(flow_id) is not None

    def _row(self, flow_id: FlowId) -> Optional[int]:
        self._flush()
        keys = encode_ids([flow_id])
        row = int(self._index.rows_of(self._c["h"], self._index.hashes(keys))[0])
        return row if row >= 0 and raw_keys(self._keys[row:row + 1])[0] == raw_keys(keys)[0] else None

    def get(self, flow_id: FlowId) -> Optional[FlowRecord]:
        row = self._row(flow_id)
        if row is None:
            return None
        if self._ids[row] is None:
            self._ids[row] = flow_id
        return self._record(row)

    def _record(self, row: int) -> FlowRecord:
        r = self._rec[row]
        if r is None:
            c = self._c
            fid = self._ids[row]
            if fid is None:
                fid = self._ids[row] = decode_id(self._keys[row])
            hist, dhist = self._hist.reader(c["hlen"], c["dlen"], self._now_seq)(row, self._seq)
            r = self._rec[row] = FlowRecord(
                fid, int(c["packets"][row]), int(c["bytes"][row]), int(c["kdrops"][row] - c["would"][row]),
                int(c["tcp_flags"][row]), VERDICTS[c["verdict"][row]], self._rules[c["rule"][row]],
                float(c["first_seen"][row]), float(c["last_seen"][row]), float(c["pps"][row]),
                float(c["bps"][row]), float(c["dps"][row]), hist, int(c["would"][row]),
                float(c["wps"][row]), dhist)
        return r

    def records(self) -> list[FlowRecord]:
        """Every flow's current record (records are never mutated after publication)."""
        view = self.view()
        out = list(view)
        self._rec[:] = view._records
        return out

    def view(self) -> FlowView:
        """The flows as they are now, for a snapshot: columns copied, records built on demand."""
        self._flush()
        c = self._c      # published columns are replaced, never changed in place: no copies
        cols = {"packets": c["packets"], "bytes": c["bytes"], "drops": c["kdrops"] - c["would"],
                "would_drops": c["would"], "tcp_flags": c["tcp_flags"], "verdict": c["verdict"], "rule": c["rule"],
                "first_seen": c["first_seen"], "last_seen": c["last_seen"], "pps": c["pps"], "bps": c["bps"],
                "drops_ps": c["dps"], "would_drops_ps": c["wps"]}
        return FlowView(cols, self._keys, self._ids, self._rec.copy(), list(self._rules),
                        self._hist.reader(c["hlen"], c["dlen"], self._now_seq), self._seq)

    def _now_seq(self) -> int:
        return self._seq

    def rule_code(self, text: str) -> int:
        """The `rule` column's value for a rule text."""
        code = self._rule_index.get(text)
        if code is None:
            code = self._rule_index[text] = len(self._rules)
            self._rules.append(text)
        return code

    # -- writing -----------------------------------------------------------------
    def note_new(self, flow_id: FlowId, now: float) -> None:
        """A new-flow event: make the row exist (zero counters) before the next poll."""
        if flow_id in self._pending:
            return
        if len(self._keys) + len(self._pending) >= self.max_flows:
            if self._row(flow_id) is not None:
                return
            # Evict a little more than one so a burst of events is not O(n) each.
            self._evict(max(0, self.max_flows - max(1, self.max_flows // 100)))
        self._pending[flow_id] = (now, FlowRecord(id=flow_id, first_seen=now, last_seen=now))

    def update(self, now: float, rows: Iterable[tuple[FlowId, Counters]], dry_run: bool = False) -> None:
        """Merge one poll of the kernel map (every flow it holds) taken at `now`, given
        as objects; update_columns() takes the same as arrays.

        `dry_run`: the mode since the previous update. The kernel counts a flow's
        drops and would-drops in one counter; what it gained since goes to
        would_drops in dry-run, to drops otherwise (so call update() when the
        mode changes, before changing it)."""
        rows = list(rows)
        ids = [fid for fid, _ in rows]
        counters = np.array([(c.packets, c.bytes, c.drops, c.first_seen, c.last_seen, c.tcp_flags,
                              VERDICT_CODE[c.verdict], self.rule_code(c.rule)) for _, c in rows],
                            dtype=COUNTER_DTYPE)
        self.update_columns(now, encode_ids(ids), counters, dry_run, ids=ids)

    def update_columns(self, now: float, keys: np.ndarray, counters: np.ndarray, dry_run: bool = False,
                       ids: Optional[list[FlowId]] = None) -> None:
        """Merge one poll given as columns: KEY_DTYPE and COUNTER_DTYPE rows, one per flow
        (rule: rule_code() of its text). The same flow twice in one poll: the first wins."""
        grew = self._flush()
        self._seq += 1
        oldest = now - self.idle_timeout
        keys = np.ascontiguousarray(keys)
        matched = len(keys) > len(self._keys) or not same_keys(keys, self._keys[:len(keys)])
        if not matched:                                 # the map read in the table's order
            rows = np.arange(len(keys))
        else:
            first, rows = self._match(keys)
            if len(first) < len(keys):                  # the same flow twice: the first wins
                keys, counters = keys[first], counters[first]
                if ids is not None:
                    ids = [ids[i] for i in first]
        live = counters["last_seen"] >= oldest          # idle too long: hidden even if the kernel has it
        n = len(self._keys)
        gone = np.zeros(n, bool)
        gone[rows[(rows >= 0) & ~live]] = True
        polled = np.full(n, -1, dtype=np.int64)         # each row's index in this poll, -1: absent
        hit = (rows >= 0) & live
        polled[rows[hit]] = np.flatnonzero(hit)
        gone |= (polled < 0) & (self._c["last_seen"] < oldest)
        new = np.flatnonzero((rows < 0) & live)
        if gone.any():
            keep = np.flatnonzero(~gone)
            self._take(keep)
            polled = polled[keep]
        if len(new):
            self._append(keys[new], np.array([ids[i] for i in new] + [None], dtype=object)[:-1]
                         if ids is not None else None)
            polled = np.concatenate([polled, new])
        self._merge(now, counters, polled, dry_run)
        if len(self._keys) > self.max_flows:
            self._evict(self.max_flows, polled >= 0)
        elif matched and not (grew or len(new) or gone.any()):
            # The same flows in another order (the map's buckets', not the events'): the table
            # takes the read's order, so the next reads of an unchanged map need no hashing.
            self._take(np.concatenate([rows[hit], np.flatnonzero(polled < 0)]))
        self._last_update = now

    # -- internals ---------------------------------------------------------------
    def _merge(self, now: float, counters: np.ndarray, polled: np.ndarray, dry_run: bool) -> None:
        """Fold this tick's readings into every row that has counters: the polled ones,
        and the absent ones with their last counters (their rates decay)."""
        c, seq = self._c, self._seq
        rows = np.flatnonzero((polled >= 0) | c["has"])
        ring = self._ring
        back = self._last_update is not None and now < ring.tick_time(seq - 1)
        slot = ring.start_tick(seq, now, self.rate_window)
        if len(rows) == 0:
            return
        # Every row merged (the usual tick): slices, so the columns are read and written in place.
        sel: Any = slice(None) if len(rows) == len(self._keys) else rows
        p = polled[rows]
        inp: Any = np.flatnonzero(p >= 0)
        old = tuple(c[name][sel] for name in _READ)
        if len(inp) == len(p) == len(counters) and np.array_equal(p, np.arange(len(p))):
            new = [np.array(counters[field], dtype=o.dtype) for o, field in zip(old, _FIELDS)]  # poll in table order
        else:
            src = counters[p[inp]]
            new = [o.copy() for o in old]
            for arr, field in zip(new, _FIELDS):
                arr[inp] = src[field]
        P, B, KD, FS, LS, FL, V, RU = new
        has = c["has"][sel]
        fresh = ~has | (P < old[0]) | (FS != old[3]) | (B < old[1]) | (KD < old[2])
        # Entries the kernel made since the previous read (every fresh row was polled, see rows);
        # not a row new to the table whose entry predates that read: that read had it (a flow
        # back from idle, or pushed out of a full table).
        last = self._last_update
        older = ~has & (FS < last - _CLOCK_SLACK) & (FS > 0) if last is not None else False
        self.kernel_flows_seen += int(np.count_nonzero(fresh & ~older))
        op, ob, okd = (np.where(fresh, 0, old[0]), np.where(fresh, 0, old[1]), np.where(fresh, 0, old[2]))
        would = np.where(fresh, 0, c["would"][sel])
        dbytes0 = np.where(fresh, 0.0, c["dbytes"][sel])
        dd = KD - okd
        dry = dry_run | (V == WOULD_DROP)
        would = would + np.where((dd > 0) & dry, dd, 0)
        real = (dd > 0) & ~dry
        self.first_drop = earliest(self.first_drop, FS[real])
        self.first_would_drop = earliest(self.first_would_drop, FS[(dd > 0) & dry])
        dp, db = P - op, B - ob
        size = np.divide(db, dp, out=np.zeros(len(rows)), where=real & (dp > 0))
        dbytes = np.where(real, np.minimum(B.astype(np.float64), dbytes0 + dd * size), dbytes0)
        self.dropped_bytes += float((dbytes - dbytes0).sum())
        drops = KD - would
        point = (P - drops, B - dbytes, drops, would)
        # The series: restarted by a clock step back (at this point) or a fresh flow (at its baseline).
        stepped = has & back                  # a series of before the clock went back
        restart = fresh | stepped
        bt, bvals, born = c["bt"][sel], [c[k][sel] for k in ("bp", "bb", "bd", "bw")], c["born"][sel]
        if restart.any():
            bt, bvals, born = self._baselines(now, restart, fresh & ~stepped, FS, point, bt, bvals, born)
        prev_t = np.where(restart, bt, ring.tick_time(seq - 1) if seq > 1 else now)
        prev_b = np.where(restart, bvals[1], ring.s["sb"][sel, (seq - 1) % ring.size])
        ref_t, ref = ring.reference(now, seq, self.rate_window, sel, born, bt, bvals)
        period = now - ref_t
        period = np.where(period < MIN_SPAN, min(MIN_SPAN, self.rate_window), period)
        ok = (now - ref_t) > 0
        inv = np.divide(1.0, period, out=np.zeros(len(rows)), where=ok)
        pps, bps = (point[0] - ref[0]) * inv, (point[1] - ref[1]) * 8 * inv
        dps, wps = (point[2] - ref[2]) * inv, (point[3] - ref[3]) * inv
        tick = now - prev_t
        tinv = np.divide(8.0, tick, out=np.zeros(len(rows)), where=tick > 0)
        tick_bps = (point[1] - prev_b) * tinv
        tick_dbps = (dbytes - dbytes0) * tinv
        quiet = np.where((tick_bps != 0) | (tick_dbps != 0), 0, c["quiet"][sel] + 1)
        # A flow idle for a whole history keeps its record (nothing it shows changed).
        stands = ((c["quiet"][sel] >= self.history_len) & has & ~restart & (c["pps"][sel] == 0)
                  & (c["bps"][sel] == 0) & (c["dps"][sel] == 0) & (c["wps"][sel] == 0)
                  & (P == old[0]) & (B == old[1]) & (KD == old[2]) & (FS == old[3]) & (LS == old[4])
                  & (FL == old[5]) & (V == old[6]) & (RU == old[7]))
        for name, arr in zip(_READ, new):
            self._put(sel, name, arr)
        for name, arr in (("would", would), ("dbytes", dbytes), ("pps", pps), ("bps", bps), ("dps", dps),
                          ("wps", wps), ("quiet", quiet), ("bt", bt), ("bp", bvals[0]), ("bb", bvals[1]),
                          ("bd", bvals[2]), ("bw", bvals[3]), ("born", born)):
            self._put(sel, name, arr)
        c["has"][sel] = True
        ring.write(sel, slot, point)
        hlen, dlen = self._hist.push(sel, rows, seq, tick_bps, tick_dbps, c["hlen"], c["dlen"])
        self._put(sel, "hlen", hlen)
        c["dlen"] = dlen
        self._rec[rows[~stands]] = None

    def _put(self, sel, name: str, arr: np.ndarray) -> None:
        """Write a column's merged rows. A column a FlowView may hold (_PUBLISHED) is
        replaced, never written in place: views read their columns without a copy."""
        if isinstance(sel, slice):
            self._c[name] = arr if name in _PUBLISHED else np.asarray(arr, dtype=self._c[name].dtype)
            return
        col = self._c[name].copy() if name in _PUBLISHED else self._c[name]
        col[sel] = arr
        self._c[name] = col

    def _baselines(self, now, restart, fresh, FS, point, bt, bvals, born):
        """Where each restarted series begins: its first packet (first_seen) for a fresh
        flow whose start is known, else this reading (also every series the clock
        stepped back on)."""
        bt, bvals, born = bt.copy(), [b.copy() for b in bvals], born.copy()
        born[restart] = self._seq
        self.first_packet = earliest(self.first_packet, FS[fresh])
        last = self._last_update
        known = (FS > 0) & fresh
        if last is not None:
            known &= FS >= last - _CLOCK_SLACK
        bt[known] = np.minimum(FS[known], now)
        for b in bvals:
            b[known] = 0
        at_point = restart & ~known
        bt[at_point] = now
        for b, v in zip(bvals, point):
            b[at_point] = v[at_point]
        return bt, bvals, born

    def _evict(self, target: int, polled: Optional[np.ndarray] = None) -> None:
        """Remove flows until at most `target` remain: first those no read of the map has
        given counters (a new-flow event is a hint; a flow the kernel still holds comes back
        with the next read), then the most idle; the flows of the read just merged
        (`polled`) last: the kernel holds no more than the table, so the table keeps every
        flow the kernel has, and a flow read is shown at least once."""
        self._flush()
        excess = len(self._keys) - target
        if excess <= 0:
            return
        order = np.lexsort((self._c["last_seen"], self._c["has"]) + (() if polled is None else (polled,)))
        keep = np.sort(order[excess:])
        self._take(keep)
