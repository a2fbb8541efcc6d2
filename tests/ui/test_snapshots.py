"""SVG snapshots of the dashboard on the recorded demo (pytest-textual-snapshot).

Recorded data, a fixed clock (the recording's) and TZ=UTC make them
reproducible. After a deliberate change of the look, review and accept with:
    .venv/bin/python -m pytest tests/ui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

import pytest

from .scenarios import SCENARIOS, SIZE, SIZES, make_app, play


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_screen(snap_compare, name):
    assert snap_compare(make_app(), terminal_size=SIZES.get(name, SIZE), run_before=lambda pilot: play(pilot, name))


def test_compact_detail_screen(snap_compare):
    """80x24 with the detail pane opened (enter); the compact main screen is the "compact" scenario."""
    async def run(pilot) -> None:
        await play(pilot, "compact")
        await pilot.press("enter")
        await pilot.pause()
    assert snap_compare(make_app(), terminal_size=SIZES["compact"], run_before=run)
