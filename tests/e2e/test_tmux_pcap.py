"""The real dashboard in a real terminal with --pcap: the header names the file while it is
written, and after q tcpdump reads back exactly the datagrams the test sent into a block."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from tests.e2e.test_dashboard_exits import START_TIMEOUT, _exit_status, quit_lifting
from tests.e2e.test_evidence import packets
from tests.e2e.test_tmux import all_of, tmux  # noqa: F401 (tmux is a fixture)
from tests.e2e.traffic import udp_send


def test_the_dashboard_records_drops_to_its_pcap_file(topo, tmux, tmp_path, route_dump):
    cli, srv, n = topo.client_v4, topo.server_v4, 6
    short = Path(tempfile.mkdtemp(prefix="lwtui-p", dir="/tmp"))    # a path the header shows whole
    try:
        pcap = short / "d.pcap"
        rules = tmp_path / "block.rules"
        rules.write_text("port 5353/udp\n")
        before = route_dump(topo.client_ns)
        tmux.start(f"exec {sys.executable} -m lwtui {srv}/32 --netns {topo.client_ns} --interval 0.5 "
                   f"--session {tmux.name} --pcap {pcap} --rules {rules}")
        tmux.wait(all_of(f"routes {srv}/32 out", "● REC", f"{pcap} 0 pkts"), "the dashboard, recording",
                  timeout=START_TIMEOUT)
        sport, sent = udp_send(topo.client_ns, srv, 5353, n, 100, sport=40501)
        assert sent == 0                                   # all dropped
        tmux.wait(all_of(f"{pcap} {n} pkts"), "the header's count")
        quit_lifting(tmux, "Quit and lift 1 active rule?")
        assert f"{n} packet(s) recorded in {pcap}" in tmux.screen()
        assert route_dump(topo.client_ns) == before
        assert [p[1:] for p in packets(pcap)] == [(cli, sport, srv, 5353)] * n
    finally:
        shutil.rmtree(short, ignore_errors=True)


def test_the_dashboard_refuses_an_unwritable_pcap_path_before_attaching(topo, tmux, route_dump):
    srv = topo.server_v4
    before = route_dump(topo.client_ns)
    tmux.start(f"{sys.executable} -m lwtui {srv}/32 --netns {topo.client_ns} --session {tmux.name} "
               f"--pcap /nonexistent-lwtui-dir/d.pcap")
    assert _exit_status(tmux) == "exit 2", tmux.screen()
    # The pane's history too: a command that ends at once prints before tmux sizes the pane.
    text = tmux._tmux("capture-pane", "-p", "-J", "-S", "-", "-t", tmux.name)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("Pane is dead")]
    assert lines == ["lwtui: cannot write the --pcap file /nonexistent-lwtui-dir/d.pcap (No such file or directory): "
                     "give a path in a directory you can write to"], lines
    assert route_dump(topo.client_ns) == before
