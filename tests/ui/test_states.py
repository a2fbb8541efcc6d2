"""What the dashboard shows in special states: errors, no traffic, losses, a full
flow table, keep-blocks; and the route picker."""

from __future__ import annotations

import dataclasses
import ipaddress

from lwtui.model import AttachedRoute, Snapshot, Totals
from lwtui.replay import ReplaySession
from lwtui.ui.emptystate import EmptyState
from lwtui.ui.picker import RoutePickerApp

from .conftest import SIZE, make_app, next_tick, screen_text, started, wait_until


class BrokenReplay(ReplaySession):
    """A replay whose verdict writes fail and whose snapshots fail on demand."""

    fail_snapshot = False

    def block_flow(self, flow, kind="flow", ttl=None):
        self.calls.append(("block_flow", flow, kind, ttl))
        raise RuntimeError("verdict map is full (4096 entries)")

    def snapshot(self):
        if self.fail_snapshot:
            raise OSError("bpf(BPF_MAP_LOOKUP_BATCH): Operation not permitted")
        return super().snapshot()


async def test_session_errors_become_notifications(recording):
    session = BrokenReplay(recording, start=25)
    app = make_app(session)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("d")
        severity, title, message = app.notes[-1]
        assert (severity, title) == ("error", "block failed") and "verdict map is full" in message
        session.fail_snapshot = True
        app.request_tick()
        await wait_until(pilot, lambda: app.notes[-1][1] == "cannot read the session", "the tick error")
        assert "Operation not permitted" in app.notes[-1][2]
        session.fail_snapshot = False
        await next_tick(pilot, app)                  # the loop kept going
        assert app.is_running and len(app.flow_ids) == 11


def _quiet_snapshot(**totals) -> Snapshot:
    return Snapshot(time=1767268800.0, started=1767268788.0, session="quiet",
                    totals=Totals(flow_capacity=65536, **totals),
                    routes=[AttachedRoute("10.0.0.3/32", "out", "lwtui-q", "lwtui-q0"),
                            AttachedRoute("10.0.0.2/32", "in", "lwtui-q", "lwtui-q0")])


async def test_no_traffic_explains_itself_and_what_to_try():
    routes = [{"prefix": "10.0.0.0/24", "dev": "lwtui-q0", "table": "main", "hooks": ["out", "xmit"]}]
    app = make_app(ReplaySession([_quiet_snapshot()]), list_routes=lambda: routes)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.query_one(EmptyState).display and not app.flow_table.display
        assert not app.query_one("#detail").display
        text = screen_text(app)
        assert "No traffic yet" in text
        assert "ip netns exec lwtui-q ping -c 3 10.0.0.3" in text
        assert "ip netns exec lwtui-q ip route get 10.0.0.3" in text
        await wait_until(pilot, lambda: app.other_routes is not None, "the namespace's routes")
        await next_tick(pilot, app)
        assert "10.0.0.0/24" in screen_text(app)


async def test_filter_that_hides_everything_says_so(replay):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("slash", *"host 192.0.2.1", "enter")
        assert app.flow_ids == [] and app.query_one(EmptyState).display
        assert "No flow matches host 192.0.2.1" in screen_text(app)


async def test_header_never_hides_losses_and_warns_when_the_flow_table_is_full(recording):
    last = recording[-1]
    full = dataclasses.replace(last, totals=dataclasses.replace(
        last.totals, events_lost=7, parse_errors=3, active_flows=65536), keep_blocks=True)
    app = make_app(ReplaySession([recording[-1], full]))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        text = screen_text(app)
        assert "0 events lost" in text and "0 parse errors" in text and "FULL" not in text
        assert "KEEP-BLOCKS" not in text
        await next_tick(pilot, app)
        text = screen_text(app)
        assert "7 events lost" in text and "3 parse errors" in text
        assert "FLOW TABLE FULL" in text and "KEEP-BLOCKS" in text


async def test_ssh_guard_refuses_to_cut_the_users_own_connection(replay, monkeypatch):
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.3 51000 10.0.0.2 22")
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await pilot.press("h")                  # host 10.0.0.3 is the SSH client
        assert not [c for c in replay.calls if c[0] == "block"]
        assert app.notes[-1][1] == "not blocked" and "SSH" in app.notes[-1][2]


ROUTES = [
    {"prefix": "10.0.0.3/32", "dev": "lwtui-a0", "table": "main", "hooks": ["out", "xmit"]},
    {"prefix": "10.0.0.2/32", "dev": "lwtui-a0", "table": "local", "hooks": ["in"]},
    {"prefix": "10.9.0.0/24", "dev": "lwtui-a0", "table": "main", "hooks": [], "encap": "bpf out other"},
]


async def test_route_picker_returns_the_marked_routes():
    app = RoutePickerApp(lambda: ROUTES)
    async with app.run_test(size=(100, 20)) as pilot:
        await wait_until(pilot, lambda: len(app.query_one("#picker-table").choices) == 4, "the routes")
        assert "has encap bpf out other: cannot attach" in screen_text(app)
        await pilot.press("space", "down", "space", "enter")
        await wait_until(pilot, lambda: not app.is_running, "the picker to exit")
    assert app.return_value == [
        {"prefix": "10.0.0.3/32", "hook": "out", "dev": "lwtui-a0", "table": "main"},
        {"prefix": "10.0.0.2/32", "hook": "in", "dev": "lwtui-a0", "table": "local"},
    ]


async def test_route_picker_enter_takes_the_cursor_row_and_q_returns_nothing():
    app = RoutePickerApp(lambda: ROUTES)
    async with app.run_test(size=(100, 20)) as pilot:
        await wait_until(pilot, lambda: app.query_one("#picker-table").choices, "the routes")
        await pilot.press("down", "enter")
    assert app.return_value == [{"prefix": "10.0.0.3/32", "hook": "xmit", "dev": "lwtui-a0", "table": "main"}]
    app = RoutePickerApp(lambda: ROUTES)
    async with app.run_test(size=(100, 20)) as pilot:
        await wait_until(pilot, lambda: app.query_one("#picker-table").choices, "the routes")
        await pilot.press("down", "down", "down", "space", "enter")     # the encap route: refused
        assert app.is_running
        await pilot.press("q")
    assert app.return_value == []


async def test_route_picker_shows_a_listing_error():
    def broken():
        raise PermissionError("netns lwtui-x: permission denied")
    app = RoutePickerApp(broken)
    async with app.run_test(size=(100, 20)) as pilot:
        await wait_until(pilot, lambda: "permission denied" in screen_text(app), "the error on screen")
        assert app.is_running


def test_ipv6_flow_rows_use_brackets(recording):
    from lwtui.ui.cells import endpoint
    v6 = next(f.id for f in recording[-1].flows if f.id.family == 6 and f.id.proto == 6)
    assert endpoint(v6, True) == "[2001:db8::2]:50412"
    icmp = next(f.id for f in recording[-1].flows if f.id.proto == 1 and f.id.hook == "out")
    assert endpoint(icmp, False) == "10.0.0.3 8/0 echo" and endpoint(icmp, True) == "10.0.0.2"
    assert ipaddress.ip_address("10.0.0.3") == icmp.dst
