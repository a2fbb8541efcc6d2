"""What the keys do to the session: block, allow, TTL, dry-run, filter, sort, pause.

A mixin for the App, so app.py stays composition and routing. Session calls
are quick map writes, made directly; the errors they raise by contract
(SESSION_ERRORS) go to the event log and a notification (App.report). After a change the app asks for a tick at once,
so the row shows the new verdict without waiting out the interval.
"""

from __future__ import annotations

from lwtui.core.filters import parse_filter
from lwtui.core.rules import RuleError, rule_for
from lwtui.core.units import fmt_duration
from lwtui.ui.dialogs import ConfirmScreen, FilterBar, TtlScreen
from lwtui.ui.selection import SORTS

KIND_WORDS = {"flow": "flow", "host": "remote host", "port": "service port"}

# What session calls raise by contract: the session's own errors (SessionError,
# VerdictError: RuntimeError), the kernel's (bpf(2) and netlink: OSError) and
# bad rules (RuleError: ValueError). They are reported (event log and
# notification); anything else is a bug: it ends the app and run_dashboard
# raises it once the terminal is back.
SESSION_ERRORS = (RuntimeError, OSError, ValueError)


class ActionsMixin:
    """Key actions; needs the App's session, header, flow table and render_flows()."""

    def _selected_or_warn(self):
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
        if not ssh:
            self._block(flow, kind, ttl)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._block(flow, kind, ttl)
            else:
                self.notify(f"{wanted.text} would cut your own SSH connection ({ssh})", title="not blocked",
                            severity="warning")
        self.push_screen(ConfirmScreen(
            f"Block {wanted.text}?",
            f"It matches the SSH connection you are using:\n  {ssh}\nBlocking it can cut you off from this "
            "machine, dashboard included.", yes="block it anyway", no="do not block"), answer)

    def _block(self, flow, kind: str, ttl: float | None) -> None:
        """Make the rule in the session, then say so (or why not)."""
        try:
            rule = self.session.block_flow(flow, kind, ttl)
        except (RuleError, ValueError) as e:
            self.notify(str(e), title=f"cannot block {KIND_WORDS.get(kind, kind)}", severity="warning")
            return
        except SESSION_ERRORS as e:
            self.report("block failed", e)
            return
        self.next_ttl = None
        self.header.show(next_ttl=None)
        text = f"blocked {rule.text}" + (f" for {fmt_duration(ttl)}" if ttl else "")
        if self.session.dry_run:
            text += " (dry-run: counted as would-drop, nothing is dropped)"
        self.notify(text + " — a undoes it")
        self.after_session_change()

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
        """ctrl+c: quit as q does (the routes are restored), with an interrupt's exit code, 130."""
        self.exit(return_code=130)

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
        """s: next sort column."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.flow_table.set_sort_column(SORTS[self.sort_index].column)
        self.render_flows()

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
