"""ReplaySession and the recording format, and the UI's pure helpers
(selection, chart, mailbox), without a terminal."""

from __future__ import annotations

import pytest

from lwtui.core.model import EventEntry, Snapshot
from lwtui.session.replay import ReplaySession, load_recording, record_snapshots
from lwtui.core.units import bar_chart
from lwtui.ui.feed import Mailbox
from lwtui.ui.selection import SORTS, select_flows

from .conftest import DATA


def test_recording_round_trips(recording, tmp_path):
    path = record_snapshots(recording, tmp_path / "again.json")
    again = load_recording(path)
    assert again == recording
    assert {f.id.family for f in again[-1].flows} == {4, 6}
    assert {f.id.hook for f in again[-1].flows} == {"in", "out", "xmit"}


def test_load_recording_names_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not an lwtui recording"):
        load_recording(bad)
    bad.write_text('{"format": "lwtui-recording", "version": 99, "snapshots": []}')
    with pytest.raises(ValueError, match="version 99"):
        load_recording(bad)


def test_the_fixture_is_what_the_generator_makes(recording):
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_recording", DATA / "make_recording.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.build() == recording, "demo.json is stale: run tests/ui/data/make_recording.py"


def test_replay_serves_frames_then_holds_the_last(recording):
    r = ReplaySession(recording[:3])
    times = [r.snapshot().time for _ in range(5)]
    assert times == [recording[0].time, recording[1].time, recording[2].time, recording[2].time,
                     recording[2].time]


def test_replay_block_flips_verdicts_counts_drops_and_allow_lifts(recording):
    r = ReplaySession(recording, start=10)
    first = r.snapshot()
    bulk = max(first.flows, key=lambda f: f.bps)
    rule = r.block_flow(bulk.id, "port")
    assert rule.text == "port 5201/tcp"
    snap = r.snapshot()
    rec = next(f for f in snap.flows if f.id == bulk.id)
    grew = rec.packets - bulk.packets
    assert rec.verdict == "drop" and rec.rule == "port 5201/tcp" and rec.drops == grew > 0
    assert [e.kind for e in snap.events] == ["block"]
    (entry,) = snap.rules
    assert entry.kind == "port" and entry.hits == grew and entry.expires_in is None
    others = [f for f in snap.flows if f.id != bulk.id]
    assert all(f.verdict == "allow" for f in others)
    assert r.allow_flow(bulk.id)[0].text == "port 5201/tcp"
    after = r.snapshot()
    rec2 = next(f for f in after.flows if f.id == bulk.id)
    assert rec2.verdict == "allow" and rec2.drops == rec.drops and after.rules == []


def test_replay_ttl_expires_and_dry_run_says_would_drop(recording):
    r = ReplaySession(recording, start=5)
    r.snapshot()
    r.set_dry_run(True)
    r.block("host 10.0.0.3", ttl=2.5)
    s1 = r.snapshot()
    assert s1.dry_run and {f.verdict for f in s1.flows if f.id.family == 4} == {"would-drop"}
    assert s1.rules[0].expires_in == pytest.approx(1.5)
    r.snapshot()
    s3 = r.snapshot()                      # 3 s after the block: gone
    assert s3.rules == [] and "rule expired: host 10.0.0.3" in [e.text for e in s3.events]
    assert r.calls[:2] == [("set_dry_run", True), ("block", "host 10.0.0.3", 2.5)]


def test_replay_start_carries_the_skipped_events(recording):
    snap = ReplaySession(recording, start=20).snapshot()
    assert sum(e.kind == "new" for e in snap.events) == 11


def test_select_flows_filters_sorts_caps_and_keeps_ties_in_order(recording):
    from lwtui.core.filters import parse_filter
    snap = recording[-1]
    sel = select_flows(snap.flows, now=snap.time, sort=SORTS[0], limit=4)
    assert sel.total == sel.matched == 11 and len(sel.rows) == 4
    assert [r.bps for r in sel.rows] == sorted((r.bps for r in snap.flows), reverse=True)[:4]
    idle = select_flows(snap.flows, now=snap.time, sort=SORTS[0], expire_after=10.0)
    assert idle.matched == 9                 # the two flows quiet for 10 s and more are gone
    udp = select_flows(snap.flows, now=snap.time, sort=SORTS[0], flt=parse_filter("proto udp"))
    assert {r.id.proto for r in udp.rows} == {17} and udp.matched == 3
    zero = [r for r in snap.flows if r.bps == 0]
    assert len(zero) == 2
    for order in (zero, zero[::-1]):         # ties keep the session's order, capped or not
        mixed = order + [r for r in snap.flows if r.bps]
        full = select_flows(mixed, now=snap.time, sort=SORTS[0]).rows
        assert [r.id for r in full[-2:]] == [r.id for r in order]
        capped = select_flows(mixed * 3, now=snap.time, sort=SORTS[0], limit=4).rows   # heap path
        assert [r.id for r in capped] == [r.id for r in sorted(mixed * 3, key=SORTS[0].key)[:4]]


def test_bar_chart_scales_to_the_peak_and_shows_a_trickle():
    assert bar_chart([0, 1, 50, 100], width=6, height=2) == ["     █", "   ▁██"]
    assert bar_chart([5, 10], width=2, height=1, top=20) == ["▂▄"]
    assert bar_chart([], 3, 1) == ["   "]


def test_mailbox_posts_once_and_carries_events_over():
    box = Mailbox()
    first = _snap(1.0, ["a"])
    second = _snap(2.0, ["b"])
    assert box.put(first) is True
    assert box.put(second) is False           # the UI has not taken the first yet
    got = box.take()
    assert got.time == 2.0 and [e.text for e in got.events] == ["a", "b"]
    assert box.take() is None
    assert box.put(_snap(3.0, [])) is True


def _snap(t: float, texts: list[str]) -> Snapshot:
    return Snapshot(time=t, events=[EventEntry(time=t, kind="info", text=x) for x in texts])
