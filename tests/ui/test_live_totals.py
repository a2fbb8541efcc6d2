"""The header's totals and the rule named for a drop, on a live kernel session, against
what the test sent: a packet crossing two hooks of one route counts once in the header
(each hook's row keeps its own figures); lost events count once (the kernel's failed
outputs and the perf reader's lost callback report the same losses); a dropped flow's
rule is of the kind the kernel judged its last packet by; past the events listed one by
one a second, the rest are counted in one line, and the table still has every flow.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from dataclasses import replace

from lwtui.core.units import fmt_count
from lwtui.ui.app import DashboardApp
from tests.e2e.test_storm import STORM
from tests.e2e.traffic import PacedUdp, nsrun

from .conftest import screen_text
from .test_live import (RATE, SERVER, UDP, UDP_PORT, cell, header_figure, near, number, run_app,  # noqa: F401
                        start_session, udp_from, while_sending, within_refreshes)  # (start_session: a fixture)


def test_one_route_at_out_and_xmit_shows_each_packet_once_in_the_header(topo, start_session):
    session = start_session(hooks=("out", "xmit"))
    app = DashboardApp(session, interval=0.5)
    out, xmit, n = UDP, replace(UDP, hook="xmit"), 6 * RATE

    async def scenario(pilot):
        with PacedUdp(topo.client_ns, SERVER, UDP_PORT, n, RATE, sport=UDP.sport) as tx:
            seen = await while_sending(pilot, app, tx, lambda: (
                number(cell(app, "pps", out)), number(cell(app, "pps", xmit)), header_figure(app, "pkts/s")))
            sent, _ = await asyncio.to_thread(tx.result)
        assert sent == n and len(seen) >= 8, seen
        # Each hook's row counts every packet; the header counts each packet once.
        assert all(near(o, RATE) and near(x, RATE) for o, x, _ in seen[1:]), seen
        assert all(near(head, RATE) for *_, head in seen[1:]), seen
        await within_refreshes(pilot, app, lambda: app.record(out).packets == app.record(xmit).packets == n,
                               "every datagram at both hooks")
        assert app.snapshot.totals.packets == n
        await pilot.press("q")

    run_app(app, scenario)


FLOOD = 12_000      # new flows, one datagram each: more new-flow events than the perf buffer holds
CPU = str(min(os.sched_getaffinity(0)))


def new_flows(ns: str, n: int) -> int:
    """n new UDP flows (one datagram each) from one socket on one CPU, whose perf buffer
    takes their events; returns how many were sent."""
    r = nsrun(ns, ["taskset", "-c", CPU, sys.executable, "-c", STORM, SERVER, "1", str(n), "30"], timeout=60)
    sent, errors = map(int, r.stdout.split())
    assert errors == 0, r.stdout
    return sent


def arrived(events) -> int:
    """New-flow events among a drained log's entries (those the full log dropped included, and
    those past the events listed one by one a second, which one line counts)."""
    listed = sum(e.kind == "new" and e.flow is not None for e in events)
    counted = sum(int(e.text.split()[1].replace(",", "")) for e in events
                  if e.kind == "new" and e.flow is None and e.text.startswith("and "))
    return listed + counted + sum(
        int(e.text.split()[0]) for e in events if e.kind == "lost" and "log entries dropped" in e.text)


def test_lost_events_are_shown_once(topo, start_session):
    """A burst of new flows while nobody reads the events: the header's events lost is what
    was sent less the new-flow events that arrived, also once the reader's lost callback
    has reported the same losses (the kernel writes its loss record with the next event)."""
    session = start_session()
    session.snapshot()                                        # the log's own entries out of the way
    assert new_flows(topo.client_ns, FLOOD) == FLOOD
    session.poll_events(0)                                    # drains the buffer
    lost = FLOOD - arrived(session.snapshot().events)
    assert lost > 0 and (session.snapshot().totals.events_failed, session.reader_lost) == (lost, 0)
    assert new_flows(topo.client_ns, 1) == 1                  # its event comes after the loss record
    session.poll_events(0)
    assert arrived(session.snapshot().events) == 1
    totals = session.snapshot().totals
    assert (totals.events_failed, session.reader_lost, totals.new_flows) == (lost, lost, FLOOD + 1)
    app = DashboardApp(session, interval=0.5)

    async def scenario(pilot):
        line = next(x for x in screen_text(app).splitlines() if "pkts/s" in x)
        shown = re.search(r"([\d.]+[kMG]?) events lost", line)
        assert shown and shown.group(1) == fmt_count(lost), (lost, line)
        await pilot.press("q")

    run_app(app, scenario)


def test_the_rule_named_is_of_the_kind_the_kernel_judged_by(topo, start_session):
    """A flow dropped by a port rule, then a host rule that comes first in the kernel's order:
    until the flow's next packet its verdict is still the port rule's, and that rule is named."""
    session = start_session()
    session.block(f"port {UDP_PORT}/udp")
    assert udp_from(topo.client_ns, 5) == 0                   # every send refused (EPERM): dropped
    session.block(f"host {SERVER}")
    rec = next(r for r in session.snapshot().flows if r.id == UDP)
    assert (rec.verdict, rec.rule, rec.drops) == ("drop", f"port {UDP_PORT}/udp", 5)
    assert udp_from(topo.client_ns, 5) == 0                   # judged again: the host rule now
    rec = next(r for r in session.snapshot().flows if r.id == UDP)
    assert (rec.verdict, rec.rule, rec.drops) == ("drop", f"host {SERVER}", 10)


PACED_FLOWS = """
import socket, sys, time
dst, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
for i in range(n):
    s.sendto(b"storm", (dst, 1024 + i))
    ahead = start + (i + 1) / rate - time.monotonic()
    if ahead > 0.005:
        time.sleep(ahead)
print(n)
"""


def test_a_storm_of_events_is_counted_past_the_ones_listed(topo, start_session):
    """New flows at 1.5 times EVENTS_LISTED a second for two seconds, read as they come and
    refreshed every 0.1 s: past that many events in a second the rest are counted, one log
    line per refresh, not a flow table entry and a line each. Every event that arrived is
    listed or counted, and every flow sent is in the table (the map read finds them)."""
    import threading
    from lwtui.session.reading import EVENTS_LISTED
    session = start_session()
    session.snapshot()                                        # the log's own entries out of the way
    stop, events = threading.Event(), []

    def read():
        while not stop.is_set():
            session.poll_events(20)

    def refresh():
        while not stop.wait(0.1):
            events.extend(session.snapshot().events)

    threads = [threading.Thread(target=read), threading.Thread(target=refresh)]
    for t in threads:
        t.start()
    n = 3 * EVENTS_LISTED
    try:
        r = nsrun(topo.client_ns, ["taskset", "-c", CPU, sys.executable, "-c", PACED_FLOWS, SERVER, str(n),
                                   str(1.5 * EVENTS_LISTED)], timeout=60)
        assert int(r.stdout) == n
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    session.poll_events(0)
    snap = session.snapshot()
    events.extend(snap.events)
    assert not [e.text for e in events if e.kind == "lost"], "a refresh every 0.1 s keeps every line"
    listed = sum(e.kind == "new" and e.flow is not None for e in events)
    lines = [e.text for e in events if e.kind == "new" and e.flow is None]
    counted = sum(int(t.split()[1].replace(",", "")) for t in lines)
    assert lines and all(t.startswith("and ") for t in lines), lines
    assert EVENTS_LISTED <= listed <= 3 * EVENTS_LISTED - counted and counted >= EVENTS_LISTED // 2, (
        listed, counted)
    assert listed + counted == n - snap.totals.events_failed and snap.totals.new_flows == n
    udp = {r.id.dport for r in snap.flows if r.id.proto == 17 and r.packets == 1}
    assert udp >= set(range(1024, 1024 + n)), len(udp)       # the map read found every flow
