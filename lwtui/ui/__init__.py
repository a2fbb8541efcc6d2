"""The Textual dashboard: the only part of lwtui that imports textual.

run_dashboard(session, interval=1.0, list_routes=None, **options) -> int
pick_routes(list_routes) -> list[dict]
"""

from lwtui.ui.app import DashboardApp, run_dashboard
from lwtui.ui.picker import pick_routes

__all__ = ["DashboardApp", "pick_routes", "run_dashboard"]
