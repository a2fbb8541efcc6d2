"""Errors of a live session reach the person: the event log and a notification, never a silent pass.

The session's rule maps are made unreadable for real: the fd of one map is
replaced by /dev/null's (dup2), so every bpf(2) read of the rules fails in the
kernel with an error, as a map gone bad would. The dashboard keeps running.
"""

from __future__ import annotations

import os

from lwtui.ui.app import DashboardApp
from lwtui.ui.eventlog import EventLog
from tests.ui.test_live import INTERVAL, run_app, start_session  # noqa: F401 (start_session is a fixture)

from .conftest import wait_until


def test_unreadable_rules_are_reported_in_the_event_log_and_a_notification(topo, start_session, route_dump):
    before = route_dump(topo.client_ns)
    session = start_session()
    app = DashboardApp(session, interval=INTERVAL)

    async def scenario(pilot):
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, session.store.fds["port_rules"])
        os.close(devnull)
        await pilot.press("D")                  # dry-run on: a config write that works, then the rules are read
        assert session.dry_run
        await wait_until(pilot, lambda: any(t == "cannot read the rules" for _, t, _ in app.notes),
                         "the notification about the rules")
        sev, _, text = next(n for n in app.notes if n[1] == "cannot read the rules")
        assert sev == "warning" and text.startswith("BpfError: ") and "Invalid argument" in text   # EINVAL: not a map
        logged = [e.text for e in app.query_one(EventLog).entries if e.kind == "error"]
        assert any(t.startswith("cannot read the rules: BpfError: ") for t in logged), logged
        # The refresh reads the rules too: its failure is logged once, not once per tick.
        await wait_until(pilot, lambda: any(t.startswith("cannot read the session: ") for t in
                                            (e.text for e in app.query_one(EventLog).entries)),
                         "the failed refresh in the event log", timeout=10)
        assert app.is_running and app.failure is None
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")

    run_app(app, scenario)
    assert app.return_code == 0
    assert session.close() == ["10.0.0.3/32 (out): restored"]
    assert route_dump(topo.client_ns) == before
