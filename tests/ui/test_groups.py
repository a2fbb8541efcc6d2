"""Pilot tests: v groups the flows by remote host, by port, by process, and back; every
number in the groups view checked against the recording's own flows."""

from __future__ import annotations

from rich.text import Text

from lwtui.core.units import fmt_bits, fmt_bytes, fmt_count
from lwtui.ui.groupsview import GroupsTable

from .conftest import SIZE, make_app, next_tick, screen_text, started
from .scenarios import open_groups


def cells(table: GroupsTable, key: str) -> dict[str, str]:
    row = table.get_row(key)
    names = [c.key.value for c in table.ordered_columns]
    return {k: (v.plain if isinstance(v, Text) else str(v)).strip() for k, v in zip(names, row)}


def remote(flow) -> str:
    return str(flow.src if flow.hook == "in" else flow.dst)


async def test_v_cycles_hosts_ports_processes_and_the_numbers_are_the_flows_sums(replay, recording):
    app = make_app(replay)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot, app)
        await open_groups(pilot)            # booked from the refresh it asks for on, while the view is open
        assert app.view == "groups" and app.group_kind == "host"
        first = replay.frame - 1
        for _ in range(5):
            await next_tick(pilot, app)
        last = replay.frame - 1
        frame, base2 = recording[last], recording[last - 2]
        table = app.query_one(GroupsTable)
        assert "By remote host: 2 hosts · v: by port" in screen_text(app)
        hosts: dict[str, list] = {}
        for f in frame.flows:
            h = hosts.setdefault(remote(f.id), [0, 0, 0, 0.0])
            h[0] += 1
            h[1] += f.packets
            h[2] += f.bytes
            h[3] += f.bps
        assert [r.value for r in table.rows] == sorted(hosts, key=lambda k: -hosts[k][3])
        for key, (n, packets, nbytes, bps) in hosts.items():
            c = cells(table, key)
            assert (c["flows"], c["pkts"], c["bytes"], c["rate"]) == (
                fmt_count(n), fmt_count(packets), fmt_bytes(nbytes), fmt_bits(bps)), key

        await pilot.press("v")
        assert app.group_kind == "port" and "By port: 7 ports · v: by process" in screen_text(app)
        iperf = next(f for f in frame.flows if f.id.dport == 5201)        # one flow, there all along
        before = {f.id: f for f in recording[first].flows}[iperf.id]
        two = {f.id: f for f in base2.flows}[iperf.id]
        avg2 = 8 * (iperf.bytes - two.bytes) / (frame.time - base2.time)
        avg10 = 8 * (iperf.bytes - before.bytes) / (frame.time - recording[first].time)   # younger than 10 s
        c = cells(table, "5201/tcp")
        assert c["key"] in ("5201/tcp", "5201/tcp targus-getdata1")        # as /etc/services names it
        assert (c["flows"], c["avg2"], c["avg10"], c["avg40"]) == ("1", fmt_bits(avg2), fmt_bits(avg10),
                                                                   fmt_bits(avg10))
        assert cells(table, "8080/tcp")["key"] == "8080/tcp http-alt"

        await pilot.press("v")
        assert app.group_kind == "process" and "By process: 1 process · v: the flows" in screen_text(app)
        assert cells(table, "unknown")["flows"] == fmt_count(len(frame.flows))     # a recording has no owners
        await pilot.press("v")
        assert app.view == "flows"
        await pilot.press("v", "escape")
        assert app.view == "flows"
