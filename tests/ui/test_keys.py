"""Pilot tests: real key presses against a ReplaySession, asserting on the calls
the session received and on what the table shows after the next tick."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys

from lwtui.core.model import FlowId
from lwtui.ui.dialogs import FilterBar, HelpScreen, TtlScreen
from lwtui.ui.feed import SWITCH_INTERVAL

from .conftest import SIZE, make_app, next_tick, screen_text, started, wait_until

BULK = FlowId("out", 6, ipaddress.ip_address("10.0.0.2"), 45678, ipaddress.ip_address("10.0.0.3"), 5201)
HTTP_IN = FlowId("in", 6, ipaddress.ip_address("10.0.0.3"), 8080, ipaddress.ip_address("10.0.0.2"), 40312)


async def test_first_snapshot_fills_the_table_sorted_by_rate(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert len(app.flow_ids) == 11
        assert app.flow_ids[0] == BULK
        rates = [app.record(f).bps for f in app.flow_ids]
        assert rates == sorted(rates, reverse=True)
        assert app.selected_flow == BULK


async def test_j_k_and_arrows_move_the_cursor(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("j", "j", "down", "k")
        assert app.flow_table.cursor_row == 2
        assert app.selected_flow == app.flow_ids[2]
        await pilot.press("up", "up", "up")
        assert app.flow_table.cursor_row == 0


async def test_cursor_stays_on_its_flow_while_rows_move(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("j", "j", "j")
        chosen = app.selected_flow
        positions = {app.flow_ids.index(chosen)}
        for _ in range(6):                      # every sort order, rows reshuffle
            await pilot.press("s")
            assert app.selected_flow == chosen
            positions.add(app.flow_table.cursor_row)
        for _ in range(4):                      # and new counters every tick
            await next_tick(pilot, app)
            assert app.selected_flow == chosen
        assert len(positions) > 1, "the sorts never moved the row: the test proves nothing"


async def test_identical_snapshot_builds_no_row(recording):
    from lwtui.session.replay import ReplaySession
    app = make_app(ReplaySession([recording[30], recording[30]]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        table = app.flow_table
        built = table.rows_built
        assert built > 0
        await next_tick(pilot, app)
        await pilot.pause()
        assert table.rows_built == built


async def test_filter_narrows_the_table(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("slash", *"host 10.0.0.3 and port 8080", "enter")
        ten3 = ipaddress.ip_address("10.0.0.3")
        expected = {f.id for f in app.shown.flows
                    if ten3 in (f.id.src, f.id.dst) and 8080 in (f.id.sport, f.id.dport)}
        assert len(expected) == 3
        assert set(app.flow_ids) == expected
        assert not app.query_one(FilterBar).display
        await pilot.press("slash", "ctrl+u", *"not proto udp", "enter")
        assert set(app.flow_ids) == {f.id for f in app.shown.flows if f.id.proto != 17}
        assert len(app.flow_ids) == 8
        await pilot.press("slash", "ctrl+u", "enter")         # empty clears
        assert len(app.flow_ids) == 11


async def test_bad_filter_shows_an_error_and_keeps_the_table(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("slash", *"host 10.0.0.x", "enter")
        severity, title, message = app.notes[-1]
        assert severity == "error" and title == "filter not applied"
        assert "10.0.0.x" in message and "^" in message
        assert app.query_one(FilterBar).display            # still open to fix it
        assert len(app.flow_ids) == 11 and app.filter is None
        await pilot.press("escape")
        assert not app.query_one(FilterBar).display
        assert app.is_running


async def test_d_drops_the_selected_flow_and_a_lifts_it(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("d")
        assert ("block_flow", BULK, "flow", None) in replay.calls
        assert replay.calls[-1] == ("block", "flow tcp 10.0.0.2:45678 10.0.0.3:5201", None)
        assert app.notes[-1][2].startswith("blocked flow tcp 10.0.0.2:45678 10.0.0.3:5201")
        await next_tick(pilot, app)
        rec = app.record(BULK)
        assert rec.verdict == "drop" and rec.rule == "flow tcp 10.0.0.2:45678 10.0.0.3:5201"
        assert app.flow_table.cells_of(app.selected_flow)["v"].plain == "×"
        assert app.selected_flow == BULK
        await pilot.press("a")
        assert replay.calls[-2:] == [("allow_flow", BULK), ("allow", "flow tcp 10.0.0.2:45678 10.0.0.3:5201")]
        await next_tick(pilot, app)
        assert app.record(BULK).verdict == "allow"


async def test_h_blocks_the_remote_host_and_p_the_service_port(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        app.flow_table.move_cursor(row=app.flow_ids.index(HTTP_IN))
        await pilot.pause()
        await pilot.press("p")
        assert replay.calls[-1] == ("block", "port 8080/tcp", None)
        await pilot.press("h")
        assert replay.calls[-1] == ("block", "host 10.0.0.3", None)   # at `in`, the source is remote
        await next_tick(pilot, app)
        assert app.record(HTTP_IN).verdict == "drop"
        dropped = {f for f in app.flow_ids if app.record(f).verdict == "drop"}
        ten3 = ipaddress.ip_address("10.0.0.3")
        assert dropped == {f for f in app.flow_ids
                           if ten3 in (f.src, f.dst) or (f.proto == 6 and 8080 in (f.sport, f.dport))}
        assert any(f.family == 6 for f in dropped) and len(dropped) < len(app.flow_ids)
        await pilot.press("a")                       # lifts both rules that block it
        assert {c[1] for c in replay.calls[-2:]} == {"port 8080/tcp", "host 10.0.0.3"}
        await next_tick(pilot, app)
        assert all(app.record(f).verdict == "allow" for f in app.flow_ids)


async def test_p_on_icmp_explains_instead_of_failing(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        icmp = next(f for f in app.flow_ids if f.proto == 1)
        app.flow_table.move_cursor(row=app.flow_ids.index(icmp))
        await pilot.pause()
        await pilot.press("p")
        assert not [c for c in replay.calls if c[0] == "block"]
        assert "no ports" in app.notes[-1][2]


async def test_t_sets_a_ttl_on_the_next_block_only(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("t")
        assert isinstance(app.screen, TtlScreen)
        await pilot.press(*"abc", "enter")                  # refused, stays open
        assert isinstance(app.screen, TtlScreen)
        await pilot.press("ctrl+u", "3", "0", "enter")
        assert app.next_ttl == 30.0
        await pilot.press("d")
        assert replay.calls[-1] == ("block", "flow tcp 10.0.0.2:45678 10.0.0.3:5201", 30.0)
        assert app.next_ttl is None
        await next_tick(pilot, app)
        (entry,) = app.snapshot.rules
        assert 0 < entry.expires_in <= 30
        await pilot.press("j", "p")
        assert replay.calls[-1][2] is None


async def test_r_and_e_switch_views_and_x_removes_a_rule(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("p")
        await next_tick(pilot, app)
        await pilot.press("r")
        assert app.query_one("#views").current == "rules"
        assert app.focused.id == "rules-table"
        await pilot.press("d")                               # flow keys do nothing here
        assert [c for c in replay.calls if c[0] == "block"] == [("block", "port 5201/tcp", None)]
        await pilot.press("x")
        assert replay.calls[-1] == ("allow", "port 5201/tcp")
        await pilot.press("e")
        assert app.query_one("#views").current == "events"
        kinds = [e.kind for e in app.event_log.entries]
        assert "new" in kinds and "block" in kinds
        await pilot.press("e")
        assert app.query_one("#views").current == "flows"


async def test_shift_d_toggles_dry_run_in_the_header(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert "MONITOR" in screen_text(app) and "DRY-RUN" not in screen_text(app)
        await pilot.press("D")
        assert replay.calls[-1] == ("set_dry_run", True)
        await pilot.pause()
        assert "DRY-RUN" in screen_text(app)
        await pilot.press("d")
        await next_tick(pilot, app)
        assert app.record(BULK).verdict == "would-drop"
        assert "DRY-RUN" in screen_text(app)
        await pilot.press("D")
        await next_tick(pilot, app)
        assert replay.calls[-1] == ("set_dry_run", False)
        assert app.record(BULK).verdict == "drop"
        assert "MONITOR" in screen_text(app)


async def test_space_pauses_the_display_not_the_session(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("space")
        frozen = app.shown
        before = app.record(BULK).packets
        await next_tick(pilot, app)
        await next_tick(pilot, app)
        assert app.snapshot.time > frozen.time           # snapshots keep coming
        assert app.shown is frozen and app.record(BULK).packets == before
        assert "PAUSED" in screen_text(app)
        await pilot.press("space")
        assert app.shown is app.snapshot
        assert app.record(BULK).packets > before


async def test_question_mark_opens_help_and_escape_closes_it(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.pause()
        assert "block the selected flow's service port" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_enter_toggles_the_detail_pane(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        pane = app.query_one("#detail")
        assert pane.display
        await pilot.press("enter")
        assert not pane.display
        await pilot.press("enter")
        assert pane.display


async def test_q_quits_and_stops_the_workers(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 0
    assert app.stop_feed(timeout=2.0), "the tick and event threads did not end"


async def test_the_gil_changes_hands_often_while_the_ticks_run_and_as_before_after(replay):
    before = sys.getswitchinterval()
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert sys.getswitchinterval() == min(before, SWITCH_INTERVAL) < 0.005
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.stop_feed(timeout=2.0)
    assert sys.getswitchinterval() == before


async def test_command_palette_runs_actions(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.press(*"dry-run")
        await wait_until(pilot, lambda: "toggle dry-run" in screen_text(app),
                         "the dry-run command in the palette")
        await pilot.press("enter")
        await wait_until(pilot, lambda: ("set_dry_run", True) in replay.calls, "the command to run")


def test_frames_come_at_120_a_second_unless_the_environment_says_otherwise():
    """A key's redraw waits for Textual's next frame: lwtui asks for 120 a second (a ~4 ms
    wait, not ~8); TEXTUAL_FPS set by the user wins. Fresh interpreters: textual reads it once."""
    probe = "import lwtui.ui.app, textual.constants as c; print(c.MAX_FPS)"
    env = {k: v for k, v in os.environ.items() if k != "TEXTUAL_FPS"}
    got = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert got.stdout.strip() == "120", got.stderr
    got = subprocess.run([sys.executable, "-c", probe], env={**env, "TEXTUAL_FPS": "30"},
                         capture_output=True, text=True, timeout=60)
    assert got.stdout.strip() == "30", got.stderr
