"""Pilot tests: quitting asks before it lifts rules; Ctrl-C copies a selection and quits without one."""

from __future__ import annotations

from textual.selection import Selection
from textual.widgets import Static

from lwtui.ui.dialogs import QuitScreen

from .conftest import SIZE, make_app, next_tick, screen_text, started, wait_until


async def test_q_with_active_rules_asks_first_and_only_y_or_enter_quit(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("d", "j", "h")
        await next_tick(pilot, app)
        assert len(replay.rules()) == 2
        for stay in ("n", "escape"):
            await pilot.press("q")
            assert isinstance(app.screen, QuitScreen)
            text = screen_text(app)
            assert "Quit and lift 2 active rules?" in text and "--keep-blocks" in text
            await pilot.press(stay)
            assert not isinstance(app.screen, QuitScreen) and app.is_running
        await pilot.press("q", "enter")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 0


async def test_q_y_quits_with_one_rule_and_the_question_says_rule(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("p", "q")
        await wait_until(pilot, lambda: "Quit and lift 1 active rule?" in screen_text(app), "the question")
        await pilot.press("y")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 0


async def test_q_keeping_blocks_quits_at_once(replay):
    app = make_app(replay)
    replay.keep_blocks = True          # the rules outlive the session: nothing to ask
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("d", "q")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 0


async def test_ctrl_c_copies_the_selection_and_quits_without_one(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        info = app.query_one("#detail-info", Static)
        app.screen.selections = {info: Selection(None, None)}      # as a mouse drag over the pane leaves it
        await pilot.pause()
        expected = app.screen.get_selected_text()
        assert "10.0.0.2:45678" in expected
        await pilot.press("ctrl+c")
        assert app.is_running
        assert app.clipboard == expected
        assert app.notes[-1][1] == "copied" and f"copied {len(expected)} characters" in app.notes[-1][2]
        assert not app.screen.selections                            # the next ctrl+c quits
        await pilot.press("slash", *"port 8080", "shift+home", "ctrl+c")   # a selection in the input line
        assert app.is_running and app.clipboard == "port 8080"
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 130
