"""The live flow table: a virtual view that draws only the rows on screen.

Each tick the app hands over the whole filtered flow set, sorted (see
selection.py). The table keeps that list and builds cells (cells.row_cells)
only for the rows render_line draws, so 100,000 flows cost the same screen
work as 20. Textual's line API (ScrollView + render_line) does the
scrolling; the column header is the first line and stays put. A row's drawn
line is kept until its cells, the layout or its style change, so a scroll
builds only the lines that changed; a cursor move that keeps the view marks
only the two lines it left and reached (Textual then redraws no other line).

The cursor is keyed by flow: rows moving under it never move the user's
place. With follow off (the default) the view stays where the user put it
and the selected flow may move off screen; with follow on (`F`, as in htop)
the view keeps the selected flow on the same screen line as it moves. When
the selected flow leaves, the cursor takes the row at its place.

Columns that do not fit are left out by priority (COLUMN_PRIORITY), so a
narrow terminal still shows the verdict, the endpoints and the rate.
"""

from __future__ import annotations

from typing import Sequence

from rich.cells import cell_len
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable

from lwtui.core.flowcols import FlowRows
from lwtui.core.model import FlowId, FlowRecord
from lwtui.core.resolve import NameCache
from lwtui.ui.cells import COLUMNS, RIGHT, WOULD_DROPS_LABEL, row_cells, row_key
from lwtui.ui.tableline import Styled, line_strip

# Columns left out first when the terminal is narrow; never: verdict, endpoints, rate.
# The process column only where the session looks processes up (Snapshot.owners), and first
# to go. The hook stays longer than the counts: the same flow at two hooks (out here, in
# there) would otherwise read as two identical rows.
COLUMN_PRIORITY = ["proc", "flags", "trend", "bytes", "pkts", "age", "pps", "hook", "proto", "drops"]
KEEP = {"v", "src", "dst", "bps"}
MIN_ENDPOINT = 12     # an endpoint column is never narrower (it is cut with an ellipsis)


class VimTable(DataTable):
    """A DataTable that also moves with j/k (the rules view and the route picker)."""

    BINDINGS = [
        Binding("j", "cursor_down", "down", show=False),
        Binding("k", "cursor_up", "up", show=False),
    ]


class FlowTable(ScrollView, can_focus=True):
    """Flows as rows; the app calls show() once per tick with the sorted flow set."""

    BINDINGS = [
        Binding("j,down", "cursor_down", "down", show=False),
        Binding("k,up", "cursor_up", "up", show=False),
        Binding("pageup", "page_up", "page up", show=False),
        Binding("pagedown", "page_down", "page down", show=False),
        Binding("home,g", "first", "first", show=False),
        Binding("end,G", "last", "last", show=False),
        Binding("F", "toggle_follow", "follow", show=False),
    ]
    COMPONENT_CLASSES = {"flow-table--header", "flow-table--cursor"}
    DEFAULT_CSS = """
    FlowTable { background: $surface; }
    FlowTable > .flow-table--header { text-style: bold; background: $panel; color: $foreground; }
    FlowTable > .flow-table--cursor { background: $block-cursor-background; color: $block-cursor-foreground;
                                      text-style: $block-cursor-text-style; }
    FlowTable:blur > .flow-table--cursor { background: $block-cursor-blurred-background;
                                           text-style: $block-cursor-blurred-text-style; }
    """

    class Highlighted(Message):
        """The cursor moved to another flow (or to none)."""

        def __init__(self, table: "FlowTable", flow: FlowId | None):
            super().__init__()
            self.table, self.flow = table, flow

    class HeaderClicked(Message):
        """A column header was clicked: the app sorts by it (again: reversed)."""

        def __init__(self, table: "FlowTable", column: str):
            super().__init__()
            self.table, self.column = table, column

    def __init__(self, **kw):
        super().__init__(**kw)
        self._rows: Sequence[FlowRecord] = []     # a list, or FlowRows (records built when drawn)
        self._index: dict[FlowId, int] | None = None     # built when first asked, per tick
        self._cursor_flow: FlowId | None = None
        self._cursor = 0
        self._now = 0.0
        self._fade_after = 5.0
        self._cache: dict[FlowId, tuple[FlowRecord, float, bool, tuple[Text, ...]]] = {}
        # A row's last drawn line, by flow: (its cells, layout, width, style, the line). A scroll
        # by one row draws one new line; the rest are these.
        self._lines: dict[FlowId, tuple[tuple[Text, ...], list[tuple[str, int]], int, Style, Strip]] = {}
        self._auto: dict[str, int] = {"src": len("source"), "dst": len("destination")}
        self._sort_column = "bps"
        self._reverse = False
        self.follow = False
        self._layout_key: tuple | None = None
        self._layout_cols: list[tuple[str, int]] = []
        self._styles: tuple[Style, Style, Style] | None = None    # a frame's styles (render_lines)
        self._styled: Styled = {}     # a frame's combined cell styles (tableline.line_strip)
        self.dry_run = False          # the drops column shows would-drops/s (set with show())
        self.owners: dict | None = None   # Snapshot.owners (set with show()); None: no process column
        self.resolver: NameCache | None = None   # names for the endpoints (set_names); None: addresses
        self.rows_built = 0           # row_cells calls, for tests: only visible rows are built

    # -- what the app reads ---------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def flow_ids(self) -> list[FlowId]:
        """Flows in display order."""
        rows = self._rows
        if isinstance(rows, FlowRows):
            return [rows.flow_id(i) for i in range(len(rows))]
        return [r.id for r in rows]

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def selected_flow(self) -> FlowId | None:
        return self._cursor_flow if self._rows else None

    @property
    def selected_key(self) -> str | None:
        flow = self.selected_flow
        return row_key(flow) if flow is not None else None

    @property
    def selected_record(self) -> FlowRecord | None:
        return self._rows[self._cursor] if self._rows else None

    def index_of(self, flow: FlowId) -> int | None:
        if isinstance(self._rows, FlowRows):
            return self._rows.index_of(flow)
        if self._index is None:
            self._index = {r.id: i for i, r in enumerate(self._rows)}
        return self._index.get(flow)

    def _find(self, flow: FlowId) -> int | None:
        """The row of one flow, without a dict of every row: the session hands out the same
        FlowId object each tick, so an identity scan finds it (an equality scan otherwise)."""
        rows = self._rows
        if isinstance(rows, FlowRows):
            return rows.index_of(flow)
        i = next((i for i, r in enumerate(rows) if r.id is flow), None)
        return i if i is not None else next((i for i, r in enumerate(rows) if r.id == flow), None)

    def record(self, flow: FlowId) -> FlowRecord | None:
        i = self.index_of(flow)
        return self._rows[i] if i is not None else None

    def cells_of(self, flow: FlowId) -> dict[str, Text]:
        """The cells of a flow's row by column key, as drawn (for tests and copies)."""
        rec = self.record(flow)
        if rec is None:
            raise KeyError(flow)
        return dict(zip((c[0] for c in COLUMNS), self._cells(rec)))

    def column_label(self, column: str) -> str:
        return self._label(column)

    # -- what the app sets ----------------------------------------------
    def set_sort_column(self, column: str, reverse: bool = False) -> None:
        """Move the ▼ (▲ reversed) marker to the sorted column's header."""
        self._sort_column, self._reverse = column, reverse
        self.refresh()

    def set_names(self, resolver: NameCache | None) -> None:
        """Show host and service names from `resolver` (None: addresses and port numbers);
        called again when new names arrive."""
        self.resolver = resolver
        self._cache, self._lines, self._layout_key = {}, {}, None
        self._auto = {"src": len("source"), "dst": len("destination")}    # names are wider, or narrower
        self.refresh()

    def show(self, rows: Sequence[FlowRecord], now: float, fade_after: float, dry_run: bool = False,
             owners: dict | None = None) -> None:
        """Show `rows` in this order. The cursor stays on its flow; the view stays put
        unless follow is on."""
        old_flow, old_index, old_top = self._cursor_flow, self._cursor, int(self.scroll_y)
        self._rows, self._index = rows, None
        self._now, self._fade_after, self.dry_run, self.owners = now, fade_after, dry_run, owners
        if len(self._cache) > 4 * max(self.size.height, 50):
            self._cache, self._lines = {}, {}
        index = self._find(old_flow) if old_flow is not None else None
        if index is None:     # the flow left (or none yet): the row at its place
            index = old_index if old_top <= old_index < old_top + self._page() else old_top
        self._cursor = min(max(index, 0), max(len(rows) - 1, 0))
        self._cursor_flow = rows[self._cursor].id if rows else None
        self.virtual_size = Size(self.size.width, len(rows) + 1)
        if self.follow and old_flow == self._cursor_flow:
            self.scroll_to(y=self._cursor - (old_index - old_top), animate=False, immediate=True)
        self.refresh()
        if old_flow != self._cursor_flow:
            self.post_message(self.Highlighted(self, self._cursor_flow))

    # -- moving ------------------------------------------------------------
    def _page(self) -> int:
        return max(self.size.height - 1, 1)

    def move_cursor(self, row: int, animate: bool = False) -> None:
        """Put the cursor on row `row` (clamped) and scroll it into view."""
        if not self._rows:
            return
        old, old_row = self._cursor_flow, self._cursor
        self._cursor = min(max(row, 0), len(self._rows) - 1)
        self._cursor_flow = self._rows[self._cursor].id
        top = int(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + self._page():
            self.scroll_to(y=self._cursor - self._page() + 1, animate=False, immediate=True)
        if int(self.scroll_y) != top:
            self.refresh()
        else:     # the view stays put: only the lines the cursor left and reached change (a
            # key's frame ~1.5 ms headless, against ~4-9 ms when every line of the view went
            # through Textual again, each from the line cache)
            self.refresh_lines(old_row + 1)      # line 0 is the header
            self.refresh_lines(self._cursor + 1)
        if old != self._cursor_flow:
            self.post_message(self.Highlighted(self, self._cursor_flow))

    def action_cursor_down(self) -> None:
        self.move_cursor(self._cursor + 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(self._cursor - 1)

    def action_page_down(self) -> None:
        self.scroll_to(y=self.scroll_y + self._page(), animate=False, immediate=True)
        self.move_cursor(self._cursor + self._page())

    def action_page_up(self) -> None:
        self.scroll_to(y=self.scroll_y - self._page(), animate=False, immediate=True)
        self.move_cursor(self._cursor - self._page())

    def action_first(self) -> None:
        self.move_cursor(0)

    def action_last(self) -> None:
        self.move_cursor(len(self._rows) - 1)

    def action_toggle_follow(self) -> None:
        """htop's F: the view follows the selected flow as it moves (or stays put)."""
        self.follow = not self.follow
        self.notify("follow: the view keeps the selected flow in place" if self.follow
                    else "follow off: the view stays where you put it", timeout=3)

    async def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:
            column = self._column_at(offset.x)
            if column is not None:
                self.post_message(self.HeaderClicked(self, column))
        else:
            self.move_cursor(int(self.scroll_y) + offset.y - 1)

    # -- drawing -----------------------------------------------------------
    def _label(self, key: str) -> str:
        label = next(lab for k, lab, _ in COLUMNS if k == key)
        if key == "drops" and self.dry_run:
            label = WOULD_DROPS_LABEL
        return label + (("▲" if self._reverse else "▼") if key == self._sort_column else "")

    def _cells(self, rec: FlowRecord) -> tuple[Text, ...]:
        """A row's cells, built once per record and tick (an unchanged record is not rebuilt)."""
        hit = self._cache.get(rec.id)
        if hit is not None and (hit[0] is rec or hit[0] == rec) and hit[1] == self._now and hit[2] == self.dry_run:
            return hit[3]
        cells = row_cells(rec, self._now, self._fade_after, "", self.dry_run, self.owners, self.resolver)
        self.rows_built += 1
        self._cache[rec.id] = (rec, self._now, self.dry_run, cells)
        return cells

    def _layout(self) -> list[tuple[str, int]]:
        """(column, width) of the columns that fit the width, in COLUMNS order; computed once
        per frame (every line of a frame asks)."""
        key = (id(self._rows), self._now, int(self.scroll_y), self.scrollable_content_region.width,
               self._sort_column, self._reverse, self.dry_run, self.owners is None)
        if self._layout_key != key:
            self._layout_key, self._layout_cols = key, self._fit()
        return self._layout_cols

    def _fit(self) -> list[tuple[str, int]]:
        top = int(self.scroll_y)
        for rec in self._rows[top:top + self._page()]:
            cells = self._cells(rec)
            self._auto["src"] = max(self._auto["src"], cells[3].cell_len)
            self._auto["dst"] = max(self._auto["dst"], cells[4].cell_len)
        widths = {k: (w if w is not None else self._auto[k]) for k, _, w in COLUMNS}
        widths = {k: max(w, cell_len(self._label(k))) for k, w in widths.items()}
        room = self.scrollable_content_region.width
        shown = [k for k, _, _ in COLUMNS if k != "proc" or self.owners is not None]

        def need() -> int:
            return sum(widths[k] for k in shown) + len(shown) - 1
        for key in COLUMN_PRIORITY:
            if need() <= room:
                break
            if key in shown:
                shown.remove(key)
        while need() > room and max(widths["src"], widths["dst"]) > MIN_ENDPOINT:
            wider = "src" if widths["src"] >= widths["dst"] else "dst"
            widths[wider] -= 1
        return [(k, widths[k]) for k in shown]

    def _column_at(self, x: int) -> str | None:
        left = 0
        for key, width in self._layout():
            if left <= x < left + width:
                return key
            left += width + 1
        return None

    def render_lines(self, crop: Region) -> list[Strip]:
        """The styles of a frame, looked up once for all its lines (Textual then calls render_line)."""
        self._styles, self._styled = None, {}
        return super().render_lines(crop)

    def _frame_styles(self) -> tuple[Style, Style, Style]:
        """(row, cursor row, header) styles of the frame being drawn."""
        if self._styles is None:
            base = self.rich_style
            self._styles = (base, base + self.get_component_rich_style("flow-table--cursor"),
                            base + self.get_component_rich_style("flow-table--header"))
        return self._styles

    def render_line(self, y: int) -> Strip:
        layout = self._layout()
        width = self.scrollable_content_region.width
        base, cursor_style, header_style = self._frame_styles()
        if y == 0:
            labels = [Text(self._label(k), justify="right" if k in RIGHT else "left") for k, _ in layout]
            return line_strip(labels, layout, width, header_style, self.app.console, self._styled)
        index = int(self.scroll_y) + y - 1
        if index >= len(self._rows):
            return Strip.blank(width, base)
        rec = self._rows[index]
        cells = self._cells(rec)
        cursor = index == self._cursor
        style = cursor_style if cursor else base
        hit = self._lines.get(rec.id)
        if hit is not None and hit[0] is cells and hit[2] == width and hit[3] == style and hit[1] == layout:
            return hit[4]
        cells_by_key = dict(zip((c[0] for c in COLUMNS), cells))
        line = line_strip([cells_by_key[k] for k, _ in layout], layout, width, style, self.app.console, self._styled,
                          on_top=cursor)
        self._lines[rec.id] = (cells, layout, width, style, line)
        return line

