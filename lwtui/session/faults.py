"""Fault injection for the restore-guarantee tests (never set in normal use).

LWTUI_FAULT is a comma list of POINT or POINT:N; the Nth time lwtui passes
POINT (1 when N is omitted) it raises InjectedFault there. Points:
  attach    before attaching each route (attach:2 fails the second one)
  reader    in the event reader's poll loop
  snapshot  at the start of a snapshot (a refresh tick)
  ui        in the dashboard's handler of a new snapshot (a message handler
            on the UI thread, as a bug there would raise)
The tests use it to prove that routes come back whatever fails; a user who
sets it gets exactly that failure.
"""

from __future__ import annotations

import os
import threading

ENV = "LWTUI_FAULT"

_counts: dict[str, int] = {}
_lock = threading.Lock()


class InjectedFault(RuntimeError):
    """The failure LWTUI_FAULT asked for."""


def _wanted(point: str, spec: str) -> int | None:
    for item in spec.split(","):
        name, _, n = item.strip().partition(":")
        if name == point:
            return int(n) if n.isdigit() and int(n) > 0 else 1
    return None


def check(point: str) -> None:
    """Raise InjectedFault when LWTUI_FAULT names `point` and this is the Nth pass."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    n = _wanted(point, spec)
    if n is None:
        return
    with _lock:
        _counts[point] = _counts.get(point, 0) + 1
        hit = _counts[point] == n
    if hit:
        raise InjectedFault(f"injected fault at {point} #{n} ({ENV}={spec})")
