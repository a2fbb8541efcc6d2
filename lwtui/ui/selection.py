"""Which flows the table shows, in which order: filter, expire, sort, and an optional cap.

Pure Python (no widgets) so it can be timed and tested on its own. The table
is a virtual view (it draws only the rows on screen), so by default every
matching flow is sorted and can be scrolled to; with a `limit` only the top
rows by the sort key are kept (the rest are counted in the "showing N of M" note).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Callable

from lwtui.core.model import FlowRecord

DEFAULT_LIMIT: int | None = None   # no cap: the virtual table scrolls through every flow


@dataclass(frozen=True)
class SortOrder:
    """One sort choice: the column it marks, and the key (smaller first)."""
    name: str
    column: str
    key: Callable[[FlowRecord], Any]


SORTS = [
    SortOrder("rate", "bps", lambda r: -r.bps),
    SortOrder("pkts/s", "pps", lambda r: -r.pps),
    SortOrder("bytes", "bytes", lambda r: -r.bytes),
    SortOrder("packets", "pkts", lambda r: -r.packets),
    SortOrder("drops", "drops", lambda r: (-r.drops_ps, -r.would_drops_ps, -r.drops, -r.would_drops)),
    SortOrder("age", "age", lambda r: r.first_seen),
]


@dataclass
class Selection:
    """The result: the rows to show and how many flows matched before the cap."""
    rows: list[FlowRecord]
    matched: int
    total: int


def select_flows(records: list[FlowRecord], *, now: float, sort: SortOrder, flt=None,
                 expire_after: float | None = None, limit: int | None = DEFAULT_LIMIT,
                 reverse: bool = False) -> Selection:
    """Filter (rule grammar Filter), drop flows idle past expire_after, sort (reverse: the
    other way round), keep the top `limit` (None: all).

    Both sorts are stable, so flows with equal keys (idle flows at 0 b/s) keep
    the session's order, which is stable across ticks: tied rows do not
    reshuffle every refresh, and no per-flow tie-break key is computed.
    """
    rows = records
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
