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
- An exception in one of the app's handlers (`on_*`, `action_*`): kept in
  `failure`, raised by run_dashboard once the terminal is back, so the CLI
  prints lwtui's own errors as one line after the routes are restored (a real
  bug still gets its traceback). `keep_failures` wraps those handlers; they
  end the app through the public App.exit and App.panic, so Textual never sees
  the exception and prints nothing itself. An exception anywhere else (a
  widget's own handler) takes Textual's default: a traceback and exit code 1,
  and the caller restores the routes all the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import signal
import sys
import threading
from typing import Any, Callable, Iterator, TypeVar

from lwtui.ui.appbase import AppMixin
from lwtui.ui.terminal import HANGUP_CHECK_SECONDS, terminal_alive

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# After asking the app to exit on a signal, how long its shutdown may take
# before the signal is delivered again, this time as the exception: a
# shutdown stuck on a terminal that went away must not keep the routes.
EXIT_GRACE_SECONDS = 3.0

C = TypeVar("C", bound=type)


class ExitsMixin(AppMixin):
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

    def fail(self, error: Exception) -> None:
        """End the app with code 1, keeping the first error for run_dashboard."""
        if self.failure is None:
            self.failure = error
        self.exit(return_code=1)
        self.panic()            # nothing to print: end the message loop now, as Textual does on an error


def _kept(handler: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def run_async(self, *args: Any, **kw: Any) -> Any:
            try:
                return await handler(self, *args, **kw)
            except Exception as error:  # noqa: BLE001 - kept, and raised again by run_dashboard
                self.fail(error)
                return None
        run_async.keeps_failures = True  # type: ignore[attr-defined]
        return run_async

    @functools.wraps(handler)
    def run(self, *args: Any, **kw: Any) -> Any:
        try:
            return handler(self, *args, **kw)
        except Exception as error:  # noqa: BLE001 - kept, and raised again by run_dashboard
            self.fail(error)
            return None
    run.keeps_failures = True  # type: ignore[attr-defined]
    return run


def keep_failures(cls: C) -> C:
    """Class decorator for the App: every `on_*` and `action_*` method (plain or async)
    defined by lwtui in `cls` or its bases is wrapped, where it is defined (so Textual, which
    calls each class's handler along the MRO, still calls each once), to end the
    app through `fail` instead of letting the exception reach Textual."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith("lwtui."):
            continue
        for name, fn in list(vars(klass).items()):
            if (name.startswith(("on_", "action_")) and inspect.isfunction(fn)
                    and not getattr(fn, "keeps_failures", False)):
                setattr(klass, name, _kept(fn))
    return cls


@contextlib.contextmanager
def exit_on_signals(app: ExitsMixin) -> Iterator[None]:
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
        old = previous[signal.Signals(signum)]
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
