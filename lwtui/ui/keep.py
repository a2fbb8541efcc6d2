"""Keeping what is on screen: copy a flow, export the tables, save screenshots.

A mixin for the App. `y` copies the selected flow as a rule (what `lwtui
block` takes), `Y` its two endpoints; the palette exports the flow table (as
shown: filtered and sorted), the rules and the event log to CSV or JSON, and
saves screenshots, all in lwtui.core.export.export_dir(), the path in a
notification.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from textual.app import SystemCommand

from lwtui.core.export import FORMATS, export_dir, export_path, write_records
from lwtui.core.names import endpoint
from lwtui.core.records import event_record, flow_json, rule_json
from lwtui.core.model import FlowId, FlowRecord, Snapshot
from lwtui.core.rules import RuleError, rule_for
from lwtui.session.protocol import SessionLike
from lwtui.ui.actions import SESSION_ERRORS
from lwtui.ui.appbase import AppMixin

if TYPE_CHECKING:
    from lwtui.ui.eventlog import EventLog

EXPORTS = {"flows": "the flow table (as shown: filtered, sorted)", "rules": "the active rules",
           "events": "the event log"}


class KeepMixin(AppMixin):
    """Copy and export actions; needs the App's session, shown flows, rules and event log."""

    # What the actions use of DashboardApp (it sets and defines them):
    session: SessionLike
    snapshot: Snapshot | None
    report: Callable[..., None]         # DashboardApp.report(title, error, severity="error")

    if TYPE_CHECKING:
        @property
        @abstractmethod
        def event_log(self) -> EventLog: ...

        @property
        @abstractmethod
        def flow_ids(self) -> list[FlowId]: ...

        @abstractmethod
        def record(self, flow: FlowId) -> FlowRecord | None: ...

        @abstractmethod
        def _selected_or_warn(self) -> FlowId | None: ...

    def action_copy_flow(self) -> None:
        """y: the selected flow as a rule, ready for `lwtui block` or the rules view's `n`."""
        flow = self._selected_or_warn()
        if flow is None:
            return
        try:
            text = rule_for(flow, "flow").text
        except (RuleError, ValueError) as e:     # a fragment has no ports: no flow rule
            self.notify(str(e), title="nothing copied", severity="warning")
            return
        self.copy_to_clipboard(text)
        self.notify(f"copied the rule: {text}\n(Y copies the endpoints)", title="copied")

    def action_copy_endpoints(self) -> None:
        """Y: the selected flow's source and destination, ADDR:PORT ADDR:PORT."""
        flow = self._selected_or_warn()
        if flow is None:
            return
        ports = not (flow.is_icmp or flow.fragment)
        text = " ".join(endpoint(a, p if ports else None) for a, p in ((flow.src, flow.sport), (flow.dst, flow.dport)))
        self.copy_to_clipboard(text)
        self.notify(f"copied the endpoints: {text}", title="copied")

    def export_records(self, what: str) -> list[dict]:
        """What an export of `what` (flows, rules, events) writes."""
        if what == "flows":
            return [flow_json(r) for f in self.flow_ids if (r := self.record(f)) is not None]
        if what == "rules":
            try:
                rules = self.session.rules()
            except SESSION_ERRORS as e:     # the last snapshot's list is the next best: said so
                self.report("cannot read the rules: the export has the last refresh's", e, severity="warning")
                rules = self.snapshot.rules if self.snapshot is not None else []
            return [rule_json(r) for r in rules]
        return [event_record(e) for e in self.event_log.entries]

    def action_export(self, what: str, fmt: str) -> None:
        """Write flows, rules or events as CSV or JSON; the notification names the file."""
        path = export_path(export_dir(), what, fmt)
        try:
            count = write_records(path, self.export_records(what), fmt)
        except (OSError, ValueError) as e:
            self.notify(f"{path}: {e}", title="export failed", severity="error", timeout=10)
            return
        self.notify(f"{count} {what if count != 1 else what[:-1]} written to {path}", title="exported", timeout=10)

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """The palette's Screenshot: an SVG in a directory that exists, its path in the notification."""
        directory = Path(path) if path else export_dir()
        try:
            saved = self.save_screenshot(filename, str(directory), time_format)
        except OSError as e:
            self.notify(f"{directory}: {e}", title="screenshot not saved", severity="error", timeout=10)
            return None
        self.notify(f"saved to {saved}", title="Screenshot", timeout=10)
        return None

    def keep_commands(self) -> Iterable[SystemCommand]:
        """Palette entries: one export per kind and format."""
        for what, text in EXPORTS.items():
            for fmt in FORMATS:
                yield SystemCommand(f"Export {what} as {fmt.upper()}",
                                    f"write {text} to a {fmt.upper()} file (the path is shown)",
                                    lambda w=what, f=fmt: self.action_export(w, f))
