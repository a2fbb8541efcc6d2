"""Which flows the table shows, in which order: filter, expire, sort, and an optional cap.

Pure Python (no widgets) so it can be timed and tested on its own. The table
is a virtual view (it draws only the rows on screen), so by default every
matching flow is sorted and can be scrolled to; with a `limit` only the top
rows by the sort key are kept (the rest are counted in the "showing N of M" note).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from lwtui.core.flowcols import FlowRows, FlowView
from lwtui.core.model import FlowRecord

DEFAULT_LIMIT: int | None = None   # no cap: the virtual table scrolls through every flow
# Past this many flows the table's order is found for the rows at its top first (a partition),
# and for the rest only when someone scrolls there.
PARTIAL_SORT = 2048


@dataclass(frozen=True)
class SortOrder:
    """One sort choice: the column it marks, and the key (smaller first), of a record
    and as FlowView columns ((name, sign), most significant first)."""
    name: str
    column: str
    key: Callable[[FlowRecord], Any]
    columns: tuple[tuple[str, int], ...] = ()


SORTS = [
    SortOrder("rate", "bps", lambda r: -r.bps, (("bps", -1),)),
    SortOrder("pkts/s", "pps", lambda r: -r.pps, (("pps", -1),)),
    SortOrder("bytes", "bytes", lambda r: -r.bytes, (("bytes", -1),)),
    SortOrder("packets", "pkts", lambda r: -r.packets, (("packets", -1),)),
    SortOrder("drops", "drops", lambda r: (-r.drops_ps, -r.would_drops_ps, -r.drops, -r.would_drops),
              (("drops_ps", -1), ("would_drops_ps", -1), ("drops", -1), ("would_drops", -1))),
    SortOrder("age", "age", lambda r: r.first_seen, (("first_seen", 1),)),
]


@dataclass
class Selection:
    """The result: the rows to show and how many flows matched before the cap."""
    rows: Sequence[FlowRecord]     # a list, or FlowRows over a FlowView (records built when read)
    matched: int
    total: int


def select_flows(records: Sequence[FlowRecord], *, now: float, sort: SortOrder, flt=None,
                 expire_after: float | None = None, limit: int | None = DEFAULT_LIMIT,
                 reverse: bool = False) -> Selection:
    """Filter (rule grammar Filter), drop flows idle past expire_after, sort (reverse: the
    other way round), keep the top `limit` (None: all).

    Both sorts are stable, so flows with equal keys (idle flows at 0 b/s) keep
    the session's order, which is stable across ticks: tied rows do not
    reshuffle every refresh, and no per-flow tie-break key is computed.
    """
    if isinstance(records, FlowView):
        return _select_columns(records, now, sort, flt, expire_after, limit, reverse)
    rows = list(records)
    if expire_after is not None:
        rows = [r for r in rows if now - r.last_seen < expire_after]
    if flt is not None:
        rows = [r for r in rows if flt.matches(r)]
    matched = len(rows)
    if limit is not None and matched > 2 * limit:
        pick = heapq.nlargest if reverse else heapq.nsmallest
        top = pick(limit, rows, key=sort.key)
    else:
        top = sorted(rows, key=sort.key, reverse=reverse)[:limit]
    return Selection(rows=top, matched=matched, total=len(records))


def _select_columns(view: FlowView, now: float, sort: SortOrder, flt, expire_after: float | None,
                    limit: int | None, reverse: bool) -> Selection:
    """select_flows over a FlowView's columns: masks, one stable sort of the keys (ties
    keep the table's order, as the record path's sorts do), records for no row."""
    c = view.cols
    mask = None
    if expire_after is not None:
        mask = (now - c["last_seen"]) < expire_after
    if flt is not None and not flt.empty:
        m = flt.mask(view)
        mask = m if mask is None else mask & m
    idx = np.flatnonzero(mask) if mask is not None else np.arange(len(view))
    flip = -1 if reverse else 1
    keys = [c[name][idx] * (sign * flip) for name, sign in reversed(sort.columns)]
    length = len(idx) if limit is None else min(limit, len(idx))
    if len(keys) == 1 and length > PARTIAL_SORT:
        return Selection(rows=_partial(view, idx, keys[0], length), matched=len(idx), total=len(view))
    order = idx[np.lexsort(keys)] if keys and len(idx) else idx
    return Selection(rows=FlowRows(view, order[:length]), matched=len(idx), total=len(view))


def _partial(view: FlowView, idx: np.ndarray, key: np.ndarray, length: int) -> FlowRows:
    """The first PARTIAL_SORT rows of a stable sort of `key` (row idx[j] has key[j]) found
    with a partition, the rest sorted only when read; a row's place found by counting."""
    k = PARTIAL_SORT
    edge = np.partition(key, k - 1)[k - 1]
    less = np.flatnonzero(key < edge)
    first = np.concatenate([less, np.flatnonzero(key == edge)[:k - len(less)]])
    first.sort()                                    # ties in the table's order, as a stable sort keeps them
    top = idx[first[np.argsort(key[first], kind="stable")]]

    def rank(row: int) -> int | None:
        j = int(np.searchsorted(idx, row))
        if j >= len(idx) or idx[j] != row:
            return None
        v = key[j]
        return int(np.count_nonzero(key < v) + np.count_nonzero(key[:j] == v))

    return FlowRows(view, top=top, rest=lambda: idx[np.argsort(key, kind="stable")], rank=rank, length=length)
