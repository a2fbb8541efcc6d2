"""One line of the flow table, drawn from its cells without a Text per cell.

A frame draws every cell of every row on screen, so a line is built from
segments directly: each cell's own segments (its style under its spans),
padded to its column's width, the cursor's colours over them on the cursor's
line, the line's style under everything and the column's key as meta on top
(a screenshot places every cell at its own column). The result is the line
Text.align, Text.stylize and Segment.apply_style would give on a copy of each
cell.
"""

from __future__ import annotations

from typing import Sequence

from rich.console import Console
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from lwtui.ui.cells import COLUMNS, RIGHT

META = {key: Style.from_meta({"column": key}) for key, _, _ in COLUMNS}
Styled = dict[tuple[Style, "Style | None", Style], Style]


def line_strip(cells: Sequence[Text], layout: list[tuple[str, int]], width: int, style: Style, console: Console,
               styled: Styled, on_top: bool = False) -> Strip:
    """One line: each cell aligned to its column's width ((key, width) in `layout`), one space
    between columns; `on_top`: the cursor's line (its colours win over the cells' own).
    `styled` keeps the combined styles of a frame (the caller empties it between frames)."""
    top = Style(bgcolor=style.bgcolor, color=style.color, bold=style.bold, reverse=style.reverse) if on_top else None
    segments: list[Segment] = []
    used = 0
    for i, (cell, (key, w)) in enumerate(zip(cells, layout)):
        if used + w > width:
            break
        meta = META[key]
        for text, own, _ in aligned(cell, w, key in RIGHT, top, console):
            combined = styled.get((style, own, meta))
            if combined is None:
                combined = styled[style, own, meta] = style + (own + meta if own else meta)
            segments.append(Segment(text, combined))
        used += w
        if i < len(layout) - 1 and used < width:
            segments.append(Segment(" ", style + top))
            used += 1
    if used < width:
        segments.append(Segment(" " * (width - used), style + top))
    return Strip(segments, width)


def aligned(cell: Text, width: int, right: bool, top: Style | None, console: Console) -> list[Segment]:
    """A cell's segments padded to `width` (on the left when `right`), with `top` over them."""
    if cell.cell_len > width:         # cut to the column: Text's own way
        piece = Text()
        piece.append_text(cell)       # the cell's own style becomes a span: Text.render drops a bare one
        piece.align("right" if right else "left", width)
        if top is not None:
            piece.stylize(top)
        return list(piece.render(console))
    pad = " " * (width - cell.cell_len)
    if not cell.style and not cell.spans:       # unstyled: one segment, padding included
        return [Segment(pad + cell.plain if right else cell.plain + pad, top)]
    parts: list[Segment]
    if cell.spans:
        parts = list(cell.render(console))      # the cell's style under its spans
    else:
        parts = [Segment(cell.plain, console.get_style(cell.style, default=Style.null()))] if cell.plain else []
    if top is not None:
        parts = [Segment(text, own + top if own else top) for text, own, _ in parts]
    if not pad:
        return parts
    return [Segment(pad, top), *parts] if right else [*parts, Segment(pad, top)]
