"""The detail pane's chart: passed and dropped rates stacked, drawn with block characters.

Pure text (rows of cells), so it can be tested without a terminal. The single
bar chart (a rate alone) is lwtui.core.units.bar_chart; this one needs a part
per cell (passed, dropped) for its colours.
"""

from __future__ import annotations

from lwtui.core.units import BLOCKS as _BARS

BLOCKS = " " + _BARS  # level 0 (empty) to 8 (a full cell)


def stacked_chart(passed: list[float], dropped: list[float], width: int, height: int,
                  top: float | None = None) -> list[list[tuple[str, str]]]:
    """As bar_chart, with each column's dropped part stacked on its passed part.

    Rows of (character, part) cells, part being "" (empty), "pass", "drop", or
    "split" (the lower block is passed, the rest of the cell dropped: draw it on a
    drop-coloured background). `dropped` aligns on the newest value of `passed`.
    A column that dropped anything shows at least one level of it.
    """
    width, height = max(1, width), max(1, height)
    n = max(len(passed), len(dropped))
    p = [0.0] * (n - len(passed)) + [max(0.0, v) for v in passed]
    d = [0.0] * (n - len(dropped)) + [max(0.0, v) for v in dropped]
    p, d = ([0.0] * (width - n) + p)[-width:], ([0.0] * (width - n) + d)[-width:]
    peak = top if top is not None else max((a + b for a, b in zip(p, d)), default=0.0)
    scale = height * 8 / peak if peak > 0 else 0.0
    cols = []
    top_level = height * 8
    for a, b in zip(p, d):
        pl = min(max(1, round(a * scale)), top_level - (1 if b > 0 else 0)) if a > 0 and scale else 0
        tl = min(max(pl + (1 if b > 0 else 0), round((a + b) * scale)), top_level) if scale else 0
        cols.append((pl, tl))
    rows = []
    for row in range(height):
        floor = (height - 1 - row) * 8
        rows.append([_cell(pl - floor, tl - floor) for pl, tl in cols])
    return rows


def _cell(pl: int, tl: int) -> tuple[str, str]:
    """One cell, given the passed and total levels above its floor (8 levels a cell)."""
    if tl <= 0:
        return " ", ""
    if pl >= 8:
        return BLOCKS[8], "pass"
    if pl <= 0:
        return BLOCKS[min(8, tl)], "drop"
    if tl >= 8:
        return BLOCKS[pl], "split"
    return (BLOCKS[tl], "drop") if tl - pl >= pl else (BLOCKS[tl], "pass")
