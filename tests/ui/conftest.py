"""Fixtures for the dashboard tests: the demo recording, a replay session, a fixed clock.

Times come from the recorded snapshots (2026-01-01 12:00 UTC), so with TZ
pinned to UTC every clock on screen is the same on every run.
"""

from __future__ import annotations

import asyncio
import html
import inspect
import re
import time
from pathlib import Path

import pytest

from lwtui.session.replay import ReplaySession, load_recording
from lwtui.ui.app import DashboardApp

from .scenarios import wait_until  # noqa: F401  (the tests import it from here)

DATA = Path(__file__).parent / "data"
SIZE = (140, 40)
START = 25          # frames skipped: flows have some history on the first screen


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run `async def` tests in a fresh event loop (Pilot tests need one; no plugin needed)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True


@pytest.fixture(autouse=True)
def fixed_environment(monkeypatch, tmp_path):
    """UTC for the clock columns; no SSH_CONNECTION, so the lock-out guard stays out of the way;
    settings, exports and screenshots in the test's own directories, never the user's."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture(scope="session")
def recording():
    return load_recording(DATA / "demo.json")


@pytest.fixture
def replay(recording):
    return ReplaySession(recording, start=START)


def make_app(session, **kw) -> DashboardApp:
    """The dashboard with ticks only when a test asks (next_tick), so screens are reproducible."""
    return DashboardApp(session, interval=1.0, autotick=False, **kw)




async def started(pilot, app) -> None:
    """Wait for the first snapshot to be on screen."""
    await wait_until(pilot, lambda: app.ticks >= 1, "the first snapshot")
    await pilot.pause()


async def next_tick(pilot, app) -> None:
    """Ask for a snapshot now and wait until the UI has applied it."""
    n = app.ticks
    app.request_tick()
    await wait_until(pilot, lambda: app.ticks > n, "the next snapshot")
    await pilot.pause()


_SVG_TEXT = re.compile(r'<text [^>]*clip-path="url\(#terminal-\d+-line-(\d+)\)">([^<]*)</text>')


def screen_text(app) -> str:
    """What the terminal shows, as plain lines (from the app's own SVG export)."""
    lines: dict[int, str] = {}
    for num, text in _SVG_TEXT.findall(app.export_screenshot()):
        lines[int(num)] = lines.get(int(num), "") + html.unescape(text).replace("\xa0", " ")
    return "\n".join(lines[k] for k in sorted(lines))
