"""Packet capture in the real programs (BPF_PROG_TEST_RUN): dropped and would-drop packets'
first bytes reach the `captures` perf buffer only while capture is on, exactly as sent,
at most the configured number a second per CPU, the rest counted.

Both event transports: with a ring buffer for events, captures still use their own perf buffer.
"""

from __future__ import annotations

import ctypes as ct
import time

import packets as P
import pytest
from conftest import _build, _reset
from kutil import BPF_DROP, BPF_OK, add_rule, flow_key, key_tuple, run, want
from lwtui.kernel import kstructs

A, B = "10.0.0.2", "10.0.0.3"
A6, B6 = "2001:db8::2", "2001:db8::3"


@pytest.fixture(scope="module", params=["perf", "ringbuf"])
def capture_probe(request):
    p = _build(events=request.param)
    p.events, p.captures, p.cap_lost = [], [], []
    p.open_events(p.events.append, lambda n: None)
    p.open_captures(lambda rec, data: p.captures.append((rec, data)), p.cap_lost.append)
    yield p
    p.close()


@pytest.fixture
def cap(capture_probe):
    _reset(capture_probe)
    capture_probe.set_capture(0)
    capture_probe._live()[b"capture_window"].clearitem(ct.c_int(0))   # every CPU's rate window starts afresh
    capture_probe.poll_events(0)
    capture_probe.captures.clear()
    capture_probe.cap_lost.clear()
    capture_probe.base = capture_probe.read_capture_stats()
    return capture_probe


def drain(probe, n: int, deadline_s: float = 5.0) -> list:
    """Poll until n captures arrived (or the deadline), then once more for any extra."""
    end = time.monotonic() + deadline_s
    while len(probe.captures) < n and time.monotonic() < end:
        probe.poll_events(50)
    probe.poll_events(20)
    return list(probe.captures)


def stats(probe) -> dict:
    now = probe.read_capture_stats()
    return {k: now[k] - probe.base[k] for k in now}


def test_off_by_default_nothing_is_sent(cap):
    add_rule(cap, flow_key(A, B, P.UDP, 1, 2))
    for _ in range(3):
        assert run(cap, "out", P.packet(4, P.UDP, A, B, 1, 2, payload=b"x" * 100)) == BPF_DROP
    assert drain(cap, 1, 0.2) == [] and stats(cap) == {"sent": 0, "limited": 0, "failed": 0}
    assert cap.get_config().capture == 0


@pytest.mark.parametrize("family", [4, 6])
def test_dropped_packets_arrive_cut_at_the_snaplen_with_their_length(cap, family):
    src, dst = (A, B) if family == 4 else (A6, B6)
    add_rule(cap, flow_key(src, dst, P.UDP, 1, 2))
    cap.set_capture(64)
    frame = P.packet(family, P.UDP, src, dst, 1, 2, payload=bytes(range(100)))
    allowed = P.packet(family, P.UDP, src, dst, 3, 4, payload=b"y" * 100)
    before = time.monotonic_ns()
    for _ in range(3):
        assert run(cap, "out", frame) == BPF_DROP
        assert run(cap, "out", allowed) == BPF_OK          # never captured
    after = time.monotonic_ns()
    got = drain(cap, 3)
    assert len(got) == 3 and stats(cap) == {"sent": 3, "limited": 0, "failed": 0}
    for rec, data in got:
        assert key_tuple(rec.key) == want(src, dst, P.UDP, 1, 2)
        assert (rec.len, rec.caplen, rec.verdict) == (len(frame) - 14, 64, kstructs.DROP)
        assert data == frame[14:14 + 64]                   # from the IP header on, as the hook saw it
        assert before <= rec.ts_ns <= after


def test_would_drops_in_dry_run_are_captured_whole_when_short(cap):
    add_rule(cap, flow_key(A, B, P.UDP, 1, 2))
    cap.set_config(dry_run=True)
    cap.set_capture(128)
    frame = P.packet(4, P.UDP, A, B, 1, 2, payload=b"z" * 10)
    assert run(cap, "out", frame) == BPF_OK
    (rec, data), = drain(cap, 1)
    assert (rec.verdict, rec.len, rec.caplen, data) == (kstructs.WOULD_DROP, len(frame) - 14, len(frame) - 14,
                                                        frame[14:])


def test_at_most_the_rate_a_second_the_rest_counted(cap):
    add_rule(cap, flow_key(A, B, P.UDP, 1, 2))
    cap.set_capture(128, rate=5)
    frame = P.packet(4, P.UDP, A, B, 1, 2)
    began = time.monotonic()
    assert run(cap, "out", frame, repeat=20) == BPF_DROP   # one CPU, well within a second
    assert time.monotonic() - began < 0.9
    assert len(drain(cap, 5)) == 5
    assert stats(cap) == {"sent": 5, "limited": 15, "failed": 0}
    cap.set_capture(0)
    assert run(cap, "out", frame) == BPF_DROP
    assert len(drain(cap, 6, 0.2)) == 5 and stats(cap)["limited"] == 15   # off: not even counted


def test_with_a_flow_only_that_flows_packets_are_sent_and_bounded(cap):
    from lwtui.kernel.codec import flow_id_from_key, key_from_flow_id
    add_rule(cap, flow_key(A, B, P.UDP, 1, 2))
    add_rule(cap, flow_key(A, B, P.UDP, 3, 4))
    mine, noisy = P.packet(4, P.UDP, A, B, 1, 2), P.packet(4, P.UDP, A, B, 3, 4)
    assert run(cap, "out", mine) == BPF_DROP
    (key, _), = [(k, v) for k, v in cap.read_flows() if k.sport == 1]
    wanted = key_from_flow_id(flow_id_from_key(key))
    assert bytes(wanted) == bytes(key)                   # the programs' own key, rebuilt from the flow
    cap.set_capture(128, rate=3, flow=wanted)
    assert cap.get_config().capture_flow == 1
    assert run(cap, "out", noisy, repeat=50) == BPF_DROP   # another blocked flow: not sent, not counted
    assert run(cap, "out", mine, repeat=2) == BPF_DROP
    got = drain(cap, 2)
    assert [key_tuple(r.key) for r, _ in got] == [want(A, B, P.UDP, 1, 2)] * 2
    assert stats(cap) == {"sent": 2, "limited": 0, "failed": 0}
    cap.set_capture(128, rate=3)                          # every flow again
    assert cap.get_config().capture_flow == 0
    assert run(cap, "out", noisy) == BPF_DROP
    assert len(drain(cap, 3)) == 3
