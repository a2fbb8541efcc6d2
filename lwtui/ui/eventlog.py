"""The event log view: new flows, drops, blocks, allows, losses and errors, with timestamps.

Errors (a watched route went away) stand out in red; the app also shows each
as a notification and counts them on the Events tab. The view narrows the log
by kind (c) and by level (l: info and up, warnings and up, errors only),
searches it (/), and follows the newest line until the user scrolls up or
presses f; End or G follows again.
"""

from __future__ import annotations

import collections

from rich.text import Text
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, RichLog, Static

from lwtui.core.eventlog import LEVELS, level_of
from lwtui.core.model import EventEntry
from lwtui.ui.cells import clock_text

KIND_STYLES = {"new": ("NEW", "green"), "drop": ("DROP", "bold red"), "block": ("BLOCK", "red"),
               "allow": ("ALLOW", "cyan"), "lost": ("LOST", "bold white on red"), "info": ("INFO", "blue"),
               "error": ("ERROR", "bold white on red"), "warn": ("WARN", "bold yellow")}
KINDS = [None, *KIND_STYLES]          # None: every kind
MAX_LINES = 5000
MAX_PER_TICK = 300   # a flood of new flows must not stall the UI thread
INTRO = "Events: new flows, drops, blocks, allows, losses and errors, newest at the bottom."


def event_line(e: EventEntry) -> Text:
    label, style = KIND_STYLES.get(e.kind, (e.kind.upper(), ""))
    return Text.assemble((clock_text(e.time), "dim"), "  ", (f"{label:<6}", style), " ",
                         (e.text, "bold red" if e.kind == "error" else ""))


class EventFilter:
    """Which entries the log shows: one kind or all, a lowest level, a search text (any case)."""

    def __init__(self) -> None:
        self.kind: str | None = None
        self.level = LEVELS[0]
        self.search = ""

    @property
    def active(self) -> bool:
        return self.kind is not None or self.level != LEVELS[0] or bool(self.search)

    def matches(self, e: EventEntry) -> bool:
        if self.kind is not None and e.kind != self.kind:
            return False
        if LEVELS.index(level_of(e.kind)) < LEVELS.index(self.level):
            return False
        return not self.search or self.search.lower() in f"{e.kind} {e.text}".lower()


class EventLog(RichLog):
    """Appends each tick's events that pass the filter; keeps the last MAX_LINES entries (for
    rewriting when the filter changes, and for export)."""

    BINDINGS = [
        Binding("f", "toggle_follow", "follow"),
        Binding("end,G", "follow", "newest", show=False),
    ]

    def __init__(self, **kw):
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, auto_scroll=True, **kw)
        self.entries: collections.deque[EventEntry] = collections.deque(maxlen=MAX_LINES)
        self.filter = EventFilter()
        self.shown = 0                  # entries written since the last rewrite

    def on_mount(self) -> None:
        self.write(Text(INTRO, style="dim"))

    @property
    def follow(self) -> bool:
        return self.auto_scroll

    def set_follow(self, on: bool) -> None:
        """Follow the newest line (scroll to the end on each write), or stay where the user is."""
        self.auto_scroll = on
        if on:
            self.scroll_end(animate=False, immediate=True)
        self.post_message(EventsView.Changed())

    # While following, the newest line stays in sight when the layout changes under it: the
    # log shown again (lines written while hidden were scrolled to with another size), or a
    # long line bringing the horizontal scrollbar, which takes the bottom row.
    def on_show(self) -> None:
        self._keep_at_end()

    def watch_show_horizontal_scrollbar(self, shown: bool) -> None:
        self._keep_at_end()

    def _keep_at_end(self) -> None:
        if self.follow:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)

    def action_toggle_follow(self) -> None:
        self.set_follow(not self.follow)

    def action_follow(self) -> None:
        self.set_follow(True)

    # Scrolling back stops following: a new line must not pull the user away from what they read.
    def action_scroll_up(self) -> None:
        self.set_follow(False)
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.set_follow(False)
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.set_follow(False)
        super().action_scroll_home()

    def on_mouse_scroll_up(self, event) -> None:
        if self.follow:
            self.set_follow(False)

    def add(self, events: list[EventEntry]) -> None:
        """Keep events; write those that pass the filter (past MAX_PER_TICK, the newest, and a
        line saying how many were folded)."""
        if not events:
            return
        self.entries.extend(events)
        self._write([e for e in events if self.filter.matches(e)] if self.filter.active else events)

    def rewrite(self) -> None:
        """The filter changed: write the kept entries again, those that pass it."""
        self.clear()
        self.shown = 0
        self.write(Text(INTRO if not self.filter.active else "Events that pass the filter above:", style="dim"))
        self._write([e for e in self.entries if self.filter.matches(e)], fold=False)
        if self.follow:
            self.scroll_end(animate=False, immediate=True)

    def _write(self, events: list[EventEntry], fold: bool = True) -> None:
        skipped = max(0, len(events) - MAX_PER_TICK) if fold else 0
        if skipped:
            kinds = collections.Counter(e.kind for e in events[:skipped])
            summary = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
            self.write(Text(f"{clock_text(events[skipped].time)}  …       {skipped} more events this tick "
                            f"({summary})", style="dim"))
        for e in events[skipped:]:
            self.write(event_line(e))
        self.shown += len(events)


class EventsView(Vertical):
    """The event log under a line that says what it shows, with a search line for `/`."""

    BINDINGS = [
        Binding("c", "cycle_kind", "kind"),
        Binding("l", "cycle_level", "level"),
        Binding("slash", "search", "search"),
        Binding("escape", "close_search", "close search", show=False),
    ]

    class Changed(Message):
        """The log's filter or follow state changed: redraw the note."""

    def compose(self) -> ComposeResult:
        yield Static("", id="events-note")
        yield Input(placeholder="search the log (any case); Enter applies, empty clears, Esc closes",
                    id="events-search")
        yield EventLog(id="event-log")

    def on_mount(self) -> None:
        self.query_one("#events-search").display = False
        self.show_note()

    @property
    def log_widget(self) -> EventLog:
        return self.query_one(EventLog)

    def show_note(self) -> None:
        log = self.log_widget
        f = log.filter
        note = Text(" ")
        note.append(f"kind {f.kind or 'all'}", style="bold" if f.kind else "").append(" (c) · ", style="dim")
        note.append(f"level {f.level}{'+' if f.level != LEVELS[-1] else ''}",
                    style="bold" if f.level != LEVELS[0] else "").append(" (l) · ", style="dim")
        note.append(f"search {f.search!r}" if f.search else "search (/)", style="bold" if f.search else "dim")
        note.append(" · ", style="dim")
        if log.follow:
            note.append("following the newest", style="bold green").append(" (f stops)", style="dim")
        else:
            note.append("not following", style="bold yellow").append(" (f or End follows)", style="dim")
        if f.active:
            note.append(f" · {log.shown} of {len(log.entries)} shown", style="dim")
        self.query_one("#events-note", Static).update(note)

    def on_events_view_changed(self, message: "EventsView.Changed") -> None:
        message.stop()
        self.show_note()

    def _refilter(self) -> None:
        self.log_widget.rewrite()
        self.show_note()

    def action_cycle_kind(self) -> None:
        f = self.log_widget.filter
        f.kind = KINDS[(KINDS.index(f.kind) + 1) % len(KINDS)]
        self._refilter()

    def action_cycle_level(self) -> None:
        f = self.log_widget.filter
        f.level = LEVELS[(LEVELS.index(f.level) + 1) % len(LEVELS)]
        self._refilter()

    def action_search(self) -> None:
        field = self.query_one("#events-search", Input)
        field.display = True
        field.value = self.log_widget.filter.search
        field.focus()

    def action_close_search(self) -> None:
        field = self.query_one("#events-search", Input)
        if not field.display:
            raise SkipAction()          # not searching: Esc goes back to the flows, as elsewhere
        field.display = False
        self.log_widget.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "events-search":
            return
        event.stop()
        self.log_widget.filter.search = event.value.strip()
        event.input.display = False
        self.log_widget.focus()
        self._refilter()

    def add(self, events: list[EventEntry]) -> None:
        self.log_widget.add(events)
        if self.log_widget.filter.active:
            self.show_note()
