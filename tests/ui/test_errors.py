"""Errors of a live session reach the person: the event log and a notification, never a silent pass.
Also the session's own side jobs (switching packet capture, a metrics scrape): their failures go to
the session's event log.

The session's rule maps are made unreadable for real: the fd of one map is
replaced by /dev/null's (dup2), so every bpf(2) read of the rules fails in the
kernel with an error, as a map gone bad would. The dashboard keeps running.
"""

from __future__ import annotations

import json
import os

from lwtui.core.pcap import PcapWriter
from lwtui.session.metrics import SessionCollector
from lwtui.ui.app import DashboardApp
from lwtui.ui.eventlog import EventLog
from tests.ui.test_live import INTERVAL, run_app, start_session  # noqa: F401 (start_session is a fixture)

from .conftest import wait_until


def test_unreadable_rules_are_reported_in_the_event_log_and_a_notification(topo, start_session, route_dump,
                                                                          tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    before = route_dump(topo.client_ns)
    session = start_session()
    session.block("port 5353/udp")
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
        # An export of the rules falls back on the last refresh's list, and says so.
        app.action_export("rules", "json")
        title = "cannot read the rules: the export has the last refresh's"
        assert any(t == title for _, t, _ in app.notes), app.notes
        exported = json.loads(next((tmp_path / "lwtui").glob("*rules*.json")).read_text())
        assert [r["rule"] for r in exported] == ["port 5353/udp"]
        # Quitting asks about the rules it lifts: counted from the last refresh, said so.
        await pilot.press("q")
        await wait_until(pilot, lambda: any(t.startswith("cannot count the rules quitting lifts")
                                            for _, t, _ in app.notes), "the notification about the count")
        await pilot.press("enter")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")

    run_app(app, scenario)
    assert app.return_code == 0
    assert session.close() == ["10.0.0.3/32 (out): restored"]     # the rules unreadable, the restore still whole
    assert route_dump(topo.client_ns) == before


def _break(fd: int) -> None:
    """Replace a map's fd by /dev/null's: every bpf(2) call on it fails in the kernel (EINVAL)."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _errors(session) -> list[str]:
    """The session's error lines so far (its event log read directly: a snapshot may need the broken map)."""
    return [e.text for e in session._events.drain() if e.kind == "error"]


def test_capture_that_cannot_be_switched_off_is_logged(topo, start_session, tmp_path, route_dump):
    before = route_dump(topo.client_ns)
    session = start_session()
    writer = PcapWriter(str(tmp_path / "drops.pcap"))
    session.record(writer)
    _break(session.probe.map_fd("config"))
    session.stop_recording(writer)
    assert any(t.startswith("packet capture could not be switched off (") for t in _errors(session))
    session.close()
    assert route_dump(topo.client_ns) == before


def test_a_metrics_read_that_fails_while_running_is_logged(topo, start_session, route_dump):
    before = route_dump(topo.client_ns)
    session = start_session()
    collector = SessionCollector(session)
    assert any(f.name == "lwtui_flows" for f in collector.collect())
    _break(session.probe.map_fd("stats"))
    assert list(collector.collect()) == []          # nothing to serve: an empty scrape ...
    assert any(t.startswith("metrics scrape left empty: reading the maps failed (") for t in _errors(session))
    session.close()
    assert list(collector.collect()) == [] and route_dump(topo.client_ns) == before    # ... said once running
