"""Pilot test: `b` blocks exactly what the filter shows, after a question naming the
rule and how many flows it matches now; a filter the kernel cannot enforce says why."""

from __future__ import annotations

from lwtui.core.grammar import parse_rule
from lwtui.ui.dialogs import BlockFilterScreen

from .conftest import SIZE, make_app, next_tick, screen_text, started


async def test_b_blocks_what_the_filter_shows(replay):
    app = make_app(replay)
    blocks = lambda: [c for c in replay.calls if c[0] == "block"]  # noqa: E731
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("b")                               # no filter: nothing to block
        assert not isinstance(app.screen, BlockFilterScreen) and "narrow the table with /" in app.notes[-1][2]

        await pilot.press("slash", *"port 8080 and not proto udp", "enter")
        await next_tick(pilot, app)
        rule = parse_rule("port 8080 and not proto udp")
        want = sum(1 for r in app.shown.flows if rule.matches(r.id))
        assert want >= 1
        await pilot.press("b")
        assert isinstance(app.screen, BlockFilterScreen)
        text = screen_text(app)
        assert "Block port 8080 and not proto udp?" in text
        assert f"matches {want} flow" in text and f"of the {len(app.shown.flows)} in the table" in text
        await pilot.press("escape")                          # cancel: nothing blocked
        assert not isinstance(app.screen, BlockFilterScreen) and blocks() == []
        await pilot.press("b", "enter")                      # Enter confirms
        assert blocks() == [("block", "port 8080 and not proto udp", None)]
        assert app.notes[-1][2].startswith("blocked port 8080 and not proto udp")

        await pilot.press("slash", "ctrl+u", *"hook in and port 8080", "enter", "b")
        assert not isinstance(app.screen, BlockFilterScreen) and len(blocks()) == 1
        assert "cannot enforce 'hook'" in app.notes[-1][2] and "^^^^" in app.notes[-1][2]
