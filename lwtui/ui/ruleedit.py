"""What the rules view's keys do to a rule: a new TTL (t), its own dry-run (D).

A mixin for the App, as actions.py is for the flow keys: the rules table posts
a message naming the selected rule, the App asks the session, and says what
happened (or why not) in a notification.
"""

from __future__ import annotations

from typing import Callable

from lwtui.core.units import fmt_duration
from lwtui.session.protocol import SessionLike
from lwtui.ui.actions import SESSION_ERRORS
from lwtui.ui.appbase import AppMixin
from lwtui.ui.dialogs import TtlScreen
from lwtui.ui.rulesview import RulesTable


class RuleEditMixin(AppMixin):
    """Handlers of RulesTable.EditTtl and RulesTable.ToggleDryRun; needs the App's session."""

    session: SessionLike
    report: Callable[..., None]                 # DashboardApp.report(title, error, severity="error")
    after_session_change: Callable[[], None]

    def on_rules_table_edit_ttl(self, message: RulesTable.EditTtl) -> None:
        """t in the rules view: the TTL dialog for the selected rule, filled with what it has left."""
        entry = message.entry
        left = None if entry.expires_in is None else max(1.0, float(round(entry.expires_in)))
        screen = TtlScreen(left, rule=entry.text)

        def done(seconds: float | None) -> None:
            if screen.cancelled:
                return
            try:
                found = self.session.set_ttl(entry.text, seconds)
            except SESSION_ERRORS as e:
                self.report("TTL not changed", e)
                return
            if not found:
                self.notify(f"{entry.text} is gone already", severity="warning")
            elif seconds:
                self.notify(f"{entry.text} lifts itself in {fmt_duration(seconds)}")
            else:
                self.notify(f"{entry.text} has no TTL now: it stays until removed (x)")
            self.after_session_change()
        self.push_screen(screen, done)

    def on_rules_table_toggle_dry_run(self, message: RulesTable.ToggleDryRun) -> None:
        """D in the rules view: this rule alone counts would-drops, or drops again."""
        entry = message.entry
        on = not entry.dry_run
        try:
            found = self.session.set_rule_dry_run(entry.text, on)
        except SESSION_ERRORS as e:
            self.report("dry-run of the rule not changed", e, severity="warning")
            return
        if not found:
            self.notify(f"{entry.text} is gone already", severity="warning")
        elif on:
            self.notify(f"{entry.text}: dry-run, it counts would-drops and drops nothing (D again: it drops)",
                        severity="warning")
        else:
            self.notify(f"{entry.text} drops packets again")
        self.after_session_change()
