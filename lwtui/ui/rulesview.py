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
    """One row per rule, keyed by its text; x/delete/a ask the app to lift it, t to give it a
    new TTL, D to switch its own dry-run."""

    BINDINGS = [
        Binding("x", "remove", "remove rule"),
        Binding("delete", "remove", "remove rule", show=False),
        Binding("a", "remove", "allow (remove rule)", show=False),
        Binding("t", "edit_ttl", "rule TTL"),
        Binding("D", "rule_dry_run", "rule dry-run"),
    ]

    class RemoveRule(Message):
        """The user asked to lift this rule."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class EditTtl(Message):
        """The user asked for a new TTL for this rule."""

        def __init__(self, entry: RuleEntry) -> None:
            super().__init__()
            self.entry = entry

    class ToggleDryRun(Message):
        """The user asked to switch this rule alone between dropping and dry-run."""

        def __init__(self, entry: RuleEntry) -> None:
            super().__init__()
            self.entry = entry

    def __init__(self, **kw):
        super().__init__(cursor_type="row", **kw)
        self._shown: list[tuple] = []
        self._entries: dict[str, RuleEntry] = {}

    def on_mount(self) -> None:
        self.add_column("kind", key="kind", width=5)
        self.add_column("rule", key="rule")
        self.add_column("mode", key="mode", width=7)
        self.add_column(Text("TTL left", justify="right"), key="ttl", width=8)
        self.add_column(Text("hits", justify="right"), key="hits", width=7)
        self.add_column(Text("dropped", justify="right"), key="drops", width=7)
        self.add_column(Text("would-drop", justify="right"), key="would", width=10)
        self.add_column("added", key="added", width=8)

    @property
    def selected_text(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value

    @property
    def selected_entry(self) -> RuleEntry | None:
        text = self.selected_text
        return None if text is None else self._entries.get(text)

    def show(self, rules: list[RuleEntry], dry_run: bool = False) -> None:
        """Redraw when the list changed; the cursor stays on its rule. A rule's hits (packets it
        matched) show split into what it dropped and what it matched in dry-run and let
        through; its mode is dry-run when it alone is (D) or the session is."""
        rows = [(r.text, r.kind, r.expires_in, r.hits, r.would_drops, r.created, r.dry_run, dry_run) for r in rules]
        if rows == self._shown:
            return
        self._shown = rows
        self._entries = {r.text: r for r in rules}
        keep, index = self.selected_text, self.cursor_row
        self.clear()
        for r in rules:
            ttl = "∞" if r.expires_in is None else fmt_duration(r.expires_in)
            mode = Text("dry-run", style="bold yellow") if r.dry_run else \
                Text("dry-run", style="yellow") if dry_run else Text("drop", style="red")
            self.add_row(r.kind, Text(r.text, style="bold"), mode, Text(ttl, justify="right"),
                         Text(fmt_count(r.hits), justify="right"),
                         Text(fmt_count(r.drops), justify="right", style="red" if r.drops else ""),
                         Text(fmt_count(r.would_drops), justify="right", style="yellow" if r.would_drops else ""),
                         clock_text(r.created) if r.created else "", key=r.text)
        texts = [r.text for r in rules]
        if texts:
            self.move_cursor(row=texts.index(keep) if keep in texts else min(index, len(texts) - 1))

    def action_remove(self) -> None:
        text = self.selected_text
        if text is not None:
            self.post_message(self.RemoveRule(text))

    def action_edit_ttl(self) -> None:
        entry = self.selected_entry
        if entry is not None:
            self.post_message(self.EditTtl(entry))

    def action_rule_dry_run(self) -> None:
        entry = self.selected_entry
        if entry is not None:
            self.post_message(self.ToggleDryRun(entry))


class RulesView(Vertical):
    """The table, or a note saying how to add rules when there are none."""

    def compose(self) -> ComposeResult:
        yield Static(" Rules: x removes the selected one · t its TTL · D its dry-run · n adds one · esc: the flows",
                     id="rules-note")
        yield Static(EMPTY, id="rules-empty")
        yield RulesTable(id="rules-table")

    def show(self, rules: list[RuleEntry], dry_run: bool = False) -> None:
        self.query_one("#rules-empty").display = not rules
        table = self.query_one(RulesTable)
        table.display = bool(rules)
        table.show(rules, dry_run)
