"""Pilot test: the Flows, Groups, Rules and Events tabs in the header switch views when clicked."""

from __future__ import annotations

from lwtui.ui.eventlog import EventLog
from lwtui.ui.flowtable import FlowTable
from lwtui.ui.groupsview import GroupsTable
from lwtui.ui.rulesview import RulesTable

from .conftest import SIZE, make_app, started


def _tab_columns(app) -> dict[str, int]:
    """The first column of each tab on the header's top line, found by what a click there runs."""
    found: dict[str, int] = {}
    for x in range(SIZE[0]):
        action = app.screen.get_style_at(x, 0).meta.get("@click", "")
        for view in ("flows", "groups", "rules", "events"):
            if action == f"app.show_view({view!r})":
                found.setdefault(view, x)
    return found


async def test_clicking_a_tab_shows_its_view(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        tabs = _tab_columns(app)
        assert list(tabs) == ["flows", "groups", "rules", "events"] and tabs["flows"] > SIZE[0] // 2
        for view, focused in (("rules", RulesTable), ("events", EventLog), ("events", EventLog),
                              ("groups", GroupsTable), ("flows", FlowTable)):
            assert await pilot.click(offset=(tabs[view] + 1, 0))
            assert app.view == view                          # a second click on a tab keeps its view
            assert isinstance(app.focused, focused)
            assert app.query_one("#views").current == view
