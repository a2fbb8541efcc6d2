"""The live flow table: a DataTable updated as a diff by row key.

Each tick the app hands over the rows to show (already filtered, sorted and
capped, see selection.py). The table removes rows that left, adds rows that
came, calls update_cell only for cells whose text changed, re-sorts only when
the order changed, and puts the cursor back on the flow it was on. It never
clears itself, so the user's place survives every refresh. When most rows
changed (a refill), only the rows on screen get their cells built at once; the
others get lazy cells that build themselves when drawn or read (_LazyRow).
"""

from __future__ import annotations

from rich.cells import cell_len
from rich.measure import Measurement
from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from lwtui.core.model import FlowId, FlowRecord
from lwtui.ui.cells import COLUMNS, RIGHT, WOULD_DROPS_LABEL, endpoint, row_cells

REBUILD_AT = 20    # rows leaving in one tick above which refilling beats removing (~1.5 ms each at 500)
EAGER_MARGIN = 10  # rows above and below the screen whose cells a refill builds at once


def _look(cell: Text | _LazyCell) -> tuple:
    """What a cell looks like: Text's own == ignores the base style (a verdict turning red)."""
    return cell.plain, str(cell.style), cell.spans


class _LazyRow:
    """A row a refill placed off screen: its cells are built when first drawn or read.

    The table shows the top 500 flows; a terminal shows a few dozen. When most
    rows change in a tick (the table is refilled), building Rich Text for
    every row would be most of the UI thread's work, for rows nobody sees.
    Each _LazyCell builds the whole row (row_cells, the same call and inputs
    an eager row gets) the first time DataTable renders it or someone reads
    it, so what is drawn is identical; only the auto-width columns (source,
    destination) need their width up front, for DataTable's column sizing.
    """
    __slots__ = ("rec", "now", "fade_after", "key", "dry_run", "_built")

    def __init__(self, rec: FlowRecord, now: float, fade_after: float, key: str, dry_run: bool):
        self.rec, self.now, self.fade_after, self.key = rec, now, fade_after, key
        self._built: tuple[Text, ...] | None = None
        self.dry_run = dry_run

    def built(self) -> tuple[Text, ...]:
        if self._built is None:
            self._built = row_cells(self.rec, self.now, self.fade_after, self.key, self.dry_run)
        return self._built

    def cells(self, widths: dict) -> tuple["_LazyCell", ...]:
        """One lazy cell per column; `widths` caches the auto-width columns' widths by row key."""
        w = widths.get(self.key)
        if w is None:
            f = self.rec.id
            w = widths[self.key] = {i: cell_len(endpoint(f, key == "src"))
                                    for i, (key, _, width) in enumerate(COLUMNS) if width is None}
        return tuple([_LazyCell(self, i, w.get(i, 0)) for i in _COLUMN_INDEXES])


_COLUMN_INDEXES = range(len(COLUMNS))


class _LazyCell:
    """One cell of a _LazyRow: renders, measures and reads as the Text it stands for."""
    __slots__ = ("row", "index", "width")

    def __init__(self, row: _LazyRow, index: int, width: int):
        self.row, self.index, self.width = row, index, width

    @property
    def row_key(self) -> str:          # the marker column's KeyedText.row_key, without building
        return self.row.key

    def __rich_console__(self, console, options):
        yield self.row.built()[self.index]

    def __rich_measure__(self, console, options) -> Measurement:
        # Only auto-width columns' measures are used; theirs is the endpoint text's width.
        return Measurement(self.width, self.width)

    def __getattr__(self, name):       # .plain, .style, .spans ...: the real cell's
        return getattr(self.row.built()[self.index], name)


class VimTable(DataTable):
    """A DataTable that also moves with j/k."""

    BINDINGS = [
        Binding("j", "cursor_down", "down", show=False),
        Binding("k", "cursor_up", "up", show=False),
    ]


class FlowTable(VimTable):
    """Flows as rows; the app calls show() once per tick."""

    def __init__(self, **kw):
        super().__init__(cursor_type="row", zebra_stripes=False, **kw)
        self._cells: dict[str, tuple[Text | _LazyCell, ...]] = {}
        self._flows: dict[str, FlowId] = {}
        self._order: list[str] = []
        self._sort_column = "bps"
        self._widths: dict[str, dict] = {}   # row key -> auto-width column widths, for lazy rows
        self.dry_run = False                 # the drops column shows would-drops/s (set with show())

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(self._label(key, label), key=key, width=width)

    def _label(self, key: str, label: str) -> Text:
        if key == "drops" and self.dry_run:
            label = WOULD_DROPS_LABEL
        text = label + ("▼" if key == self._sort_column else "")
        return Text(text, justify="right" if key in RIGHT else "left")

    # -- what the app reads ---------------------------------------------
    @property
    def flow_ids(self) -> list[FlowId]:
        """Flows in display order."""
        return [self._flows[k] for k in self._order]

    @property
    def selected_key(self) -> str | None:
        if not self._order or not (0 <= self.cursor_row < len(self._order)):
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    @property
    def selected_flow(self) -> FlowId | None:
        key = self.selected_key
        return self._flows.get(key) if key else None

    # -- what the app sets ----------------------------------------------
    def set_sort_column(self, column: str) -> None:
        """Move the ▼ marker to the sorted column's header."""
        self._sort_column = column
        self._relabel()

    def _relabel(self) -> None:
        for key, label, _ in COLUMNS:
            self.columns[self._column_key(key)].label = self._label(key, label)
        self.refresh()

    def _column_key(self, key: str):
        return next(k for k in self.columns if k.value == key)

    def show(self, rows: list[FlowRecord], now: float, fade_after: float, key_of, dry_run: bool = False) -> None:
        """Make the table show `rows` in this order, touching only what changed; with
        dry_run the drops column shows would-drops/s (and says so)."""
        if dry_run != self.dry_run:
            self.dry_run = dry_run
            self._relabel()
        selected = self.selected_key
        old_index = self.cursor_row
        order = [key_of(rec) for rec in rows]
        stale = len(self._cells) - sum(1 for k in order if k in self._cells)
        rebuild = stale > REBUILD_AT
        eager = self._eager_rows(order, selected) if rebuild else None
        new_cells: dict[str, tuple[Text | _LazyCell, ...]] = {}
        for i, (key, rec) in enumerate(zip(order, rows)):
            if eager is None or eager[0] <= i < eager[1] or key == selected:
                new_cells[key] = row_cells(rec, now, fade_after, key, dry_run)
            else:
                new_cells[key] = _LazyRow(rec, now, fade_after, key, dry_run).cells(self._widths)
            self._flows[key] = rec.id
        with self.app.batch_update():
            if rebuild:
                self._rebuild(order, new_cells)
            else:
                self._remove_stale(new_cells)
                self._update_rows(new_cells)
                if order != self._order:
                    rank = {k: i for i, k in enumerate(order)}
                    self.sort("v", key=lambda cell: rank[cell.row_key])
                    self._order = order
            self._restore_cursor(selected, old_index)

    def _eager_rows(self, order: list[str], selected: str | None) -> tuple[int, int]:
        """Row indexes worth building now on a refill: the screenful at the kept
        scroll offset, with a margin. The rest get lazy cells (see _LazyRow)."""
        top = int(self.scroll_y)
        return max(0, top - EAGER_MARGIN), top + self.size.height + EAGER_MARGIN

    def _rebuild(self, order: list[str], new_cells: dict) -> None:
        """Most rows changed: DataTable.remove_row is O(rows) each, so refill instead.

        The cursor goes back to its flow (or its position) and the scroll
        offset is kept, so the person does not lose their place either way.
        """
        scroll_y = self.scroll_y
        self.clear()
        self._add_rows(order, new_cells)
        self._cells = dict(new_cells)
        self._order = list(order)
        if len(self._widths) > 8 * max(len(order), 1000):
            self._widths = {}
        self._flows = {k: v for k, v in self._flows.items() if k in new_cells}
        self.scroll_to(y=scroll_y, animate=False)

    def _add_rows(self, order: list[str], new_cells: dict) -> None:
        """add_row for every key into the just-cleared table (public API only:
        writing DataTable's own row structures would save ~a third of a refill
        but break on the next textual release)."""
        for key in order:
            self.add_row(*new_cells[key], key=key)

    def _remove_stale(self, new_cells: dict) -> None:
        for key in [k for k in self._cells if k not in new_cells]:
            self.remove_row(key)
            del self._cells[key]
            self._flows.pop(key, None)
        self._order = [k for k in self._order if k in new_cells]

    def _update_rows(self, new_cells: dict) -> None:
        for key, cells in new_cells.items():
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
                self._order.append(key)
            else:
                for (col, _, width), before, after in zip(COLUMNS, old, cells):
                    if _look(before) != _look(after):
                        self.update_cell(key, col, after, update_width=width is None)
            self._cells[key] = cells

    def _restore_cursor(self, selected: str | None, old_index: int) -> None:
        """Keep the cursor on its flow; if the flow left, stay at the same position."""
        if not self._order:
            return
        if selected is not None and selected in self._cells:
            index = self.get_row_index(selected)
        else:
            index = min(max(old_index, 0), len(self._order) - 1)
        if index != self.cursor_row:
            self.move_cursor(row=index, animate=False)
