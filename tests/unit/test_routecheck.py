"""A route that cannot be checked is said, once, when it lasts, and when it works again.

The route checks' bookkeeping alone: what netlink answers is stood in for by
raising OSError from routes.check (the real checks run against the kernel in
tests/e2e/test_reliability.py and test_recovery.py)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from lwtui.net import routes
from lwtui.session.routecheck import CHECK_FAILURES_LOGGED, RouteChecks


class Checks(RouteChecks):
    def __init__(self, atts):
        self.attachments, self.lost, self.state = list(atts), [], None
        self._routes_lock, self._closed = threading.Lock(), False
        self._checks_stop, self._next_route_check = threading.Event(), 0.0
        self._twins, self._check_failures = set(), {}
        self.logged: list[tuple[str, str]] = []

    def _log(self, kind, text, flow=None, when=None):
        self.logged.append((kind, text))


def test_a_route_that_cannot_be_checked_is_said_once_and_its_recovery_too(monkeypatch):
    att = SimpleNamespace(target=SimpleNamespace(prefix="10.0.0.3/32", hook="out", netns="lwtui-x"))
    answers = [OSError(16, "Device or resource busy")] * (CHECK_FAILURES_LOGGED + 2) + [None, None]

    def check(a):
        r = answers.pop(0)
        if isinstance(r, Exception):
            raise r
        return r
    monkeypatch.setattr(routes, "check", check)
    monkeypatch.setattr(routes, "has_kernel_twin", lambda a: False)
    c = Checks([att])
    for i in range(CHECK_FAILURES_LOGGED - 1):
        assert c.check_routes(force=True) == [] and c.logged == []      # a hiccup: nothing said yet
    c.check_routes(force=True)
    assert c.logged == [("warn", f"10.0.0.3/32 (out) in lwtui-x: cannot check the route ({CHECK_FAILURES_LOGGED} "
                                 "times in a row: [Errno 16] Device or resource busy); lwtui keeps trying every 2 s")]
    c.check_routes(force=True)
    c.check_routes(force=True)
    assert len(c.logged) == 1                                             # said once
    c.check_routes(force=True)
    assert c.logged[-1] == ("info", "10.0.0.3/32 (out) in lwtui-x: the route can be checked again")
    c.check_routes(force=True)
    assert len(c.logged) == 2 and c.attachments == [att] and c.lost == []
