"""The route picker: when no ROUTE was given, choose which routes and hooks to watch.

`list_routes()` is injected (the CLI passes the netlink-backed one; tests pass a
list): it returns dicts with prefix, dev, table and hooks (the hooks that can
attach to that route). The picker returns the chosen {prefix, hook, dev, table}
dicts, or an empty list when the person quits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Static

from lwtui.core.units import plural
from lwtui.ui.flowtable import VimTable
from lwtui.ui.terminal import size_from_terminal

ListRoutes = Callable[[], list]


class RouteTable(VimTable):
    """One row per (route, hook) that can attach, and a dim row for each route that cannot."""

    BINDINGS = [Binding("space", "toggle", "mark"), Binding("enter", "select_cursor", "watch")]

    def __init__(self, **kw):
        super().__init__(cursor_type="row", **kw)
        self.choices: list[dict | None] = []     # None: a route no hook can attach to
        self.marked: set[int] = set()

    def on_mount(self) -> None:
        for key, label in (("mark", " "), ("prefix", "route"), ("hook", "hook"), ("dev", "dev"),
                           ("table", "table"), ("note", "")):
            self.add_column(label, key=key)

    def load(self, routes: list[dict]) -> None:
        self.clear()
        self.choices, self.marked = [], set()
        for r in routes:
            base = (str(r.get("dev") or ""), str(r.get("table") or ""))
            for hook in r.get("hooks") or []:
                choice = {"prefix": r["prefix"], "hook": hook, "dev": r.get("dev"), "table": r.get("table")}
                self.add_row(" ", Text(str(r["prefix"]), style="bold"), hook, *base, "",
                             key=str(len(self.choices)))
                self.choices.append(choice)
            if not r.get("hooks"):
                why = f"has encap {r['encap']}" if r.get("encap") else "multipath or nexthop object"
                self.add_row(" ", Text(str(r["prefix"]), style="dim"), Text("-", style="dim"), *base,
                             Text(f"{why}: cannot attach", style="dim"), key=str(len(self.choices)))
                self.choices.append(None)

    @property
    def attachable(self) -> int:
        return sum(c is not None for c in self.choices)

    # Not DOMNode.action_toggle(attribute): space toggles the row's mark (no action here passes one).
    def action_toggle(self) -> None:  # type: ignore[override]
        row = self.cursor_row
        if not self.choices or self.choices[row] is None:
            self.app.bell()
            return
        self.marked ^= {row}
        self.update_cell(str(row), "mark", Text("✓", style="bold green") if row in self.marked else " ")
        self.move_cursor(row=row + 1)

    def chosen(self) -> list[dict]:
        """The marked rows, or the row under the cursor when none is marked."""
        rows = sorted(self.marked) or ([self.cursor_row] if self.choices else [])
        return [c for c in (self.choices[i] for i in rows) if c is not None]


class RoutePickerApp(App[list]):
    """A small app of its own: it runs before any session exists."""

    CSS_PATH = Path(__file__).with_name("lwtui.tcss")
    TITLE = "lwtui: choose routes"
    BINDINGS = [Binding("enter", "done", "watch"), Binding("q,escape", "quit_empty", "quit"),
                Binding("ctrl+c", "quit_empty", "quit", show=False, priority=True)]

    def __init__(self, list_routes: ListRoutes):
        super().__init__()
        self.list_routes = list_routes

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble((" lwtui ", "bold reverse"), "  No ROUTE given: pick the routes to watch."),
                     id="picker-title")
        yield Static("reading routes…", id="picker-status")
        yield RouteTable(id="picker-table")
        yield Footer()

    def on_mount(self) -> None:
        self.load_routes()

    @work(thread=True, exclusive=True, exit_on_error=False, name="list-routes")
    def load_routes(self) -> None:
        """Netlink may block: read the routes off the UI thread."""
        try:
            routes = list(self.list_routes())
        except Exception as e:  # shown on screen; the person can quit
            self.call_from_thread(self._show_status, f"could not list routes: {e}", True)
            return
        self.call_from_thread(self._show_routes, routes)

    def _show_status(self, text: str, error: bool = False) -> None:
        self.query_one("#picker-status", Static).update(Text(text, style="bold red" if error else "dim"))

    def _show_routes(self, routes: list[dict]) -> None:
        table = self.query_one(RouteTable)
        table.load(routes)
        if not table.attachable:
            self._show_status("no route here has a hook lwtui can attach to: add one (ip route add ...) "
                              "or pass --dev DEV to create it", True)
        else:
            self._show_status(f"{plural(len(routes), 'route')}: space marks rows, enter watches the marked ones "
                              "(or the one under the cursor), q quits")
        table.focus()

    def on_data_table_row_selected(self, event) -> None:
        """Enter on the table (DataTable's own binding) means done."""
        self.action_done()

    def action_done(self) -> None:
        chosen = self.query_one(RouteTable).chosen()
        if chosen:
            self.exit(chosen)

    def action_quit_empty(self) -> None:
        self.exit([])


def pick_routes(list_routes: ListRoutes) -> list[dict]:
    """Run the picker; the chosen {prefix, hook, dev, table} dicts ([] when quit)."""
    size_from_terminal()
    return RoutePickerApp(list_routes).run() or []
