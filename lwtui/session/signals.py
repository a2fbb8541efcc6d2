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
"""

from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Terminated(SystemExit):
    """SIGTERM/SIGHUP: unwind through every finally so routes are restored."""
    code: int               # 128 + the signal number


_owner_pid: int | None = None
_depth = 0
_pending: list[int] = []
_lock = threading.Lock()


def install() -> None:
    """Route SIGINT, SIGTERM and SIGHUP through this module (main thread only)."""
    global _owner_pid
    _owner_pid = os.getpid()
    for s in SIGNALS:
        signal.signal(s, _handle)


def _handle(signum: int, frame) -> None:
    if os.getpid() != _owner_pid:       # a fork()ed helper (pyroute2): never run our cleanup there
        os._exit(128 + signum)
    with _lock:
        if _depth > 0:
            _pending.append(signum)
            return
    _raise(signum)


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


def pending() -> list[int]:
    """Signals held by critical() and not delivered yet (for tests and diagnostics)."""
    return list(_pending)
