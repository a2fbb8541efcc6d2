"""The flow table as a virtual view: a stable cursor, follow (F), Home/End/g/G,
sorting by a click on a column header, and the layouts of small terminals."""

from __future__ import annotations

import ipaddress

from textual.geometry import Region

from lwtui.core.model import FlowId, FlowRecord, Snapshot, Totals
from lwtui.session.replay import ReplaySession
from lwtui.ui.detail import DetailPane

from .conftest import SIZE, make_app, next_tick, screen_text, started

T0 = 1767268800.0


def flow(i: int) -> FlowId:
    return FlowId("out", 6, ipaddress.ip_address(int(ipaddress.ip_address("10.1.0.0")) + i), 40000 + i,
                  ipaddress.ip_address("10.0.0.3"), 8080)


def frame(n: int, step: int, rate_of=lambda i, step: float(1000 * (i + 1))) -> Snapshot:
    """n flows; flow i's rate is rate_of(i, step) bits/s."""
    flows = [FlowRecord(id=flow(i), packets=100 + i, bytes=10_000 * (i + 1), tcp_flags=0x12,
                        first_seen=T0 - 100 + i, last_seen=T0 + step, bps=rate_of(i, step), pps=float(i + 1))
             for i in range(n)]
    return Snapshot(time=T0 + step, flows=flows, totals=Totals(active_flows=n, flow_capacity=65536),
                    started=T0 - 100, session="table")


def sinking(i: int, step: int) -> float:
    """Flow 5 is the fastest at first and the slowest from step 1 on; the others keep their order."""
    if i == 5:
        return 1e9 if step == 0 else 1.0
    return float(1000 * (i + 1))


async def test_the_cursor_stays_on_its_flow_and_the_view_stays_put_without_follow():
    app = make_app(ReplaySession([frame(200, s, sinking) for s in range(3)]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.flow_ids[0] == flow(5)
        assert app.selected_flow == flow(5)
        await next_tick(pilot, app)                     # flow 5 sinks to the bottom
        assert app.flow_ids[-1] == flow(5)
        assert app.selected_flow == flow(5)             # the cursor stays on its flow ...
        assert app.flow_table.scroll_y == 0             # ... and the view where the user left it
        await pilot.press("k")                          # the next key moves from where the flow is
        assert app.selected_flow == app.flow_ids[-2]
        assert app.flow_table.scroll_y > 0              # and brings the cursor into view


def drifting(i: int, step: int) -> float:
    """Flow 5 sits near row 100 at step 0 and near row 150 from step 1 on."""
    if i == 5:
        return 100_500.0 if step == 0 else 50_500.0
    return float(1000 * (i + 1))


async def test_follow_keeps_the_selected_flow_on_its_screen_line():
    app = make_app(ReplaySession([frame(200, s, drifting) for s in range(3)]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        table = app.flow_table
        table.move_cursor(row=app.flow_ids.index(flow(5)))
        await pilot.pause()
        assert not table.follow
        await pilot.press("F")
        assert table.follow
        row, line = table.cursor_row, table.cursor_row - table.scroll_y
        await next_tick(pilot, app)
        assert app.selected_flow == flow(5) and table.cursor_row >= row + 40     # it moved down ...
        assert table.cursor_row - table.scroll_y == line                        # ... and the view with it
        await pilot.press("F")
        assert not table.follow


async def test_home_end_g_and_shift_g_jump_to_the_ends():
    app = make_app(ReplaySession([frame(300, 0)]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        table = app.flow_table
        for key, row in (("G", 299), ("g", 0), ("end", 299), ("home", 0)):
            await pilot.press(key)
            assert table.cursor_row == row, key
            assert app.selected_flow == app.flow_ids[row]
            assert table.scroll_y <= row < table.scroll_y + table.size.height - 1   # on screen
        await pilot.press("end")
        assert str(flow(0).src) in screen_text(app)        # the slowest flow is drawn at the bottom


async def test_a_click_on_a_column_header_sorts_by_it_and_again_reverses():
    app = make_app(ReplaySession([frame(50, 0)]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        table = app.flow_table
        x = next(x for x in range(table.size.width) if table._column_at(x) == "age")
        await pilot.click(table, offset=(x, 0))
        await pilot.pause()
        firsts = [app.record(f).first_seen for f in app.flow_ids]
        assert firsts == sorted(firsts) and "sorted by age" in screen_text(app)
        assert table.column_label("age").endswith("▼")
        await pilot.click(table, offset=(x, 0))
        await pilot.pause()
        firsts = [app.record(f).first_seen for f in app.flow_ids]
        assert firsts == sorted(firsts, reverse=True) and "sorted by age reversed" in screen_text(app)
        assert table.column_label("age").endswith("▲")
        x = next(x for x in range(table.size.width) if table._column_at(x) == "bps")
        await pilot.click(table, offset=(x, 0))           # another column: its usual direction
        await pilot.pause()
        rates = [app.record(f).bps for f in app.flow_ids]
        assert rates == sorted(rates, reverse=True)


async def test_80x24_shows_endpoints_rate_and_verdict_and_more_rows(replay):
    app = make_app(replay)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(pilot, app)
        assert not app.query_one(DetailPane).display      # the detail pane waits for enter
        text = screen_text(app)
        assert "bits/s" in text and "source" in text and "destination" in text
        rec = app.selected_record
        assert str(rec.id.src) in text and "●" in text
        assert app.flow_table.size.height - 1 >= len(app.flow_ids) == 11   # every flow of the demo fits
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one(DetailPane).display
        await pilot.press("escape")
        await pilot.pause()
        assert not app.query_one(DetailPane).display


async def test_60x18_still_shows_rows():
    app = make_app(ReplaySession([frame(100, 0)]))
    async with app.run_test(size=(60, 18)) as pilot:
        await started(pilot, app)
        table = app.flow_table
        assert table.size.height - 1 >= 5
        text = screen_text(app)
        assert str(flow(99).src) in text and "bits/s" in text


async def test_only_the_visible_rows_are_built():
    app = make_app(ReplaySession([frame(20_000, 0), frame(20_000, 1)]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        table = app.flow_table
        on_screen = table.size.height - 1
        assert len(app.flow_ids) == 20_000
        assert 0 < table.rows_built <= on_screen
        before = table.rows_built
        await next_tick(pilot, app)
        await pilot.pause()
        assert 0 < table.rows_built - before <= on_screen
        await pilot.press("G")
        await pilot.pause()
        assert table.rows_built - before <= 2 * on_screen



def cursor_lines(table) -> list[int]:
    """The table's lines (0: the header) drawn with the cursor's background, as Textual would
    paint them now: lines it did not mark for redrawing come from its cache."""
    cursor_bg = table.get_component_rich_style("flow-table--cursor").bgcolor
    strips = table.render_lines(Region(0, 0, table.size.width, table.size.height))
    return [y for y, strip in enumerate(strips) if any(s.style and s.style.bgcolor == cursor_bg for s in strip)]


async def test_a_cursor_move_leaves_one_cursor_and_keeps_the_rows_cells():
    app = make_app(ReplaySession([frame(200, 0)]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        table = app.flow_table
        assert cursor_lines(table) == [1]
        for _ in range(3):
            await pilot.press("j")
        await pilot.pause()
        assert table.scroll_y == 0 and table.cursor_row == 3
        assert cursor_lines(table) == [4]
        built = table.rows_built
        await pilot.press("k")
        await pilot.pause()
        assert cursor_lines(table) == [3]
        assert table.rows_built == built               # the rows' cells were kept
        page = table.size.height - 1
        for _ in range(page):                          # past the last line: the view scrolls
            await pilot.press("j")
        await pilot.pause()
        assert table.scroll_y > 0
        line = table.cursor_row - int(table.scroll_y) + 1
        assert cursor_lines(table) == [line]
        drawn = "".join(seg.text for seg in table.render_lines(Region(0, line, table.size.width, 1))[0])
        assert f"{app.selected_flow.src}:{app.selected_flow.sport}" in drawn


async def test_keys_reach_the_table_when_traffic_starts_after_an_empty_start():
    """lwtui started on a quiet route shows the empty state (the table hidden); when the
    first flows arrive the table is shown again and keys move its cursor (they went
    nowhere: hiding the table had taken the focus away)."""
    app = make_app(ReplaySession([frame(0, 0), frame(30, 1), frame(30, 2)]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert not app.flow_table.display
        await next_tick(pilot, app)
        table = app.flow_table
        assert table.display and table.cursor_row == 0
        await pilot.press("j", "j")
        await pilot.pause()
        assert app.focused is table and table.cursor_row == 2
