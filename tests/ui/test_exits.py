"""Ways out of the dashboard under Pilot: q, Ctrl-C from anywhere, a terminal that hangs
up, an exception in a handler; and signals while it runs. The real command in a real terminal, with the
routes judged by iproute2, is tests/e2e/test_dashboard_exits.py."""

from __future__ import annotations

import asyncio
import os
import pty
import signal

import pytest

from lwtui.session import faults
from lwtui.ui.dialogs import HelpScreen, TtlScreen
from lwtui.ui.exits import exit_on_signals
from lwtui.ui.terminal import terminal_alive

from .conftest import SIZE, make_app, started, wait_until


async def _exits(pilot, app) -> None:
    await wait_until(pilot, lambda: not app.is_running, "the app to exit")


@pytest.mark.parametrize("where", ["table", "help", "filter", "ttl"])
async def test_ctrl_c_quits_from_anywhere_with_code_130(replay, where):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        opened = {"table": [], "help": ["question_mark"], "filter": ["slash", "h"], "ttl": ["t", "3"]}[where]
        await pilot.press(*opened)
        screen = {"help": HelpScreen, "ttl": TtlScreen}.get(where)
        assert screen is None or isinstance(app.screen, screen)
        await pilot.press("ctrl+c")
        await _exits(pilot, app)
    assert app.return_code == 130 and app.failure is None
    assert app.stop_feed(timeout=2.0), "the tick and event threads did not end"


def test_terminal_alive_notices_a_hangup():
    master, slave = pty.openpty()
    try:
        assert terminal_alive(slave)
        os.close(master)             # the terminal window closes: the kernel hangs up the slave side
        assert not terminal_alive(slave)
    finally:
        os.close(slave)


async def test_a_hung_up_terminal_quits_as_sighup_would(replay):
    app = make_app(replay)
    master, slave = pty.openpty()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await started(pilot, app)
            app._check_terminal([slave])
            assert app.is_running, "a live terminal changes nothing"
            os.close(master)
            app._check_terminal([slave])
            await _exits(pilot, app)
    finally:
        os.close(slave)
    assert app.return_code == 129


async def test_an_exception_in_a_handler_ends_the_app_and_is_kept(replay, monkeypatch):
    """LWTUI_FAULT=ui raises in the handler of the second snapshot: the app ends with code 1 and
    keeps the error for run_dashboard; Textual never sees it (so it prints no traceback)."""
    monkeypatch.setenv(faults.ENV, "ui:2")
    monkeypatch.setattr(faults, "_counts", {})
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.request_tick()
        await _exits(pilot, app)
    assert isinstance(app.failure, faults.InjectedFault)
    assert str(app.failure) == "injected fault at ui #2 (LWTUI_FAULT=ui:2)"
    assert app.return_code == 1 and app.ticks == 1
    assert app.stop_feed(timeout=2.0)


async def test_an_exception_in_a_key_action_is_kept_too(replay, monkeypatch):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        monkeypatch.setattr(app, "render_flows", lambda: 1 / 0)
        await pilot.press("s")                          # the sort key redraws the table
        await _exits(pilot, app)
    assert isinstance(app.failure, ZeroDivisionError) and app.return_code == 1
    assert app.stop_feed(timeout=2.0)


def test_every_handler_of_the_app_keeps_its_failures():
    from lwtui.ui.app import DashboardApp
    handlers = [n for n in dir(DashboardApp) if n.startswith(("on_", "action_"))
                and getattr(getattr(DashboardApp, n), "__module__", "").startswith("lwtui.")]
    assert {"on_snapshot_ready", "action_block", "action_toggle_dry_run"} <= set(handlers)
    assert all(getattr(getattr(DashboardApp, n), "keeps_failures", False) for n in handlers), handlers


async def test_ctrl_c_leaves_the_route_picker_choosing_nothing():
    from lwtui.ui.picker import RoutePickerApp
    routes = [{"prefix": "10.0.0.3/32", "dev": "lwtui-a0", "table": "main", "hooks": ["out", "xmit"]}]
    app = RoutePickerApp(lambda: routes)
    async with app.run_test(size=(100, 20)) as pilot:
        await wait_until(pilot, lambda: app.query_one("#picker-table").choices, "the routes")
        await pilot.press("space", "ctrl+c")
        await _exits(pilot, app)
    assert app.return_value == []


def test_a_signal_asks_the_app_to_exit_and_a_second_one_goes_to_the_old_handler():
    seen = []
    loop = asyncio.new_event_loop()

    class App:
        running_loop = loop

        def exit(self, return_code: int) -> None:
            seen.append(("exit", return_code))

    def old(signum, frame):
        seen.append(("old", signum))

    saved = {s: signal.signal(s, old) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        with exit_on_signals(App()):
            signal.raise_signal(signal.SIGTERM)
            assert seen == []                          # asked from the loop, not from the handler
            loop.call_soon(loop.stop)
            loop.run_forever()
            assert seen == [("exit", 128 + signal.SIGTERM)]
            signal.raise_signal(signal.SIGHUP)          # the app is on its way out already
            signal.raise_signal(signal.SIGINT)
            assert seen[1:] == [("old", signal.SIGHUP), ("old", signal.SIGINT)], seen
        assert all(signal.getsignal(s) is old for s in saved)
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)
        loop.close()


def test_a_stuck_shutdown_gets_the_signal_again(monkeypatch):
    """The app was asked to exit on SIGHUP but never does: the signal comes back
    as the handler that was there before (lwtui's exception), so the routes are
    still restored."""
    import os
    import signal as sig
    import time as t
    from lwtui.ui import exits

    class Loop:
        def is_closed(self):
            return False

        def call_soon_threadsafe(self, fn):
            self.asked = fn          # the app "never" runs it

    class StuckApp:
        running_loop = Loop()

    got = []
    old = sig.signal(sig.SIGHUP, lambda signum, frame: got.append(signum))
    monkeypatch.setattr(exits, "EXIT_GRACE_SECONDS", 0.1)
    try:
        with exits.exit_on_signals(StuckApp()):
            os.kill(os.getpid(), sig.SIGHUP)
            deadline = t.monotonic() + 5
            while not got and t.monotonic() < deadline:
                t.sleep(0.01)
        assert got == [sig.SIGHUP]
        assert callable(StuckApp.running_loop.asked)     # it was asked to exit first
    finally:
        sig.signal(sig.SIGHUP, old)
