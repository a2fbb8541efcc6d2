"""The header and watch's table say when the session runs on a fallback path
(a kernel feature missing or hidden), and say nothing when none is taken."""

from __future__ import annotations

from lwtui.cli.watch import flow_table
from lwtui.core.model import Snapshot
from lwtui.ui.header import HeaderState, title_text


def test_the_header_names_the_fallbacks():
    snap = Snapshot(time=10.0, started=0.0, fallbacks=("coarse_clock", "batch"))
    assert " FALLBACK coarse_clock,batch " in title_text(HeaderState(snapshot=snap)).plain
    assert "FALLBACK" not in title_text(HeaderState(snapshot=Snapshot(time=10.0))).plain


def test_watch_table_title_names_the_fallbacks():
    snap = Snapshot(time=10.0, started=0.0, session="s", fallbacks=("gso_segs",))
    assert "FALLBACK gso_segs  " in str(flow_table(snap).title)
    assert "FALLBACK" not in str(flow_table(Snapshot(time=10.0, session="s")).title)


def test_a_recording_keeps_the_fallbacks():
    from lwtui.session.replay import snapshot_from_dict, snapshot_to_dict
    snap = Snapshot(time=1.0, fallbacks=("ringbuf",))
    assert snapshot_from_dict(snapshot_to_dict(snap)).fallbacks == ("ringbuf",)
    assert snapshot_from_dict({"time": 1.0}).fallbacks == ()      # recordings made before
