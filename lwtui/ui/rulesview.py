"""The rules view: every active verdict, removable from the keyboard."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from lwtui.core.model import RuleEntry
from lwtui.core.units import fmt_count, fmt_duration
from lwtui.ui.cells import clock_text
from lwtui.ui.flowtable import VimTable

EMPTY = ("No active rules.\n\nHere: n types one (host 10.0.0.9, port 53/udp), also for a host not seen yet.\n"
         "From the flow table: d drops the selected flow, h blocks its remote host, "
         "p blocks its service port (t first for a TTL).\nFrom another shell: lwtui block 'port 8080/tcp'.")


class RulesTable(VimTable):
    """One row per rule, keyed by its text; x/delete/a ask the app to lift it."""

    BINDINGS = [
        Binding("x", "remove", "remove rule"),
        Binding("delete", "remove", "remove rule", show=False),
        Binding("a", "remove", "allow (remove rule)", show=False),
    ]

    class RemoveRule(Message):
        """The user asked to lift this rule."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, **kw):
        super().__init__(cursor_type="row", **kw)
        self._shown: list[tuple] = []

    def on_mount(self) -> None:
        self.add_column("kind", key="kind", width=5)
        self.add_column("rule", key="rule")
        self.add_column(Text("TTL left", justify="right"), key="ttl", width=9)
        self.add_column(Text("dropped", justify="right"), key="hits", width=9)
        self.add_column(Text("would-drop", justify="right"), key="would", width=10)
        self.add_column("added", key="added", width=8)

    @property
    def selected_text(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    def show(self, rules: list[RuleEntry]) -> None:
        """Redraw when the list changed; the cursor stays on its rule. A rule's hits show
        as what it dropped and what it matched in dry-run (and let through)."""
        rows = [(r.text, r.kind, r.expires_in, r.hits, r.would_drops, r.created) for r in rules]
        if rows == self._shown:
            return
        self._shown = rows
        keep, index = self.selected_text, self.cursor_row
        self.clear()
        for r in rules:
            ttl = "∞" if r.expires_in is None else fmt_duration(r.expires_in)
            self.add_row(r.kind, Text(r.text, style="bold"), Text(ttl, justify="right"),
                         Text(fmt_count(r.drops), justify="right"),
                         Text(fmt_count(r.would_drops), justify="right", style="yellow" if r.would_drops else ""),
                         clock_text(r.created) if r.created else "", key=r.text)
        texts = [r.text for r in rules]
        if texts:
            self.move_cursor(row=texts.index(keep) if keep in texts else min(index, len(texts) - 1))

    def action_remove(self) -> None:
        text = self.selected_text
        if text is not None:
            self.post_message(self.RemoveRule(text))


class RulesView(Vertical):
    """The table, or a note saying how to add rules when there are none."""

    def compose(self) -> ComposeResult:
        yield Static(" Active rules: x, delete or a removes the selected one; n adds one; escape goes back to the flows",
                     id="rules-note")
        yield Static(EMPTY, id="rules-empty")
        yield RulesTable(id="rules-table")

    def show(self, rules: list[RuleEntry]) -> None:
        self.query_one("#rules-empty").display = not rules
        table = self.query_one(RulesTable)
        table.display = bool(rules)
        table.show(rules)
