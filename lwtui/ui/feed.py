"""The two thread workers that feed the dashboard from a session.

- ticks: session.snapshot() once per interval (booked into the flow groups,
  lwtui.core.groups, on the way, while the groups view is open), one SnapshotReady message per tick. If the UI has not handled the previous one yet, the new snapshot
  replaces it in a one-slot mailbox (its events are carried over), so a slow
  terminal never builds a queue of stale snapshots.
- events: session.poll_events(100) in a loop (the perf buffer reader); the
  events come out with the next snapshot.

Both loops stop on worker cancellation or on stop(); errors in a tick are
posted as TickFailed and the loop keeps going (a session can recover); any
other error ends the worker and reaches the app's Worker.StateChanged handler.
While the ticks run, the GIL changes hands every SWITCH_INTERVAL at most.
"""

from __future__ import annotations

import sys
import threading
import time

from textual import work
from textual.message import Message
from textual.worker import get_current_worker

from lwtui.core.groups import Groups
from lwtui.core.model import Snapshot
from lwtui.session.protocol import SessionLike
from lwtui.ui.appbase import AppMixin

MAX_CARRIED_EVENTS = 5000
# While the tick loop runs, a thread keeps the GIL at most this long (seconds) while another
# waits for it (Python's default: 5 ms). A tick's Python steps (decoding flows, looking up
# processes) hold it in such slices, and a key waits for the end of one at each hand-over
# between threads (input, event loop, output).
SWITCH_INTERVAL = 0.001


class SnapshotReady(Message):
    """A new snapshot is in the mailbox; `snapshot` is the one that was current when posted."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class TickFailed(Message):
    """session.snapshot() raised; the text says why."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class Mailbox:
    """One slot between the tick worker and the UI thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: Snapshot | None = None
        self._posted = False

    def put(self, snap: Snapshot) -> bool:
        """Store the newest snapshot; True when the caller should post a message."""
        with self._lock:
            if self._pending is not None:
                snap.events = (self._pending.events + snap.events)[-MAX_CARRIED_EVENTS:]
            self._pending = snap
            if self._posted:
                return False
            self._posted = True
            return True

    def take(self) -> Snapshot | None:
        """The newest snapshot (UI thread), and room for the next message."""
        with self._lock:
            snap, self._pending, self._posted = self._pending, None, False
            return snap


class FeedMixin(AppMixin):
    """Worker methods for the App: needs `session`, `interval` and `autotick` attributes."""

    # What the workers use of DashboardApp (it sets them):
    session: SessionLike
    interval: float                 # seconds between ticks
    autotick: bool                  # False: a tick only on request_tick()

    def init_feed(self) -> None:
        self.mailbox = Mailbox()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._stopped = {"ticks": threading.Event(), "events": threading.Event()}
        self.tick_seconds: list[float] = []   # how long each snapshot() took (the last 100)
        self.groups = Groups()                # flows by host, port, process: booked here, off the UI thread

    def start_feed(self) -> None:
        self.tick_loop()
        self.event_loop()

    def request_tick(self) -> None:
        """Take the next snapshot now instead of at the end of the interval."""
        self._wake.set()

    def stop_feed(self, timeout: float = 2.0) -> bool:
        """Ask both loops to end and wait for them; True when both did."""
        self._stop.set()
        self._wake.set()
        return all(e.wait(timeout) for e in self._stopped.values())

    @work(thread=True, exclusive=True, exit_on_error=False, group="feed", name="ticks")
    def tick_loop(self) -> None:
        worker = get_current_worker()
        previous = sys.getswitchinterval()
        sys.setswitchinterval(min(previous, SWITCH_INTERVAL))
        try:
            while not worker.is_cancelled and not self._stop.is_set():
                started = time.monotonic()
                self._wake.clear()   # before the tick: a request made during it is kept
                self._one_tick()
                self.tick_seconds = (self.tick_seconds + [time.monotonic() - started])[-100:]
                # Without autotick (tests, scripts) a tick happens only when asked.
                self._sleep(worker, started + self.interval if self.autotick else None)
        finally:
            sys.setswitchinterval(previous)
            self._stopped["ticks"].set()

    def _sleep(self, worker, until: float | None) -> None:
        """Wait for the deadline or request_tick(); notice cancellation within 0.25 s."""
        while not worker.is_cancelled and not self._stop.is_set():
            left = 0.25 if until is None else min(0.25, until - time.monotonic())
            if left <= 0 or self._wake.wait(left):
                return

    def _one_tick(self) -> None:
        try:
            snap = self.session.snapshot()
        except Exception as e:  # keep ticking: the next one may work, and the UI says why
            self.post_message(TickFailed(f"{type(e).__name__}: {e}"))
            return
        if self.groups.wanted is not None:  # the groups view is open: book this refresh (per flow,
            self.groups.update(snap.time, snap.flows, snap.owners)     # in Python: only while shown)
        else:
            self.groups.clear()             # the averages start again when the view opens
        if self.mailbox.put(snap):
            self.post_message(SnapshotReady(snap))

    @work(thread=True, exclusive=True, exit_on_error=False, group="events", name="events")
    def event_loop(self) -> None:
        worker = get_current_worker()
        try:
            while not worker.is_cancelled and not self._stop.is_set():
                self.session.poll_events(100)
        finally:
            self._stopped["events"].set()
