#!/usr/bin/env python3
"""Regenerate the README's screenshots (screenshots/*.svg) from the recorded demo.

    .venv/bin/python scripts/screenshots.py [NAME ...]

Replays tests/ui/data/demo.json (no kernel, no root) through the dashboard,
runs each scenario of tests/ui/scenarios.py and saves what the terminal shows.
The same scenarios are the SVG snapshot tests, so the pictures match them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.ui.scenarios import SCENARIOS, SIZE, SIZES, make_app, play  # noqa: E402

OUT = ROOT / "screenshots"


async def shoot(name: str) -> Path:
    app = make_app()
    async with app.run_test(size=SIZES.get(name, SIZE), notifications=True) as pilot:
        await play(pilot, name)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        path = Path(app.save_screenshot(filename=f"{name}.svg", path=str(OUT)))
    return path


def main(argv: list[str]) -> int:
    os.environ["TZ"] = "UTC"     # the recording's clock, as the tests see it
    time.tzset()
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown screenshot {', '.join(unknown)}: choose from {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    for name in names:
        print(f"wrote {asyncio.run(shoot(name)).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
