"""The Textual dashboard: the only part of lwtui that imports textual.

run_dashboard(session, interval=1.0, list_routes=None, **options) -> int
pick_routes(list_routes) -> list[dict]

Textual draws at most TEXTUAL_FPS frames a second, and a key's redraw waits
for the next of them: lwtui asks for 120 (Textual's default is 60), so a key
waits ~4 ms for its frame instead of ~8 (BENCHMARKS.md, "A key within a
frame"); the screen is only redrawn when something changed, so an idle
dashboard costs nothing more. TEXTUAL_FPS in the environment still wins.
"""

import os

os.environ.setdefault("TEXTUAL_FPS", "120")     # before textual is imported: it reads this once

from lwtui.ui.app import DashboardApp, run_dashboard  # noqa: E402
from lwtui.ui.picker import pick_routes  # noqa: E402

__all__ = ["DashboardApp", "pick_routes", "run_dashboard"]
