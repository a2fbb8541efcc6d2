"""Which flows the table shows, in which order: filter, expire, sort, cap.

Pure Python (no widgets) so it can be timed and tested on its own. At 10,000
flows the table shows only the top `limit` rows by the sort key (the rest are
counted in the "showing N of M" note): a terminal shows a few dozen rows, and
a DataTable with every flow would spend each tick diffing rows nobody sees.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any, Callable

from lwtui.core.model import FlowRecord

DEFAULT_LIMIT = 500


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
                 expire_after: float | None = None, limit: int = DEFAULT_LIMIT) -> Selection:
    """Filter (rule grammar Filter), drop flows idle past expire_after, sort, keep the top `limit`.

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
    if matched > 2 * limit:
        top = heapq.nsmallest(limit, rows, key=sort.key)
    else:
        top = sorted(rows, key=sort.key)[:limit]
    return Selection(rows=top, matched=matched, total=len(records))
