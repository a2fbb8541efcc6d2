"""The dashboard on a live kernel session: `w` records the selected flow's dropped packets
(tcpdump reads them back: exactly that flow's, not another blocked flow's), and the
process column names the sender (the process names itself; its pid is its own report)."""

from __future__ import annotations

import asyncio
import subprocess

from lwtui.ui.app import DashboardApp
from tests.e2e.cli import which
from tests.e2e.test_owners import start_proc, stop_proc
from tests.e2e.traffic import udp_send

from .conftest import screen_text
from .test_live import CLIENT, INTERVAL, SERVER, flow, run_app, start_session, within_refreshes  # noqa: F401


def tcpdump_lines(path: str) -> list[str]:
    r = subprocess.run([which("tcpdump"), "-r", path, "-nn"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_w_records_the_selected_flow_and_the_process_column_names_the_sender(topo, start_session):
    session = start_session()
    session.block("port 5353/udp")
    app = DashboardApp(session, interval=INTERVAL)
    cli = topo.client_ns
    target, other = flow(17, 40401, 5353), flow(17, 40402, 5353)

    async def scenario(pilot):
        assert await asyncio.to_thread(udp_send, cli, SERVER, 5353, 2, 100, 40401) == (40401, 0)   # EPERM: dropped
        await within_refreshes(pilot, app, lambda: app.record(target) is not None and app.record(target).drops == 2,
                               "the blocked flow")
        app.flow_table.move_cursor(app.flow_table.index_of(target))
        assert app.selected_flow == target
        await pilot.press("w")
        writer = app.recording
        assert writer is not None and app.notes[-1][1] == "recording" and writer.path in app.notes[-1][2]
        assert await asyncio.to_thread(udp_send, cli, SERVER, 5353, 3, 100, 40401) == (40401, 0)
        assert await asyncio.to_thread(udp_send, cli, SERVER, 5353, 4, 100, 40402) == (40402, 0)
        await within_refreshes(pilot, app, lambda: app.record(target).drops == 5 and app.record(other) is not None
                               and app.record(other).drops == 4, "both blocked flows")
        await within_refreshes(pilot, app, lambda: [r.packets for r in app.snapshot.recordings] == [3],
                               "the file's count")
        assert "● REC" in screen_text(app)              # header and detail pane
        await pilot.press("w")
        assert app.recording is None and app.notes[-1][1:] == ("recording stopped", f"3 packet(s) in {writer.path}")
        lines = tcpdump_lines(writer.path)
        assert len(lines) == 3 and all(f"IP {CLIENT}.40401 > {SERVER}.5353:" in line for line in lines), lines
        await within_refreshes(pilot, app, lambda: not app.snapshot.recordings, "the recording gone from the header")

        # The process column: the sender's command and pid (an allowed port: it keeps running).
        p, pid = await asyncio.to_thread(start_proc, cli, "lwtui-sender", 40403, SERVER, 5354, 2)
        try:
            sent = flow(17, 40403, 5354)
            await within_refreshes(pilot, app, lambda: app.record(sent) is not None and
                                   app.flow_table.cells_of(sent)["proc"].plain == f"lwtui-sender {pid}",
                                   "the sender's process", refreshes=10)
        finally:
            stop_proc(p)
        assert "proc" in [k for k, _ in app.flow_table._layout()]
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert "proc" not in [k for k, _ in app.flow_table._layout()]     # narrow: left out first

    run_app(app, scenario)
