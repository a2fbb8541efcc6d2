"""Human units for counters, rates and durations, and block-character charts.

Bits are SI (1 kb/s = 1000 b/s, as link speeds are quoted); bytes are binary
(1 KiB = 1024 B, as memory and files are). Numbers keep three significant
digits so columns stay narrow: "1.2 Mb/s", "12.3 Mb/s", "123 Mb/s".
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

BLOCKS = "▁▂▃▄▅▆▇█"
_SI = ("", "k", "M", "G", "T", "P", "E")
_BINARY = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def _scaled(value: float, base: int, prefixes: tuple[str, ...]) -> tuple[str, str]:
    """(number text, prefix): one decimal below 100, none from 100 up, integers in
    the base unit as they are; rounding that reaches `base` moves up a prefix."""
    if not math.isfinite(value):
        return "-", ""
    sign = "-" if value < 0 else ""
    value = abs(value)
    for i, prefix in enumerate(prefixes):
        scaled = value / base ** i
        text = f"{scaled:.1f}"
        if float(text) >= 100 or (i == 0 and scaled == int(scaled)):
            text = f"{scaled:.0f}"
        if float(text) < base or i == len(prefixes) - 1:
            return sign + text, prefix
    raise AssertionError("unreachable")


def fmt_bits(bps: float) -> str:
    """Bits per second, SI: '0 b/s', '999 b/s', '1.2 kb/s', '123 Mb/s', '1.0 Gb/s'."""
    num, prefix = _scaled(bps, 1000, _SI)
    return "-" if num == "-" else f"{num} {prefix}b/s"


def fmt_bytes(n: float) -> str:
    """A byte count, binary: '0 B', '1023 B', '1.5 KiB', '1.5 MiB', '12.0 GiB'."""
    num, prefix = _scaled(n, 1024, _BINARY)
    return "-" if num == "-" else f"{num} {prefix}B"


def fmt_count(n: float) -> str:
    """A count, SI without a space: '999', '2.5' (a slow rate), '1.2k', '12.3k', '123k', '1.2M'."""
    num, prefix = _scaled(n, 1000, _SI)
    return f"{num}{prefix}"


def plural(n: float, word: str, many: str | None = None) -> str:
    """A count and its noun, singular for exactly one: "1 flow", "2 flows", "1.2k flows"."""
    return f"{fmt_count(n)} {noun(n, word, many)}"


def noun(n: float, word: str, many: str | None = None) -> str:
    """The noun alone, for a count shown apart (styled differently): "flow" for 1, else "flows"."""
    return word if n == 1 else (many or word + "s")


def fmt_duration(seconds: float) -> str:
    """'3s', '2m05s', '1h02m', '3d04h'; negative counts as 0, not finite as '-'."""
    if not math.isfinite(seconds):
        return "-"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def bar_chart(values: Iterable[float], width: int, height: int, top: Optional[float] = None,
              round_up: bool = False) -> list[str]:
    """`height` lines of `width` columns of block characters: the last `width`
    values as bars, newest on the right, scaled to the largest (or to `top`, to
    compare charts). Each line holds 8 steps of a bar; a value's steps are its
    share of the peak, rounded (up, with round_up); zero, negative or not finite
    is blank, anything above zero at least one step. Fewer values than `width`
    leave blank columns on the left."""
    width, height = max(1, width), max(1, height)
    vals = [v if isinstance(v, (int, float)) and math.isfinite(v) and v > 0 else 0.0
            for v in list(values)[-width:]]
    vals = [0.0] * (width - len(vals)) + vals
    peak = top if top is not None and top > 0 else max(vals, default=0.0)
    steps = height * len(BLOCKS)
    levels = []
    for v in vals:
        if v <= 0 or peak <= 0:
            levels.append(0)
            continue
        share = min(v / peak, 1.0) * steps
        levels.append(max(1, math.ceil(share) if round_up else round(share)))
    lines = []
    for row in range(height):
        floor = (height - 1 - row) * len(BLOCKS)
        lines.append("".join(BLOCKS[min(len(BLOCKS), lv - floor) - 1] if lv > floor else " " for lv in levels))
    return lines


def sparkline(values: Iterable[float], width: int, top: Optional[float] = None) -> str:
    """One line of bar_chart with steps rounded up (the table's trend column);
    "" for a width of 0."""
    return bar_chart(values, width, 1, top, round_up=True)[0] if width > 0 else ""


def fmt_cost(ns_per_packet: dict[str, Optional[float]]) -> str:
    """lwtui's own cost by hook, e.g. 'out 131 · in 95' (ns per packet; '-' before a hook's first run)."""
    return " · ".join(f"{hook} {'-' if ns is None else f'{ns:.0f}'}" for hook, ns in ns_per_packet.items())
