"""How the dashboard ends other than by a key: signals, a terminal that hangs up, a bug.

Whatever ends it, the app exits through Textual's own shutdown (so the
terminal is restored), then run_dashboard returns the exit code or raises
the error, and the caller restores the routes.

- Signals: lwtui.session.signals turns SIGINT, SIGTERM and SIGHUP into exceptions
  that unwind through every `finally`. Raised in the middle of Textual's
  event loop, such an exception leaves Textual's tasks half run: the routes
  still come back, but the terminal can stay in application mode and the
  interpreter prints pages of "Task was destroyed but it is pending!". While
  the app runs, `exit_on_signals` asks it to exit instead (code 128 + N),
  through the loop's thread-safe queue. A second signal, or one before the
  app runs or after its loop closed, goes to the handler that was there
  before (the exception). As in lwtui.session.signals, a fork()ed child (pyroute2's
  namespace helper) that gets a signal exits at once. If the app has not
  exited EXIT_GRACE_SECONDS after the signal, the signal comes again and
  takes the exception path, so a stuck shutdown cannot keep the routes.
- A hung-up terminal with no SIGHUP: checked every HANGUP_CHECK_SECONDS.
- An exception in a handler: kept in `failure`, raised by run_dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

from lwtui.ui.terminal import HANGUP_CHECK_SECONDS, terminal_alive

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# After asking the app to exit on a signal, how long its shutdown may take
# before the signal is delivered again, this time as the exception: a
# shutdown stuck on a terminal that went away must not keep the routes.
EXIT_GRACE_SECONDS = 3.0


class ExitsMixin:
    """For the App: exits on a hung-up terminal, and exceptions kept for run_dashboard."""

    def init_exits(self) -> None:
        self.failure: Exception | None = None   # what ended the app; run_dashboard raises it
        self.running_loop: asyncio.AbstractEventLoop | None = None    # for exit_on_signals

    def watch_exits(self) -> None:
        """From on_mount: note the running loop; on a real terminal, check it is still there."""
        self.running_loop = asyncio.get_running_loop()
        fds = [f.fileno() for f in (sys.__stdin__, sys.__stdout__) if f is not None and os.isatty(f.fileno())]
        if not self.is_headless and fds:
            self.set_interval(HANGUP_CHECK_SECONDS, lambda: self._check_terminal(fds))

    def _check_terminal(self, fds: list[int]) -> None:
        """The terminal (of the keys or of the screen) hung up and no SIGHUP came (the shell that
        started lwtui ignores HUP and waits): quit as SIGHUP would. Textual's input thread spins on
        a hung-up terminal and never ends the app itself."""
        if not all(terminal_alive(fd) for fd in fds):
            self.exit(return_code=128 + signal.SIGHUP)

    def _handle_exception(self, error: Exception) -> None:
        """An exception in a handler ends the app (Textual's rule); keep it for run_dashboard.

        Textual would print a traceback with locals; run_dashboard raises the
        error instead once the terminal is back, so the CLI prints lwtui's own
        errors as one line (a real bug still gets its traceback) after the
        routes are restored. Under Pilot, Textual's handling re-raises it into
        the test.
        """
        if self.failure is None:
            self.failure = error
        if self.is_headless:
            super()._handle_exception(error)
            return
        self.exit(return_code=1)
        self.panic()            # nothing to print: end the message loop now, as Textual does


@contextlib.contextmanager
def exit_on_signals(app) -> Iterator[None]:
    """Within the block, the first of these signals makes `app` exit with code 128 + N.

    `app` needs `running_loop` (the running loop, or None) and `exit(return_code=)`.
    The previous handlers are back when the block ends.
    """
    owner = os.getpid()
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    asked: list[int] = []
    watchdogs: list[threading.Timer] = []

    def handle(signum: int, frame) -> None:
        if os.getpid() != owner:
            os._exit(128 + signum)
        loop = app.running_loop
        if not asked and loop is not None and not loop.is_closed():
            asked.append(signum)
            try:
                loop.call_soon_threadsafe(lambda: app.exit(return_code=128 + signum))
                again = threading.Timer(EXIT_GRACE_SECONDS, os.kill, (owner, signum))
                again.daemon = True
                watchdogs.append(again)
                again.start()
                return
            except RuntimeError:      # the loop closed meanwhile: nothing left to ask
                pass
        old = previous[signum]
        if callable(old):
            old(signum, frame)
        elif old == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    for s in SIGNALS:
        signal.signal(s, handle)
    try:
        yield
    finally:
        for w in watchdogs:
            w.cancel()
        for s, old in previous.items():
            signal.signal(s, old)
