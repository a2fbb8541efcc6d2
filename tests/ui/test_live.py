"""The dashboard on a live kernel session: Pilot presses real keys while real
packets cross two namespaces, and the kernel (curl, UDP sockets, `ip -j -d
route`) says whether the keys did what they claim.

The session watches the client namespace's route to 10.0.0.3/32 at `out`, so
each connection shows as one flow, client -> server. Every flow the test makes
has a fixed source port, so the test knows each flow's exact id and counts.

Session.start() runs in the sync test body (pyroute2 refuses to run inside an
event loop); only the Pilot part runs in asyncio.run(). Blocking traffic runs
in a thread (asyncio.to_thread) so the app keeps refreshing meanwhile.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import time

import pytest

from lwtui.core.model import FlowId
from lwtui.core.units import fmt_count
from lwtui.net.routes import Target
from lwtui.session.live import Session
from lwtui.ui.app import DashboardApp
from lwtui.ui.dialogs import FilterBar
from tests.e2e.traffic import PacedUdp, curl, http_server, udp_send

from .conftest import SIZE, screen_text, wait_until

SERVER = "10.0.0.3"
CLIENT = "10.0.0.2"
INTERVAL = 0.3
UDP_PORT, UDP_SPORT = 5353, 40053
HTTP_FIRST, HTTP_BLOCKED, HTTP_AFTER = 40080, 40081, 40082

def flow(proto: int, sport: int, dport: int) -> FlowId:
    return FlowId("out", proto, ipaddress.ip_address(CLIENT), sport, ipaddress.ip_address(SERVER), dport)


UDP = flow(17, UDP_SPORT, UDP_PORT)
RATE = 50                     # datagrams/s of the paced sender
SIZE_UDP = 100 + 28           # bytes of one of its datagrams on the wire
_SI = {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}


def udp_from(ns: str, n: int, size: int = 100) -> int:
    """n datagrams from CLIENT:UDP_SPORT (always the same flow); returns how many the socket sent."""
    return udp_send(ns, SERVER, UDP_PORT, n, size, sport=UDP_SPORT)[1]


def curl_from(ns: str, url: str, local_port: int, timeout: float = 2.0) -> bool:
    """One GET from a fixed local port; True when it returned 200 within `timeout`."""
    return curl(ns, url, timeout=timeout, local_port=local_port)


@pytest.fixture
def web(topo, tmp_path):
    """An HTTP server on SERVER:8080 in the server namespace; yields the URL."""
    (tmp_path / "index.html").write_text("hello\n")
    with http_server(topo.server_ns, SERVER, 8080, str(tmp_path)):
        yield f"http://{SERVER}:8080/index.html"


@pytest.fixture
def start_session(topo):
    """start_session() -> a started Session on SERVER/32 (out, or the given hooks) in the client
    namespace; closed at the end."""
    sessions = []

    def start(hooks=("out",), **kw) -> Session:
        s = Session([Target(prefix=f"{SERVER}/32", hook=h, netns=topo.client_ns) for h in hooks],
                    name=f"lwtui-test-{os.getpid()}-{len(sessions)}", **kw)
        sessions.append(s)
        s.start()
        return s

    yield start
    for s in sessions:
        s.close()


async def within_refreshes(pilot, app, condition, what: str, refreshes: int = 3, timeout: float = 10.0) -> None:
    """Wait until condition() holds, failing when `refreshes` snapshots (or `timeout` s) passed without it."""
    first, deadline = app.ticks, time.monotonic() + timeout
    while not condition():
        if app.ticks - first > refreshes or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not shown after {app.ticks - first} refreshes "
                                 f"({time.monotonic() - deadline + timeout:.1f} s)")
        await pilot.pause(0.05)


def run_app(app: DashboardApp, scenario) -> None:
    """Run `scenario(pilot)` in the app under Pilot, then stop its workers (as run_dashboard does)."""
    async def main():
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.ticks >= 1, "the first snapshot", timeout=10)
            await scenario(pilot)
    try:
        asyncio.run(main())
    finally:
        assert app.stop_feed(timeout=3.0), "the tick and event threads did not end"


def test_filter_block_port_allow_and_quit_on_live_traffic(topo, web, start_session, route_dump):
    before = route_dump(topo.client_ns)
    session = start_session()
    attached = route_dump(topo.client_ns)
    assert attached != before and "lwtui_out" in attached, "the session did not attach its program"
    app = DashboardApp(session, interval=INTERVAL)
    cli = topo.client_ns
    http = flow(6, HTTP_FIRST, 8080)
    blocked = flow(6, HTTP_BLOCKED, 8080)
    after = flow(6, HTTP_AFTER, 8080)

    async def scenario(pilot):
        # Traffic appears: one HTTP GET and 20 datagrams, each one flow.
        assert await asyncio.to_thread(curl_from, cli, web, HTTP_FIRST)
        assert await asyncio.to_thread(udp_from, cli, 20) == 20
        await within_refreshes(pilot, app, lambda: app.record(http) is not None and app.record(UDP) is not None
                               and app.record(UDP).packets == 20, "the HTTP and UDP flows")
        assert set(app.flow_ids) == {http, UDP}
        assert app.record(http).packets >= 4 and app.record(http).verdict == "allow"   # SYN, ACK, GET, FIN...

        # `/` + a filter + Enter narrows the table to the HTTP flow.
        await pilot.press("slash", *"port 8080", "enter")
        assert not app.query_one(FilterBar).display
        assert app.flow_ids == [http] and app.selected_flow == http

        # `p` on it blocks the service port: a new connection fails in the kernel.
        await pilot.press("p")
        assert app.notes[-1][2].startswith("blocked port 8080/tcp"), app.notes[-1]
        assert [r.text for r in session.rules()] == ["port 8080/tcp"]
        assert not await asyncio.to_thread(curl_from, cli, web, HTTP_BLOCKED, 1.5)
        await within_refreshes(pilot, app, lambda: app.record(blocked) is not None and app.record(blocked).drops >= 1,
                               "the blocked connection's drops")
        rec = app.record(blocked)
        assert (rec.verdict, rec.rule) == ("drop", "port 8080/tcp") and rec.packets == rec.drops   # SYNs only
        # Verdicts are the kernel's: it judged none of the first flow's packets under the rule.
        assert app.flow_table.cells_of(app.selected_flow)["v"].plain == "●"
        assert app.flow_table.cells_of(blocked)["v"].plain == "×"
        assert set(app.flow_ids) == {http, blocked}                                   # UDP is filtered out

        # The UDP flow keeps counting: exactly what was sent after the block.
        await pilot.press("slash", "ctrl+u", "enter")
        assert set(app.flow_ids) == {http, blocked, UDP}
        assert app.selected_flow == http                    # the cursor stayed on its flow
        assert await asyncio.to_thread(udp_from, cli, 15) == 15
        await within_refreshes(pilot, app, lambda: app.record(UDP).packets == 35, "the UDP flow at 35 packets")
        assert app.record(UDP).verdict == "allow" and app.record(UDP).drops == 0

        # `a` lifts the rule: connections work again.
        await pilot.press("a")
        assert app.notes[-1][2] == "allowed again: lifted port 8080/tcp", app.notes[-1]
        assert session.rules() == []
        assert await asyncio.to_thread(curl_from, cli, web, HTTP_AFTER)
        await within_refreshes(pilot, app, lambda: app.record(after) is not None and app.record(after).packets >= 4,
                               "the connection after allow")
        assert app.record(after).verdict == "allow" and app.record(after).drops == 0
        assert app.record(http).verdict == "allow"

        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")

    run_app(app, scenario)
    assert app.return_code == 0
    statuses = session.close()                               # as the CLI does after run_dashboard
    assert statuses == [f"{SERVER}/32 (out): restored"]
    assert route_dump(topo.client_ns) == before


def test_dry_run_key_counts_would_drops_and_lets_traffic_through(topo, web, start_session, route_dump):
    before = route_dump(topo.client_ns)
    session = start_session()
    app = DashboardApp(session, interval=INTERVAL)
    cli = topo.client_ns
    http = flow(6, HTTP_FIRST, 8080)
    second = flow(6, HTTP_BLOCKED, 8080)

    async def scenario(pilot):
        assert await asyncio.to_thread(curl_from, cli, web, HTTP_FIRST)
        await within_refreshes(pilot, app, lambda: app.record(http) is not None, "the HTTP flow")
        await pilot.press("D")
        assert session.dry_run
        await pilot.press("p")
        assert "dry-run" in app.notes[-1][2]
        assert await asyncio.to_thread(curl_from, cli, web, HTTP_BLOCKED)      # nothing is dropped
        await within_refreshes(pilot, app, lambda: app.record(second) is not None and app.record(second).would_drops >= 4,
                               "the would-drops of the second connection")
        rec = app.record(second)
        assert rec.verdict == "would-drop" and rec.would_drops == rec.packets and rec.drops == 0
        assert app.snapshot.totals.would_drops >= rec.would_drops and app.snapshot.totals.drops == 0
        await pilot.press("D")                                                # MONITOR: drops again
        assert not session.dry_run
        assert not await asyncio.to_thread(curl_from, cli, web, HTTP_AFTER, 1.5)
        await pilot.press("a")
        assert session.rules() == []
        await pilot.press("q")
        await wait_until(pilot, lambda: not app.is_running, "the app to exit")

    run_app(app, scenario)
    session.close()
    assert route_dump(topo.client_ns) == before


# -- numbers on screen against a sender at a known rate -----------------------------------

def number(text: str) -> float:
    """'49.8/s', '1.2k', '51 kb/s' -> the figure (b/s units are bits)."""
    m = re.match(r"\s*([\d.]+)\s*([kMG]?)", text)
    assert m, f"no number in {text!r}"
    return float(m.group(1)) * _SI[m.group(2)]


def cell(app, column: str, f: FlowId = UDP) -> str:
    return app.flow_table.cells_of(f)[column].plain


def header_figure(app, label: str) -> float:
    """A figure of the header's totals line, as the terminal shows it."""
    line = next(x for x in screen_text(app).splitlines() if "pkts/s" in x)
    m = re.search(r"([\d.]+[kMG]?) ?" + re.escape(label), line)
    assert m, f"no {label!r} in the header line {line!r}"
    return number(m.group(1))


def near(value: float, expected: float, rel: float = 0.15) -> bool:
    return abs(value - expected) <= rel * expected


async def while_sending(pilot, app, tx: PacedUdp, read, f: FlowId = UDP) -> list:
    """read() after each snapshot applied while the sender runs (and f is shown); the readings."""
    seen, readings = app.ticks, []
    while tx.proc.poll() is None:
        await pilot.pause(0.05)
        if app.ticks != seen and app.record(f) is not None:
            seen = app.ticks
            readings.append(read())
    return readings


def test_rates_on_screen_are_the_senders_from_the_second_refresh_then_zero(topo, start_session):
    session = start_session()
    interval = 0.5
    app = DashboardApp(session, interval=interval)

    async def scenario(pilot):
        with PacedUdp(topo.client_ns, SERVER, UDP_PORT, 6 * RATE, RATE, sport=UDP_SPORT) as tx:
            seen = await while_sending(pilot, app, tx, lambda: (
                number(cell(app, "pps")), number(cell(app, "bps")), header_figure(app, "pkts/s")))
            sent, _ = await asyncio.to_thread(tx.result)
        assert sent == 6 * RATE and len(seen) >= 8, seen
        assert all(near(pps, RATE) for pps, *_ in seen[1:]), seen           # from the second refresh on
        assert all(near(bps, RATE * SIZE_UDP * 8) for _, bps, *_ in seen[1:]), seen
        # The header and the row agree (the kernel's totals are read just after the flows:
        # a packet in between is 2/s at the second refresh).
        assert all(abs(pps - head) <= 0.05 * RATE for pps, _, head in seen[1:]), seen
        # Stopped: the row and the header read 0 within the window (3 s).
        await within_refreshes(pilot, app, lambda: cell(app, "pps") == "0/s", "0/s on the row",
                               refreshes=int(3 / interval) + 3)
        assert cell(app, "bps") == "0 b/s" and header_figure(app, "pkts/s") == 0
        assert app.record(UDP).packets == 6 * RATE
        await pilot.press("q")

    run_app(app, scenario)


def test_dry_run_and_drops_on_screen_are_apart(topo, start_session):
    session = start_session()
    app = DashboardApp(session, interval=0.5)
    cli, n = topo.client_ns, 3 * RATE
    would, dropped = flow(17, UDP_SPORT + 1, UDP_PORT), flow(17, UDP_SPORT + 2, UDP_PORT)

    async def paced(pilot, f: FlowId, read):
        """A new flow f at RATE for n datagrams; (datagrams sent, readings while sending)."""
        with PacedUdp(cli, SERVER, UDP_PORT, n, RATE, sport=f.sport) as tx:
            seen = await while_sending(pilot, app, tx, read, f)
            sent, _ = await asyncio.to_thread(tx.result)
        await within_refreshes(pilot, app, lambda: app.record(f).packets == n, "every datagram")
        return sent, seen

    async def scenario(pilot):
        assert await asyncio.to_thread(udp_from, cli, 10) == 10
        await within_refreshes(pilot, app, lambda: app.record(UDP) is not None, "the UDP flow")
        await pilot.press("D", "slash", *"port 5353", "enter", "p")         # dry-run, then block its port
        assert [r.text for r in session.rules()] == ["port 5353/udp"] and session.dry_run
        sent, seen = await paced(pilot, would, lambda: (
            number(cell(app, "pps", would)), number(cell(app, "drops", would)),
            header_figure(app, "drops/s"), header_figure(app, "would-drops/s")))
        assert sent == n                                                # nothing dropped: every send went out
        assert len(seen) >= 4 and all(near(pps, RATE) and near(w, RATE) for pps, w, *_ in seen[1:]), seen
        # The header's totals: no drops; would-drops as on the row (the flow's, from its first packet).
        assert all(drops == 0 and near(w, RATE) for *_, drops, w in seen[1:]), seen
        label = app.flow_table.column_label("drops")
        assert label.startswith("would/s")
        rec = app.record(would)
        assert (rec.drops, rec.would_drops, rec.verdict, rec.rule) == (0, n, "would-drop", "port 5353/udp")
        await pilot.press("slash", "ctrl+u", *f"port {would.sport}", "enter")   # its detail pane
        assert app.selected_flow == would
        info = str(app.query_one("#detail-info").render())
        assert f"0 dropped   {n} would-drop" in info, info

        await pilot.press("D", "slash", "ctrl+u", *f"port {dropped.sport}", "enter")   # MONITOR: the rule drops
        assert not session.dry_run
        sent, seen = await paced(pilot, dropped, lambda: (
            cell(app, "pps", dropped), cell(app, "bps", dropped), number(cell(app, "drops", dropped)),
            header_figure(app, "drops/s")))
        assert sent == 0                                                # every send refused (EPERM)
        assert len(seen) >= 4 and all(pps == "0/s" and bps == "0 b/s" for pps, bps, *_ in seen), seen
        assert all(near(drops, RATE) and near(head, RATE) for *_, drops, head in seen[1:]), seen
        rec = app.record(dropped)
        assert (rec.drops, rec.would_drops, rec.verdict, rec.rule) == (n, 0, "drop", "port 5353/udp")
        assert app.selected_flow == dropped
        info = str(app.query_one("#detail-info").render())
        assert f"{n} dropped" in info and "would-drop" not in info, info
        chart = app.query_one("#detail-chart").render()
        assert any("red" in str(span.style) for span in chart.spans)   # the chart marks the drops
        await pilot.press("r")                                          # the rules view: hits apart
        rules = app.query_one("#rules-table")
        await within_refreshes(pilot, app, lambda: rules.get_cell("port 5353/udp", "drops").plain == str(n),
                               "the rule's drops")
        assert rules.get_cell("port 5353/udp", "would").plain == str(n)
        assert rules.get_cell("port 5353/udp", "hits").plain == fmt_count(2 * n)    # every packet it matched
        await pilot.press("q")

    run_app(app, scenario)


def test_a_dry_run_switch_books_what_came_before_it_under_dry_run(topo, start_session):
    """The kernel counts drops and would-drops in one counter per flow and per rule: the
    packets before a switch are would-drops even when no refresh came in between."""
    session = start_session(dry_run=True)
    session.block("port 5353/udp")
    session.snapshot()
    assert udp_from(topo.client_ns, 30) == 30           # dry-run: every datagram goes out
    session.set_dry_run(False)                          # no snapshot since they were counted
    assert udp_from(topo.client_ns, 20) == 0            # dropped: every send refused (EPERM)
    snap = session.snapshot()
    rec = next(r for r in snap.flows if r.id == UDP)
    assert (rec.packets, rec.would_drops, rec.drops, rec.verdict) == (50, 30, 20, "drop")
    assert [(r.text, r.would_drops, r.drops) for r in snap.rules] == [("port 5353/udp", 30, 20)]
    assert (snap.totals.would_drops, snap.totals.drops) == (30, 20)
