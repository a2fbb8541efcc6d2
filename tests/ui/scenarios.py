"""The screens the README shows, as steps over the demo recording.

One definition for both the SVG snapshot tests and scripts/screenshots.py, so
the pictures in the README are the screens the tests pin down.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

from lwtui.core.model import FlowId
from lwtui.session.replay import ReplaySession, load_recording
from lwtui.ui.app import DashboardApp

RECORDING = Path(__file__).parent / "data" / "demo.json"
SIZE = (140, 40)
START = 25

V6_HTTP = FlowId("out", 6, ipaddress.ip_address("2001:db8::2"), 50412, ipaddress.ip_address("2001:db8::3"), 8080)
HTTP_IN = FlowId("in", 6, ipaddress.ip_address("10.0.0.3"), 8080, ipaddress.ip_address("10.0.0.2"), 40312)


async def wait_until(pilot, condition, what: str, timeout: float = 15.0) -> None:
    """Let the app run until condition() holds; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.01)


async def tick(pilot) -> None:
    app = pilot.app
    n = app.ticks
    app.request_tick()
    await wait_until(pilot, lambda: app.ticks > n, "a snapshot", timeout=10.0)


def select(flow: FlowId):
    async def step(pilot) -> None:
        pilot.app.flow_table.move_cursor(row=pilot.app.flow_ids.index(flow), animate=False)
    return step


async def open_groups(pilot) -> None:
    """v: the groups view asks for a refresh (it books from then on); wait until it is on screen."""
    app = pilot.app
    n = app.ticks
    await pilot.press("v")
    await wait_until(pilot, lambda: app.ticks > n, "the refresh the groups view asked for", timeout=10.0)


async def clear_toasts(pilot) -> None:
    pilot.app.clear_notifications()


SCENARIOS = {
    "main": [],
    "blocked": [select(HTTP_IN), "p", tick, tick],
    "detail": ["slash", *"port 8080", "enter", select(V6_HTTP), tick, "p", tick, tick, tick, clear_toasts],
    "rules": ["p", "t", *"300", "enter", "j", "h", "d", tick, "r", clear_toasts],
    "groups": [tick, open_groups, tick, tick, "v"],
    "compact": [],
}
# A terminal size other than SIZE: the 80x24 screenshot.
SIZES = {"compact": (80, 24)}


def make_app() -> DashboardApp:
    """The dashboard on the demo recording, ticking only when a step asks."""
    app = DashboardApp(ReplaySession(load_recording(RECORDING), start=START), interval=1.0, autotick=False)
    app.NOTIFICATION_TIMEOUT = 60   # a slow machine must not lose the toast before the picture
    return app


async def play(pilot, name: str) -> None:
    """Wait for the first snapshot, then run the scenario's keys and steps."""
    app = pilot.app
    await wait_until(pilot, lambda: app.ticks >= 1, "the first snapshot", timeout=10.0)
    for step in SCENARIOS[name]:
        if isinstance(step, str):
            await pilot.press(step)
        else:
            await step(pilot)
        await pilot.pause()
    await pilot.pause()
