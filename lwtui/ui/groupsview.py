"""The groups view: flows by remote host, by service port, by process (v cycles).

The groupings themselves (sums and 2 s / 10 s / 40 s averages) are
lwtui.core.groups, booked by the tick worker after each snapshot; this view
shows the busiest groups of the chosen kind.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from lwtui.core.groups import KINDS, WINDOWS, GroupRow, service_name
from lwtui.core.units import fmt_bits, fmt_bytes, fmt_count, plural
from lwtui.ui.flowtable import VimTable

TITLES = {"host": ("remote host", "hosts"), "port": ("port", "ports"), "process": ("process", "processes")}
MAX_ROWS = 200          # the busiest; the note says how many there are
NARROW = 100            # under this width: no pkts and drops columns


def _right(text: str, style: str = "") -> Text:
    return Text(text, justify="right", style=style)


class GroupsTable(VimTable):
    """One row per group, keyed by its name; the cursor stays on its group as rows move."""

    def __init__(self, **kw):
        super().__init__(cursor_type="row", **kw)
        self._layout: tuple[str, bool] | None = None

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def _columns(self, kind: str, narrow: bool) -> None:
        self.clear(columns=True)
        self.add_column("port (service)" if kind == "port" else TITLES[kind][0], key="key")
        self.add_column(_right("flows"), key="flows", width=5)
        if not narrow:
            self.add_column(_right("pkts"), key="pkts", width=7)
        self.add_column(_right("bytes"), key="bytes", width=9)
        if not narrow:
            self.add_column(_right("drops"), key="drops", width=6)
        self.add_column(_right("bits/s"), key="rate", width=9)
        for w in WINDOWS:
            self.add_column(_right(f"{w:g}s avg"), key=f"avg{w:g}", width=9)
        self._layout = (kind, narrow)

    def show(self, kind: str, rows: list[GroupRow], width: int) -> None:
        narrow = width < NARROW
        keep, index = self.selected_key, self.cursor_row
        if self._layout != (kind, narrow):
            self._columns(kind, narrow)
            keep = None
        else:
            self.clear()
        for r in rows:
            cells: list = [Text(r.key, style="bold")]
            if kind == "port":      # the name /etc/services gives the port, if any
                port, _, proto = r.key.partition("/")
                cells[0].append(f" {service_name(int(port), proto)}" if port.isdigit() and proto else "",
                                style="dim")
            cells.append(_right(fmt_count(r.flows)))
            if not narrow:
                cells.append(_right(fmt_count(r.packets)))
            cells.append(_right(fmt_bytes(r.bytes)))
            if not narrow:
                cells.append(_right(fmt_count(r.drops), "bold red" if r.drops else "dim"))
            cells.append(_right(fmt_bits(r.bps), "bold"))
            cells += [_right(fmt_bits(a)) for a in r.averages]
            self.add_row(*cells, key=r.key)
        keys = [r.key for r in rows]
        if keys:
            self.move_cursor(row=keys.index(keep) if keep in keys else min(index, len(keys) - 1), animate=False)


class GroupsView(Vertical):
    """A note (which grouping, how many, what the rates are) over the table."""

    def compose(self) -> ComposeResult:
        yield Static("", id="groups-note")
        yield GroupsTable(id="groups-table")

    def show(self, kind: str, rows: list[GroupRow], age: float | None = None) -> None:
        """`age`: seconds of refreshes booked (the groups are booked only while this view is open)."""
        shown = rows[:MAX_ROWS]
        nxt = KINDS[(KINDS.index(kind) + 1) % len(KINDS)] if kind != KINDS[-1] else None
        note = f" By {TITLES[kind][0]}: {plural(len(rows), *_nouns(kind))}"
        if len(rows) > len(shown):
            note += f" (the busiest {len(shown)})"
        note += f" · v: by {TITLES[nxt][0]}" if nxt else " · v: the flows"
        note += " · bits/s passed now and over " + ", ".join(f"{w:g}s" for w in WINDOWS)
        if age is not None and age < WINDOWS[-1]:
            note += f" (view open {age:.0f}s: a longer average covers that)"
        self.query_one("#groups-note", Static).update(note)
        self.query_one(GroupsTable).show(kind, shown, self.app.size.width)


def _nouns(kind: str) -> tuple[str, str]:
    one = TITLES[kind][0].split()[-1]
    return one, TITLES[kind][1]
