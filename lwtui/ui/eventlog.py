"""The event log view: new flows, drops, blocks, allows, losses and errors, with timestamps.

Errors (a watched route went away) stand out in red; the app also shows each
as a notification and counts them on the Events tab.
"""

from __future__ import annotations

import collections

from rich.text import Text
from textual.widgets import RichLog

from lwtui.core.model import EventEntry
from lwtui.ui.cells import clock_text

KIND_STYLES = {"new": ("NEW", "green"), "drop": ("DROP", "bold red"), "block": ("BLOCK", "red"),
               "allow": ("ALLOW", "cyan"), "lost": ("LOST", "bold white on red"), "info": ("INFO", "blue"),
               "error": ("ERROR", "bold white on red"), "warn": ("WARN", "bold yellow")}
MAX_LINES = 5000
MAX_PER_TICK = 300   # a flood of new flows must not stall the UI thread


def event_line(e: EventEntry) -> Text:
    label, style = KIND_STYLES.get(e.kind, (e.kind.upper(), ""))
    return Text.assemble((clock_text(e.time), "dim"), "  ", (f"{label:<6}", style), " ",
                         (e.text, "bold red" if e.kind == "error" else ""))


class EventLog(RichLog):
    """Appends each tick's events; keeps the last MAX_LINES (entries kept for tests and export)."""

    def __init__(self, **kw):
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, auto_scroll=True, **kw)
        self.entries: collections.deque[EventEntry] = collections.deque(maxlen=MAX_LINES)

    def on_mount(self) -> None:
        self.write(Text("Events: new flows, drops, blocks, allows, losses and errors, newest at the bottom.",
                        style="dim"))

    def add(self, events: list[EventEntry]) -> None:
        """Write events; past MAX_PER_TICK in one tick, write the newest and say how many were folded."""
        if not events:
            return
        self.entries.extend(events)
        skipped = max(0, len(events) - MAX_PER_TICK)
        if skipped:
            kinds = collections.Counter(e.kind for e in events[:skipped])
            summary = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
            self.write(Text(f"{clock_text(events[skipped].time)}  …       {skipped} more events this tick "
                            f"({summary})", style="dim"))
        for e in events[skipped:]:
            self.write(event_line(e))
