"""What the dashboard shows in special states: errors, no traffic, losses, a full
flow table, keep-blocks, the lock-out question, routes that go away; and the
route picker."""

from __future__ import annotations

import dataclasses
import ipaddress

from lwtui.core.model import AttachedRoute, EventEntry, Snapshot, Totals
from lwtui.session.replay import ReplaySession
from lwtui.ui.dialogs import ConfirmScreen
from lwtui.ui.emptystate import EmptyState
from lwtui.ui.picker import RoutePickerApp

from .conftest import SIZE, make_app, next_tick, screen_text, started, wait_until
from .test_keys import BULK


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


async def test_ssh_guard_asks_before_cutting_the_users_own_connection(replay, monkeypatch):
    """SSH_CONNECTION says the user came in to 10.0.0.3:5201: `p` on the bulk flow (port 5201/tcp) asks first."""
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.10 50022 10.0.0.3 5201")
    app = make_app(replay)
    blocks = lambda: [c for c in replay.calls if c[0] == "block"]  # noqa: E731
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert app.selected_flow == BULK
        await pilot.press("p")
        assert isinstance(app.screen, ConfirmScreen)
        await wait_until(pilot, lambda: "Block port 5201/tcp?" in screen_text(app), "the question on screen")
        assert "ssh 192.0.2.10:50022 -> 10.0.0.3:5201" in screen_text(app)
        await pilot.press("d", "h", "a", "q")       # nothing but y, n, esc, enter acts here
        assert isinstance(app.screen, ConfirmScreen) and app.is_running and replay.calls == []
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen) and blocks() == []
        assert app.notes[-1][:2] == ("warning", "not blocked") and "SSH" in app.notes[-1][2]
        for no in ("enter", "escape"):                  # the default answer is no
            await pilot.press("p", no)
            assert not isinstance(app.screen, ConfirmScreen) and blocks() == []
        await pilot.press("t", *"30", "enter", "p")       # the TTL set before the question is kept
        await pilot.press("y")
        assert blocks() == [("block", "port 5201/tcp", 30.0)]
        assert app.notes[-1][2].startswith("blocked port 5201/tcp for 30s")
        await next_tick(pilot, app)
        assert app.record(BULK).verdict == "drop"
        await pilot.press("a", "d")                     # the exact flow does not match the SSH flow: no question
        assert not isinstance(app.screen, ConfirmScreen)
        assert blocks()[-1] == ("block", "flow tcp 10.0.0.2:45678 10.0.0.3:5201", None)


def _routes_going_away(recording) -> list[Snapshot]:
    """Frames of the demo where the routes go one by one (with the session's "error" events),
    then the flows expire: a session whose namespace was deleted under it."""
    first, later = recording[30], recording[31:36]
    gone = [dataclasses.replace(later[0], routes=first.routes[1:], events=[EventEntry(
                later[0].time, "error", "10.0.0.3/32 (out) in lwtui-demo-a: route gone (already restored); "
                "no longer watched, 3 route(s) left")])]
    gone.append(dataclasses.replace(later[1], routes=[], events=[EventEntry(
        later[1].time, "error", f"{r.prefix} ({r.hook}) in lwtui-demo-a: namespace gone (nothing to restore); "
        f"no longer watched, {n} route(s) left") for n, r in reversed(list(enumerate(first.routes[1:])))]))
    gone += [dataclasses.replace(s, routes=[], events=[]) for s in later[2:4]]
    return [first] + gone + [dataclasses.replace(later[4], routes=[], flows=[], events=[])]


async def test_routes_going_away_are_errors_and_the_end_says_press_q(recording):
    app = make_app(ReplaySession(_routes_going_away(recording)))
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        assert "10.0.0.3/32 out,xmit" in screen_text(app) and app.errors == []
        await next_tick(pilot, app)                     # the out route went away
        text = screen_text(app)
        assert "10.0.0.3/32 xmit" in text and "out,xmit" not in text
        assert "Events (1 error)" in text and "no routes attached" not in text
        assert app.notes[-1][:2] == ("error", "no longer watched") and "route gone" in app.notes[-1][2]
        await next_tick(pilot, app)                     # and then every other one
        text = screen_text(app)
        assert "no routes attached any more: press q" in text and "Events (4 errors)" in text
        severity, title, message = app.notes[-1]               # one notification for the three
        assert (severity, title) == ("error", "no routes attached any more: press q")
        assert message.count("namespace gone") == 3 and message.count("\n") == 2
        assert [n[1] for n in app.notes].count("no longer watched") == 1
        assert app.flow_ids, "the flows seen so far stay on screen until they expire"
        await next_tick(pilot, app)
        assert [n[1] for n in app.notes].count(title) == 1, "said once, not every tick"
        await pilot.press("e")
        log = app.event_log
        assert [e.kind for e in log.entries].count("error") == 4
        assert any("ERROR" in str(line.text) for line in log.lines)
        await pilot.press("e")
        for _ in range(2):                              # the flows expired too: the empty state says it
            await next_tick(pilot, app)
        assert app.query_one(EmptyState).display
        text = screen_text(app)
        assert "No routes attached any more: press q." in text and "No traffic yet" not in text
        assert "2001:db8::3/128 (out) in lwtui-demo-a: namespace gone" in text
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")
    assert app.return_code == 0


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


def test_tcp_flags_read_in_handshake_order(recording):
    from lwtui.ui.cells import flags_text
    tcp = next(f.id for f in recording[-1].flows if f.id.proto == 6)
    assert flags_text(tcp, 0xFF) == "SAPFRUEC"
    assert flags_text(tcp, 0x13, long=True) == "SYN ACK FIN"
    assert flags_text(tcp, 0) == "none"
