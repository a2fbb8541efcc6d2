"""Route health for a Session: its own thread checks that the routes still carry the programs.

A mixin, so lwtui.session.live stays about the session's lifecycle. Every
ROUTE_CHECK_INTERVAL seconds, apart from the refresh ticks: a slow tick
(thousands of flows, a rule change) never delays noticing a route gone, and a
slow netlink answer never delays a tick. A route that went away (deleted, its
device or namespace removed, its encap replaced) is dropped from the
attachments and logged as an error; a kernel twin beside an `in` hook's local
route (a link flap) is logged once as a warning. A route that cannot be checked
(netlink errors) is looked at again at the next check; when that goes on for
CHECK_FAILURES_LOGGED checks in a row it is logged, once, and again when the
checks work again.
"""

from __future__ import annotations

import threading
import time
from contextlib import AbstractContextManager
from dataclasses import asdict
from typing import TYPE_CHECKING, Optional

from lwtui.core.model import FlowId
from lwtui.net import routes

if TYPE_CHECKING:
    from lwtui.session.state import SessionState

ROUTE_CHECK_INTERVAL = 2.0    # seconds between checks that the routes still carry the programs
CHECK_FAILURES_LOGGED = 3     # checks of one route failing in a row before the log says so


class RouteChecks:
    """Needs the Session's attachments, lost, state, _routes_lock, _closed, _checks_stop,
    _next_route_check, _twins, _check_failures and _log."""

    # What the checks use of the Session (it sets them in __init__ and start()):
    attachments: list[routes.Attachment]
    lost: list[tuple[routes.Target, str]]
    state: Optional[SessionState]
    _routes_lock: AbstractContextManager  # a lock
    _closed: bool
    _checks_stop: threading.Event
    _next_route_check: float
    _twins: set[int]
    _check_failures: dict[int, int]     # attachment id -> checks failed in a row

    def _log(self, kind: str, text: str, flow: FlowId | None = None, when: float | None = None) -> None:
        raise NotImplementedError   # the Session's

    def _check_routes_loop(self) -> None:
        """The route checker thread's loop, until close()."""
        while not self._checks_stop.wait(ROUTE_CHECK_INTERVAL):
            try:
                self.check_routes(force=True)
            except Exception as e:  # noqa: BLE001 - logged; the next check may work, the thread must not die
                self._log("error", f"checking the routes failed: {type(e).__name__}: {e}")

    def check_routes(self, force: bool = False) -> list[tuple[routes.Target, str]]:
        """Every ROUTE_CHECK_INTERVAL seconds (or now, with force): drop attachments whose route
        went away, clean what is left of them, log why. Returns the routes lost by this call."""
        now = time.monotonic()
        if not force and now < self._next_route_check:
            return []
        self._next_route_check = now + ROUTE_CHECK_INTERVAL
        lost = []
        with self._routes_lock:
            if self._closed:
                return []
            for att in list(self.attachments):
                try:
                    reason = routes.check(att)
                    if reason is None:
                        self._note_twin(att, routes.has_kernel_twin(att))
                except (routes.RouteError, OSError) as e:
                    self._note_check(att, e)    # netlink hiccup: look again next time; said when it lasts
                    continue
                self._note_check(att, None)
                if reason is None:
                    continue
                try:
                    cleanup = routes.detach(att)
                except (routes.RouteError, OSError) as e:
                    cleanup = f"cleanup failed: {e}"
                where = f" in {att.target.netns}" if att.target.netns else ""
                # Log and note why before the attachment goes: a snapshot that no longer lists the
                # route (it reads the routes before the log) then always carries the reason.
                said = reason if cleanup == reason else f"{reason} ({cleanup})"    # not "route gone (route gone)"
                self._log("error", f"{att.target.prefix} ({att.target.hook}){where}: {said}; "
                          f"no longer watched, {len(self.attachments) - 1} route(s) left")
                lost.append((att.target, reason))
                self.lost.append((att.target, reason))
                self.attachments.remove(att)
                self._forget_state(att)
        return lost

    def _note_check(self, att: routes.Attachment, error: Exception | None) -> None:
        """Count a route's failed checks in a row; log the CHECK_FAILURES_LOGGED-th, and the recovery."""
        where = f" in {att.target.netns}" if att.target.netns else ""
        failed = self._check_failures.pop(id(att), 0)
        if error is None:
            if failed >= CHECK_FAILURES_LOGGED:
                self._log("info", f"{att.target.prefix} ({att.target.hook}){where}: the route can be checked again")
            return
        self._check_failures[id(att)] = failed + 1
        if failed + 1 == CHECK_FAILURES_LOGGED:
            self._log("warn", f"{att.target.prefix} ({att.target.hook}){where}: cannot check the route "
                      f"({failed + 1} times in a row: {error}); lwtui keeps trying every {ROUTE_CHECK_INTERVAL:g} s")

    def _note_twin(self, att: routes.Attachment, twin: bool) -> None:
        """Log, once, that the kernel re-added its own route beside ours (its link went down and up)."""
        if twin == (id(att) in self._twins):
            return
        where = f" in {att.target.netns}" if att.target.netns else ""
        if twin:
            self._twins.add(id(att))
            self._log("warn", f"{att.target.prefix} ({att.target.hook}){where}: the kernel re-added its own "
                      "local route beside lwtui's (the link went down and up); lwtui's copy still carries "
                      "the program and is removed on exit, the kernel's stays")
        else:
            self._twins.discard(id(att))
            self._log("info", f"{att.target.prefix} ({att.target.hook}){where}: the kernel's twin route is gone")

    def _forget_state(self, att: routes.Attachment) -> None:
        if self.state is None:
            return
        key = (asdict(att.target), att.prog_name)
        self.state.attachments = [a for a in self.state.attachments if (a.get("target"), a.get("prog_name")) != key]
        self.state.save()
