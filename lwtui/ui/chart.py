"""A multi-row bar chart of a rate history, drawn with block characters.

Pure text (a list of lines), so it can be tested without a terminal.
"""

from __future__ import annotations

BLOCKS = " ▁▂▃▄▅▆▇█"


def bar_chart(values: list[float], width: int, height: int, top: float | None = None) -> list[str]:
    """`height` lines of `width` columns; the newest value is the rightmost column.

    Each row holds 8 levels, so the chart resolves height*8 steps; a value
    above zero always shows at least the lowest block, so a trickle is visible.
    """
    width, height = max(1, width), max(1, height)
    vals = [max(0.0, v) for v in values[-width:]]
    vals = [0.0] * (width - len(vals)) + vals
    peak = top if top is not None else max(vals, default=0.0)
    levels = []
    for v in vals:
        if peak <= 0 or v <= 0:
            levels.append(0)
        else:
            levels.append(max(1, round(v / peak * height * 8)))
    lines = []
    for row in range(height):
        floor = (height - 1 - row) * 8
        lines.append("".join(BLOCKS[min(8, max(0, lv - floor))] for lv in levels))
    return lines
