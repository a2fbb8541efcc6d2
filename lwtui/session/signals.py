"""Signals that end lwtui become exceptions that unwind through every `finally`.

SIGINT raises KeyboardInterrupt; SIGTERM and SIGHUP (the terminal went away)
raise Terminated, whose exit code is 128 + the signal number. Two traps:

- pyroute2 opens sockets in other namespaces from a fork()ed child of this
  process and SIGTERMs it afterwards. A Python handler inherited by that child
  would unwind the parent's stack copy in the child: closing the session there
  (restoring routes under the live session, emptying the perf buffer map the
  live reader uses). In any process but the one that installed the handlers, a
  signal ends the process at once.
- A signal in the middle of a restore would leave a route half restored.
  Inside `critical()` signals are held, and delivered when the block ends.
- A flood of signals (Ctrl-C held down, `kill` in a loop) would raise again
  while the first exception unwinds towards the restore, before the restore
  holds signals, and skip it (or raise after it, out of main). Once a signal
  has raised while a session was open (`guard()` .. `unguard()`), the process
  is on its way out: later signals are dropped.
- Python swallows an exception raised where it cannot propagate (it prints
  "Exception ignored in": a signal that lands in an at-fork hook, and
  pyroute2 forks): such a signal would be lost, and lwtui would run on. The
  unraisable hook delivers it again, to land where it can unwind. A signal
  that lands in the hook itself is dropped: raised there it would be lost
  (and mark the process as unwinding, so the redelivery too), and the
  hook's redelivery stands for it.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REDELIVER_AFTER = 0.05      # seconds before a swallowed signal is delivered again


class Terminated(SystemExit):
    """SIGTERM/SIGHUP: unwind through every finally so routes are restored."""
    code: int               # 128 + the signal number


_owner_pid: int | None = None
_depth = 0
_guarded = 0            # open sessions
_unwinding = False      # a signal raised while a session was open: the process is on its way out
_exiting = False        # main() has returned: nothing is left to unwind
_pending: list[int] = []
_lock = threading.RLock()   # reentrant: a handler can be interrupted by the next signal's handler


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP through this module (main thread only)."""
    global _owner_pid, _previous_hook
    _owner_pid = os.getpid()
    for s in SIGNALS:
        signal.signal(s, _handle)
    if sys.unraisablehook is not _unraisable:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _unraisable


_previous_hook = sys.unraisablehook


def _unraisable(u) -> None:
    """A signal's exception swallowed where it landed: deliver the signal again."""
    global _unwinding
    exc = u.exc_value
    if isinstance(exc, (KeyboardInterrupt, Terminated)) and os.getpid() == _owner_pid:
        with _lock:
            _unwinding = False
        signum = signal.SIGINT if isinstance(exc, KeyboardInterrupt) else int(str(exc.code)) - 128
        # From another thread, a moment later: the main thread is out of the hook by then
        # (if not, this hook runs again).
        t = threading.Timer(REDELIVER_AFTER, _thread.interrupt_main, args=(signum,))
        t.daemon = True
        t.start()
        return
    _previous_hook(u)


def _handle(signum: int, frame) -> None:
    if os.getpid() != _owner_pid:       # a fork()ed helper (pyroute2): never run our cleanup there
        os._exit(128 + signum)
    global _unwinding
    if _exiting:
        return
    with _lock:
        if _unwinding or _in_hook(frame):
            return
        if _depth > 0:
            _pending.append(signum)
            return
        _unwinding = _guarded > 0
    _raise(signum)


def _in_hook(frame) -> bool:
    """Whether the main thread is inside _unraisable: an exception raised there is lost for
    good (Python only prints it), and the hook is arranging the redelivery already."""
    while frame is not None:
        if frame.f_code is _unraisable.__code__:
            return True
        frame = frame.f_back
    return False


def _raise(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(128 + signum)


class critical:
    """Hold SIGINT/SIGTERM/SIGHUP while the block runs (a restore must not stop half-way).

    A signal that arrived meanwhile is delivered again when the outermost
    block ends without an exception (with one, the process is unwinding
    already).
    """

    def __enter__(self) -> "critical":
        global _depth
        with _lock:
            _depth += 1
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        global _depth
        with _lock:
            _depth -= 1
            signum = _pending[0] if (_depth == 0 and _pending and exc_type is None) else None
            if signum is not None:
                _pending.clear()
        if signum is not None:
            signal.raise_signal(signum)


def guard() -> None:
    """A session opens: from now on a signal that raises holds the ones after it (see unguard)."""
    global _guarded
    with _lock:
        _guarded += 1


def unguard() -> None:
    """A session has closed."""
    global _guarded
    with _lock:
        _guarded = max(0, _guarded - 1)


def exiting() -> None:
    """The command is done and every session closed: later signals are ignored, so a flood
    cannot turn the exit into a traceback, or a death by signal while the interpreter
    shuts down (it puts SIG_DFL back for handlers it installed, but leaves SIG_IGN)."""
    global _exiting
    _exiting = True
    if os.getpid() == _owner_pid and threading.current_thread() is threading.main_thread():
        _ignore_all()


def _ignore_all() -> None:
    """SIG_IGN for every signal of SIGNALS. A signal that Python's C-level handler took just
    before its handler became SIG_IGN is reported at the next check as OSError ("Signal N
    ignored due to race condition"); signal.signal() checks before it changes a handler, so
    the OSError comes from here: take it (the signal is dropped, as exiting() says) and go
    round again, until one whole pass meets none. Once every handler is SIG_IGN the kernel
    discards these signals, so the pass after that is clean."""
    for _ in range(1000):
        try:
            for _pass in range(2):
                for s in SIGNALS:
                    signal.signal(s, signal.SIG_IGN)
            return
        except OSError:
            continue


def pending() -> list[int]:
    """Signals held by critical() and not delivered yet (for tests and diagnostics)."""
    return list(_pending)
