"""SVG snapshots of the dashboard on the recorded demo (pytest-textual-snapshot).

Recorded data, a fixed clock (the recording's) and TZ=UTC make them
reproducible. After a deliberate change of the look, review and accept with:
    .venv/bin/python -m pytest tests/ui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from .scenarios import SCENARIOS, SIZE, make_app, play


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_screen(snap_compare, name):
    assert snap_compare(make_app(), terminal_size=SIZE, run_before=lambda pilot: play(pilot, name))


@pytest.mark.parametrize("name", ["main", "detail"])
def test_compact_screen(snap_compare, name):
    """80x24: the compact layout (endpoints, rate and verdict on screen; the detail pane on enter)."""
    steps = ["enter"] if name == "detail" else []

    async def run(pilot) -> None:
        await play(pilot, "main")
        for key in steps:
            await pilot.press(key)
        await pilot.pause()
    assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run)
