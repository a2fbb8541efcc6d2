"""What the keys do to the session: block, allow, TTL, dry-run, filter, sort, pause.

A mixin for the App, so app.py stays composition and routing. Session calls
are quick map writes, made directly; the errors they raise by contract
(SESSION_ERRORS) go to the event log and a notification (App.report). After a change the app asks for a tick at once,
so the row shows the new verdict without waiting out the interval.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Callable

from textual.widgets import Input

from lwtui.core.filters import Filter, parse_filter
from lwtui.core.flowcols import FlowView, rule_mask
from lwtui.core.grammar import parse_rule
from lwtui.core.model import FlowId, Snapshot
from lwtui.core.rules import Rule, RuleError, rule_for
from lwtui.core.units import fmt_duration
from lwtui.session.protocol import SessionLike
from lwtui.ui.appbase import AppMixin
from lwtui.ui.dialogs import BlockFilterScreen, ConfirmScreen, FilterBar, QuitScreen, RuleScreen, TtlScreen
from lwtui.ui.selection import SORTS

if TYPE_CHECKING:
    from lwtui.ui.flowtable import FlowTable
    from lwtui.ui.header import HeaderStrip

KIND_WORDS = {"flow": "flow", "host": "remote host", "port": "service port"}

# What session calls raise by contract: the session's own errors (SessionError,
# VerdictError: RuntimeError), the kernel's (bpf(2) and netlink: OSError) and
# bad rules (RuleError: ValueError). They are reported (event log and
# notification); anything else is a bug: it ends the app and run_dashboard
# raises it once the terminal is back.
SESSION_ERRORS = (RuntimeError, OSError, ValueError)


class ActionsMixin(AppMixin):
    """Key actions; needs the App's session, header, flow table and render_flows()."""

    # What the actions use of DashboardApp (it sets and defines them):
    session: SessionLike
    snapshot: Snapshot | None       # the latest snapshot
    shown: Snapshot | None          # the one the flow table shows
    paused: bool
    next_ttl: float | None
    filter: Filter | None
    filter_text: str
    sort_index: int
    sort_reverse: bool
    view: str                       # "flows", "rules" or "events"
    save_settings: Callable[[], None]   # RememberMixin's
    report: Callable[..., None]         # DashboardApp.report(title, error, severity="error")

    if TYPE_CHECKING:
        @property
        @abstractmethod
        def header(self) -> HeaderStrip: ...

        @property
        @abstractmethod
        def flow_table(self) -> FlowTable: ...

        @property
        @abstractmethod
        def selected_flow(self) -> FlowId | None: ...

        @abstractmethod
        def render_flows(self) -> None: ...

        @abstractmethod
        def after_session_change(self) -> None: ...

    def _selected_or_warn(self) -> FlowId | None:
        flow = self.selected_flow
        if flow is None:
            self.notify("No flow selected: move the cursor onto a flow first.", severity="warning")
        return flow

    def action_block(self, kind: str) -> None:
        """d / h / p: block the selected flow, its remote host, or its service port.

        A rule that would cut the user's own SSH connection (SSH_CONNECTION)
        is only made after a `y` in a question whose default is no.
        """
        flow = self._selected_or_warn()
        if flow is None:
            return
        try:
            wanted = rule_for(flow, kind)
            ssh = self.session.would_cut_ssh(wanted)
        except (RuleError, ValueError) as e:
            self.notify(str(e), title=f"cannot block {KIND_WORDS.get(kind, kind)}", severity="warning")
            return
        ttl = self.next_ttl
        self.block_unless_ssh(wanted, ssh, lambda: self._make_rule(
            lambda: self.session.block_flow(flow, kind, ttl), KIND_WORDS.get(kind, kind), ttl))

    def block_unless_ssh(self, wanted, ssh: str | None, block) -> None:
        """Call block() now, or, when `wanted` matches the user's SSH connection (`ssh`), only
        after a `y` to a question whose default is no."""
        if not ssh:
            block()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                block()
            else:
                self.notify(f"{wanted.text} would cut your own SSH connection ({ssh})", title="not blocked",
                            severity="warning")
        self.push_screen(ConfirmScreen(
            f"Block {wanted.text}?",
            f"It matches the SSH connection you are using:\n  {ssh}\nBlocking it can cut you off from this "
            "machine, dashboard included.", yes="block it anyway", no="do not block"), answer)

    def _make_rule(self, make: Callable[[], Rule], what: str, ttl: float | None) -> None:
        """Make the rule in the session (make() returns it), then say so (or why not)."""
        try:
            rule = make()
        except (RuleError, ValueError) as e:
            self.notify(str(e), title=f"cannot block {what}", severity="warning")
            return
        except SESSION_ERRORS as e:
            self.report("block failed", e)
            return
        self.next_ttl = None
        self.header.show(next_ttl=None)
        text = f"blocked {rule.text}" + (f" for {fmt_duration(ttl)}" if ttl else "")
        if self.session.dry_run:
            text += " (dry-run: counted as would-drop, nothing is dropped)"
        self.notify(text + (" — a undoes it" if self.view == "flows" else " — x removes it"))
        self.after_session_change()

    def action_block_filter(self) -> None:
        """b: block exactly what the filter shows, after a question naming the rule and
        how many flows of the table it matches now. The filter must be a rule the kernel
        can enforce (no hook, verdict or bare words): else why not, with a caret."""
        if not self.filter_text:
            self.notify("No filter: narrow the table with / first; b then blocks what it shows.",
                        severity="warning")
            return
        try:
            rule = parse_rule(self.filter_text)
            ssh = self.session.would_cut_ssh(rule)
        except (RuleError, ValueError) as e:
            text = e.pretty(indent="") if isinstance(e, RuleError) else str(e)
            self.notify(text, title="this filter cannot be a rule", severity="warning")
            return
        flows = self.shown.flows if self.shown is not None else []
        if isinstance(flows, FlowView):
            matching = int(rule_mask(flows.keys, rule).sum())
        else:
            matching = sum(1 for r in flows if rule.matches(r.id))
        ttl = self.next_ttl

        def answer(yes: bool | None) -> None:
            if yes:
                self.block_unless_ssh(rule, ssh, lambda: self._make_rule(lambda: self.session.block(rule, ttl),
                                                                         rule.text, ttl))
        self.push_screen(BlockFilterScreen(rule, matching, len(flows)), answer)

    def action_new_rule(self) -> None:
        """n in the rules view: type a rule (the `lwtui block` grammar), e.g. for a host not seen yet."""
        def done(rule) -> None:
            if rule is None:
                return
            ttl = self.next_ttl
            try:
                ssh = self.session.would_cut_ssh(rule)
            except (RuleError, ValueError) as e:
                self.notify(str(e), title="cannot block", severity="warning")
                return
            self.block_unless_ssh(rule, ssh, lambda: self._make_rule(lambda: self.session.block(rule, ttl),
                                                                     rule.text, ttl))
        self.push_screen(RuleScreen(self.next_ttl), done)

    def action_allow(self) -> None:
        """a: lift whichever rules block the selected flow (the undo of d/h/p)."""
        flow = self._selected_or_warn()
        if flow is None:
            return
        try:
            lifted = self.session.allow_flow(flow)
        except SESSION_ERRORS as e:
            self.report("allow failed", e)
            return
        if lifted:
            self.notify("allowed again: lifted " + ", ".join(r.text for r in lifted))
        else:
            self.notify("No rule blocks this flow.", severity="warning")
        self.after_session_change()

    def action_interrupt(self) -> None:
        """ctrl+c: with text selected (dragged with the mouse), copy it, as a terminal would;
        otherwise quit at once (no question: it is an interrupt), exit code 130."""
        field = self.focused
        text = getattr(field, "selected_text", "") or self.screen.get_selected_text()
        if text:
            self.copy_to_clipboard(text)
            if isinstance(field, Input) and field.selected_text:
                field.cursor_position = field.cursor_position      # collapses the input's selection
            else:
                self.screen.clear_selection()
            lines = text.count("\n") + 1
            self.notify(f"copied {len(text)} characters" + (f" ({lines} lines)" if lines > 1 else "")
                        + " to the clipboard", title="copied")
            return
        self.exit(return_code=130)

    async def action_quit(self) -> None:
        """q: quit; when that lifts active rules, ask first (y or Enter quits, n or Esc stays)."""
        rules = self._rules_lifted_on_quit()
        if not rules:
            self.exit(return_code=0)
            return
        self.push_screen(QuitScreen(rules), lambda yes: self.exit(return_code=0) if yes else None)

    def _rules_lifted_on_quit(self) -> int:
        """How many rules end with the session (none when it keeps its blocks)."""
        if self.session.keep_blocks:
            return 0
        try:
            return len(self.session.rules())
        except SESSION_ERRORS as e:     # the session cannot say: said, and the last snapshot's count asked about
            self.report("cannot count the rules quitting lifts (the last refresh's count is used)", e,
                        severity="warning")
            return len(self.snapshot.rules) if self.snapshot is not None else 0

    def action_ttl(self) -> None:
        """t: ask for the TTL of the next block."""
        def done(seconds: float | None) -> None:
            self.next_ttl = seconds
            self.header.show(next_ttl=seconds)
            if seconds:
                self.notify(f"next block lifts itself after {fmt_duration(seconds)}")
        self.push_screen(TtlScreen(self.next_ttl), done)

    def action_toggle_dry_run(self) -> None:
        """D: switch between dropping and counting would-drops."""
        try:
            self.session.set_dry_run(not self.session.dry_run)
        except SESSION_ERRORS as e:
            self.report("dry-run not changed", e)
            return
        on = self.session.dry_run
        self.header.show(dry_run=on)
        self.notify("DRY-RUN: rules count would-drops, nothing is dropped" if on
                    else "MONITOR: rules drop packets again", severity="warning" if on else "information")
        self.after_session_change()

    def action_cycle_sort(self) -> None:
        """s: next sort column (in its usual direction)."""
        self.sort_by((self.sort_index + 1) % len(SORTS), reverse=False)

    def sort_by(self, index: int, reverse: bool) -> None:
        """Sort by SORTS[index] (reverse: the other way round), redraw, remember."""
        self.sort_index, self.sort_reverse = index, reverse
        self.flow_table.set_sort_column(SORTS[self.sort_index].column, reverse)
        self.render_flows()
        self.save_settings()

    def sort_by_column(self, column: str) -> None:
        """A click on a column header: sort by it; on the sorted column, reverse the order.
        Columns without an order (verdict, endpoints, trend, flags) say so."""
        index = next((i for i, s in enumerate(SORTS) if s.column == column), None)
        if index is None:
            self.notify(f"the {column} column has no sort order; sortable: "
                        + ", ".join(s.name for s in SORTS), timeout=4)
            return
        self.sort_by(index, not self.sort_reverse if index == self.sort_index else False)

    def action_pause(self) -> None:
        """space: freeze the table (snapshots keep coming; the kernel keeps counting)."""
        self.paused = not self.paused
        self.header.show(paused=self.paused)
        if not self.paused:
            self.shown = self.snapshot
            self.render_flows()

    def action_filter(self) -> None:
        """/: open the filter bar with the current filter."""
        self.query_one(FilterBar).open(self.filter_text)

    def apply_filter(self, text: str) -> bool:
        """Parse and apply a filter; False (and a notification) when it does not parse."""
        text = text.strip()
        if not text:
            self.filter, self.filter_text = None, ""
        else:
            try:
                self.filter = parse_filter(text)
            except RuleError as e:
                self.notify(e.pretty(text), title="filter not applied", severity="error", timeout=8)
                self.query_one(FilterBar).show_error(e.pretty(text, indent=""))
                return False
            self.filter_text = text
        self.render_flows()
        return True
