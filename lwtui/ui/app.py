"""The dashboard app: composition and routing only.

Widgets live in their own modules, key actions in actions.py, copy and
export in keep.py, remembered settings in remember.py, the workers in
feed.py, the ways out in exits.py, styles in lwtui.tcss. The app holds the state the views share (the
latest Snapshot, filter, sort, pause, next TTL) and routes messages: a
SnapshotReady from the tick worker goes to the header, the flow table, the
detail pane, the rules view and the event log.

The session is any `SessionLike` (lwtui.session.protocol): the live Session
or a ReplaySession.

Ways out: q (exit code 0; with active rules, after a question), ctrl+c
(130; with text selected it copies instead), SIGINT/SIGTERM/SIGHUP (128 + N,
through a normal exit of the app: exits.py), the terminal hanging up (129,
also when no SIGHUP arrives), and an exception in a handler: the app ends and
run_dashboard raises it once the terminal is restored. The caller restores
the routes after run_dashboard, whichever way it ended.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Input, Static
from textual.worker import Worker, WorkerState

from lwtui.session import faults
from lwtui.session.protocol import SessionLike
from lwtui.core.model import EventEntry, FlowId, FlowRecord, Snapshot
from lwtui.core.pcap import SNAPLEN_DEFAULT, PcapWriter
from lwtui.core.groups import KINDS as GROUP_KINDS
from lwtui.core.units import fmt_count, plural
from lwtui.ui.actions import SESSION_ERRORS, ActionsMixin
from lwtui.ui.detail import DetailPane, RateChart
from lwtui.ui.dialogs import FilterBar, HelpScreen
from lwtui.ui.emptystate import EmptyState
from lwtui.ui.evidence import RecordMixin
from lwtui.ui.names import NamesMixin
from lwtui.ui.eventlog import EventLog, EventsView
from lwtui.ui.exits import ExitsMixin, exit_on_signals, keep_failures
from lwtui.ui.feed import FeedMixin, SnapshotReady, TickFailed
from lwtui.ui.flowtable import FlowTable
from lwtui.ui.footer import FitFooter
from lwtui.ui.groupsview import GroupsTable, GroupsView
from lwtui.ui.header import ROUTES_GONE, HeaderStrip
from lwtui.ui.keep import KeepMixin
from lwtui.ui.remember import RememberMixin
from lwtui.ui.keys import KEYS, TABLE_ACTIONS, bindings
from lwtui.ui.picker import pick_routes  # noqa: F401  (the CLI imports it from here)
from lwtui.ui.ruleedit import RuleEditMixin
from lwtui.ui.rulesview import RulesTable, RulesView
from lwtui.ui.selection import DEFAULT_LIMIT, SORTS, select_flows
from lwtui.ui.terminal import size_from_terminal

FLOW_ACTIONS = {"block", "allow", "toggle_detail", "cycle_sort", "filter", "copy_flow", "copy_endpoints", "record",
                "toggle_names"}
RULES_ACTIONS = {"new_rule"}


@keep_failures
class DashboardApp(FeedMixin, ActionsMixin, RuleEditMixin, KeepMixin, RecordMixin, NamesMixin, RememberMixin,
                   ExitsMixin, App[int]):
    """lwtui's dashboard over one session.

    interval: seconds between snapshots (None: the remembered one, else 1);
    remember=True: theme, sort and interval come from and go to the settings
    file (lwtui.core.settings); list_routes: optional callable for the
    empty state's "other routes" hint; fade_after: idle seconds after which a
    row is dimmed; expire_after: idle seconds after which the table hides a
    flow (None: until the session expires it); max_rows: the table shows only the
    top N by the sort key (None: every flow, scrollable); autotick=False: snapshots only on request_tick()
    (tests, screenshots); snaplen: bytes of each packet `w` records (--snaplen).
    """

    CSS_PATH = Path(__file__).with_name("lwtui.tcss")
    TITLE = "lwtui"
    BINDINGS = bindings()
    # Short terminals (80x24, 60x18): the detail pane waits for enter; narrow ones
    # (under 100 columns): its text takes the whole width, without the chart.
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]

    def __init__(self, session: SessionLike, interval: float | None = 1.0, list_routes: Callable[[], list] | None = None, *,
                 fade_after: float = 5.0, expire_after: float | None = None, max_rows: int | None = DEFAULT_LIMIT,
                 autotick: bool = True, remember: bool = False, snaplen: int = SNAPLEN_DEFAULT):
        super().__init__()
        self.session = session
        self.interval = self.init_remember(remember, interval)
        self.autotick = autotick
        self.list_routes = list_routes
        self.fade_after = fade_after
        self.expire_after = expire_after
        self.max_rows = max_rows
        self.snapshot: Snapshot | None = None   # the latest one received
        self.shown: Snapshot | None = None      # the one the flow table shows (frozen while paused)
        self.ticks = 0
        self.paused = False
        self.next_ttl: float | None = None
        self.snaplen = snaplen
        self.recording: PcapWriter | None = None
        self.filter = None
        self.filter_text = ""
        self.sort_index = 0
        self.sort_reverse = False
        self.view = "flows"
        self.group_kind = "host"                # what the groups view groups by (v cycles)
        self.other_routes: list[dict] | None = None
        self._routes_asked = False
        self._last_error = ""
        self.notes: list[tuple[str, str, str]] = []
        self.errors: list[str] = []             # texts of the last "error" events (routes that went away)
        self.error_count = 0
        self.routes_gone = False                # the session has no route left
        self.apply_seconds: list[float] = []
        self.init_feed()
        self.init_exits()

    # -- composition -----------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HeaderStrip(id="header")
        with ContentSwitcher(initial="flows", id="views"):
            with Vertical(id="flows"):
                yield Static("", id="table-note")
                yield EmptyState("", id="empty")
                yield FlowTable(id="flow-table")
                yield DetailPane(id="detail")
            yield GroupsView(id="groups")
            yield RulesView(id="rules")
            yield EventsView(id="events")
        yield FilterBar(id="filter-bar")
        yield FitFooter()

    def on_mount(self) -> None:
        self.header.show(session=self.session.name, dry_run=self.session.dry_run)
        self.query_one("#filter-bar").display = False
        self.query_one("#empty").display = False
        self.query_one("#detail-chart", RateChart).interval = self.interval
        self.flow_table.focus()
        self.apply_settings()
        self.start_feed()
        self.watch_exits()

    def on_unmount(self) -> None:
        self._stop.set()
        self._wake.set()
        self.close_names()

    @property
    def header(self) -> HeaderStrip:
        return self.query_one(HeaderStrip)

    @property
    def flow_table(self) -> FlowTable:
        return self.query_one(FlowTable)

    @property
    def event_log(self) -> EventLog:
        return self.query_one(EventLog)

    # -- what tests and callers read --------------------------------------
    @property
    def selected_flow(self) -> FlowId | None:
        return self.flow_table.selected_flow if self.view == "flows" else None

    @property
    def selected_record(self) -> FlowRecord | None:
        return self.flow_table.selected_record

    def record(self, flow: FlowId) -> FlowRecord | None:
        """The shown record of a flow, if it is in the table."""
        return self.flow_table.record(flow)

    @property
    def flow_ids(self) -> list[FlowId]:
        """The flows in the table, in display order."""
        return self.flow_table.flow_ids

    # -- routing: snapshots -----------------------------------------------
    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        faults.check("ui")
        snap = self.mailbox.take()
        if snap is None:
            return
        self.snapshot, self.ticks, self._last_error = snap, self.ticks + 1, ""
        self._note_errors(snap)
        self.header.show(snapshot=snap, dry_run=snap.dry_run, errors=self.error_count)
        self.query_one(EventsView).add(snap.events)
        self.query_one(RulesView).show(snap.rules, snap.dry_run)
        if not self.paused:
            self.shown = snap
            self.render_flows()
            if self.view == "groups":
                self.render_groups()

    def _note_errors(self, snap: Snapshot) -> None:
        """The tick's "error" events (routes that went away) as one notification; when no route is
        left, one that says so, once."""
        new = [e.text for e in snap.events if e.kind == "error"]
        self.errors = (self.errors + new)[-100:]
        self.error_count += len(new)
        gone_now = not snap.routes and not self.routes_gone
        self.routes_gone = self.routes_gone or not snap.routes
        if not new and not gone_now:
            return
        lines = new[:3] + ([f"… and {len(new) - 3} more (e: the event log)"] if len(new) > 3 else [])
        if gone_now:
            self.notify("\n".join(lines) or "e: the event log says why", title=ROUTES_GONE, severity="error",
                        timeout=3600)
        else:
            self.notify("\n".join(lines), title="no longer watched", severity="error", timeout=15)

    def on_tick_failed(self, message: TickFailed) -> None:
        if message.error != self._last_error:      # once per distinct error, not once per tick
            self._last_error = message.error
            self.query_one(EventLog).add([EventEntry(time=time.time(), kind="error",
                                                     text=f"cannot read the session: {message.error}")])
            self.notify(message.error, title="cannot read the session", severity="error", timeout=10)

    def render_flows(self) -> None:
        """Apply the shown snapshot to the flow area: table or empty state, note, detail. Its
        duration is kept in `apply_seconds` (the last 100): the UI thread's cost per tick."""
        snap = self.shown
        if snap is None:
            return
        began = time.perf_counter()
        sort = SORTS[self.sort_index]
        sel = select_flows(snap.flows, now=snap.time, sort=sort, flt=self.filter,
                           expire_after=self.expire_after, limit=self.max_rows, reverse=self.sort_reverse)
        table, empty = self.flow_table, self.query_one(EmptyState)
        empty.display, refocus = not sel.rows, bool(sel.rows) and not table.display and self.focused is None
        table.display = bool(sel.rows)
        if refocus and self.view == "flows":    # hiding the table took the focus: keys went nowhere
            table.focus()
        self.query_one(DetailPane).set_class(not sel.rows, "empty")
        if not snap.flows and not snap.routes:
            empty.show_routes_gone(self.errors)
        elif not snap.flows:
            empty.show_no_traffic(snap, self.other_routes)
            if self.list_routes is not None and not self._routes_asked:
                self._routes_asked = True
                self._fetch_other_routes()
        elif not sel.rows:
            empty.show_filtered(self.filter_text or "(idle flows expired)", sel.total)
        table.show(sel.rows, snap.time, self.fade_after, dry_run=snap.dry_run, owners=snap.owners)
        self._show_note(sel, sort.name)
        self.query_one(DetailPane).owners = snap.owners
        self.query_one(DetailPane).recordings = snap.recordings
        self.query_one(DetailPane).show(self.selected_record, snap.time)
        self.apply_seconds = (self.apply_seconds + [time.perf_counter() - began])[-100:]

    def _show_note(self, sel, sort_name: str) -> None:
        order = " reversed" if self.sort_reverse else ""
        note = f" {plural(sel.total, 'flow')} · sorted by {sort_name}{order} (s)"
        if self.filter_text:
            note += f" · filter: {self.filter_text} → {fmt_count(sel.matched)} match (/ to change)"
        if sel.matched > len(sel.rows):
            note += f" · showing top {fmt_count(len(sel.rows))} of {fmt_count(sel.matched)}"
        if self.paused:
            note += " · PAUSED (space resumes)"
        self.query_one("#table-note", Static).update(note, layout=False)   # one line high: no layout pass

    @work(thread=True, exclusive=True, exit_on_error=False, group="routes", name="list-routes")
    def _fetch_other_routes(self) -> None:
        """Once, for the empty state: the namespace's routes lwtui could watch."""
        assert self.list_routes is not None    # render_flows asks only when there is one
        routes = list(self.list_routes())
        self.call_from_thread(setattr, self, "other_routes", routes)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR and event.worker.error is not None:
            self.report(f"background task {event.worker.name} failed", event.worker.error)

    # -- routing: widgets --------------------------------------------------
    def on_flow_table_highlighted(self, event: FlowTable.Highlighted) -> None:
        if self.shown is not None:
            self.query_one(DetailPane).show(self.selected_record, self.shown.time)

    def on_flow_table_header_clicked(self, event: FlowTable.HeaderClicked) -> None:
        self.sort_by_column(event.column)

    def on_rules_table_remove_rule(self, message: RulesTable.RemoveRule) -> None:
        try:
            gone = self.session.allow(message.text)
        except SESSION_ERRORS as e:
            self.report("rule not removed", e)
            return
        self.notify(f"removed {message.text}" if gone else f"{message.text} was already gone")
        self.after_session_change()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter-input" and self.apply_filter(event.value):
            self.query_one(FilterBar).close()
            self.flow_table.focus()

    def after_session_change(self) -> None:
        """Rules changed: redraw the rules view now and take a snapshot at once."""
        try:
            rules = self.session.rules()
        except SESSION_ERRORS as e:
            self.report("cannot read the rules", e, severity="warning")
        else:
            self.query_one(RulesView).show(rules, bool(self.session.dry_run))
        self.request_tick()

    def report(self, title: str, error: BaseException, severity: str = "error") -> None:
        """An error of a session call: a line in the event log and a notification."""
        text = f"{title}: {type(error).__name__}: {error}"
        self.query_one(EventLog).add([EventEntry(time=time.time(), kind="error", text=text)])
        self.notify(f"{type(error).__name__}: {error}", title=title, severity=severity, timeout=10)

    # -- routing: views and screens ---------------------------------------
    def action_view(self, name: str) -> None:
        """r / e: switch to a view; the same key again goes back to the flows."""
        self.action_show_view("flows" if self.view == name else name)

    def action_show_view(self, name: str) -> None:
        """Show a view (flows, rules, events): a click on its tab in the header."""
        self.view = name
        self.query_one(ContentSwitcher).current = self.view
        self.header.show(view=self.view)
        focus = {"flows": FlowTable, "groups": GroupsTable, "rules": RulesTable, "events": EventLog}[self.view]
        self.query_one(focus).focus()
        opening = name == "groups" and self.groups.wanted is None
        self.groups.want(self.group_kind if name == "groups" else None)    # rows made on the tick worker
        if opening:
            self.request_tick()             # booked from the next refresh on: ask for it now
        if name == "groups":
            self.render_groups()
        self.refresh_bindings()

    def action_cycle_groups(self) -> None:
        """v: the flows by remote host, then by port, then by process, then the flows again."""
        if self.view != "groups":
            self.group_kind = GROUP_KINDS[0]
        elif self.group_kind == GROUP_KINDS[-1]:
            self.action_show_view("flows")
            return
        else:
            self.group_kind = GROUP_KINDS[GROUP_KINDS.index(self.group_kind) + 1]
        self.action_show_view("groups")

    def render_groups(self) -> None:
        """The groups of the chosen kind as the tick worker last booked them."""
        self.query_one(GroupsView).show(self.group_kind, self.groups.rows(self.group_kind), self.groups.age())

    def action_toggle_detail(self) -> None:
        """enter: show or hide the detail pane (on a short terminal it starts hidden)."""
        short = self.screen.has_class("-short")
        self.query_one(DetailPane).toggle_class("opened" if short else "closed")

    # Textual's own action_back (a coroutine) is not used: escape steps back through lwtui's views.
    def action_back(self) -> None:  # type: ignore[override]
        bar = self.query_one(FilterBar)
        if bar.display:
            bar.close()
            self.flow_table.focus()
        elif self.view != "flows":
            self.action_view("flows")
        else:
            self.query_one(DetailPane).remove_class("opened").add_class("closed")

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _palette_new_rule(self) -> None:
        self.action_show_view("rules")
        self.action_new_rule()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        """Flow keys only act (and show in the footer) in the flow view, rule keys in the rules view."""
        if action in FLOW_ACTIONS and self.view != "flows":
            return False
        if action in RULES_ACTIONS and self.view != "rules":
            return False
        return True

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for _, action, label, text, _ in KEYS:
            if action == "new_rule":    # from any view: to the rules view, then the rule dialog
                yield SystemCommand(label.capitalize(), text, self._palette_new_rule)
            elif action not in (*TABLE_ACTIONS, "command_palette", "quit", "back", "interrupt"):
                yield SystemCommand(label.capitalize(), text, lambda a=action: self.run_action(a))
        yield from self.keep_commands()

    def notify(self, message: str, *, markup: bool = False, **kw) -> None:
        """Notifications carry rule text ([IPv6]:port): never read it as markup. The last 50
        are kept in `notes` as (severity, title, message) for tests."""
        self.notes = (self.notes + [(kw.get("severity", "information"), kw.get("title", ""), message)])[-50:]
        super().notify(message, markup=markup, **kw)


def run_dashboard(session: SessionLike, interval: float | None = None, list_routes: Callable[[], list] | None = None,
                  **options) -> int:
    """Run the dashboard until q; returns the exit code. The caller starts and closes the session.

    Theme, sort and interval are remembered (interval None: the remembered one, else 1 s).

    `list_routes` (optional) lets the empty state name other routes worth
    watching. Options: fade_after, expire_after, max_rows (see DashboardApp).
    An exception that ended the app is raised here, after the terminal is restored.
    """
    app = DashboardApp(session, interval, list_routes, remember=True, **options)
    size_from_terminal()
    try:
        with exit_on_signals(app):
            app.run()
    finally:
        app.stop_feed()
    if app.failure is not None:
        raise app.failure
    return app.return_code or 0
