"""Events from the real programs, through both transports (perf buffer and
ring buffer): one EV_NEW per new flow, EV_DROP rate-limited per flow, losses
reported."""

from __future__ import annotations

import time

import packets as P
import pytest
from kutil import BPF_DROP, BPF_OK, add_rule, events_map_fd, flow_key, key_tuple, run, want
from lwtui.kernel import bpfsys, kstructs
from lwtui.kernel.loader import ProbeError
from lwtui.kernel.probe import Probe

BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_RINGBUF = 4, 27
RECORD = 8 + 80  # a ring buffer record: 8-byte header + struct lwtui_event

A, B = "10.0.0.2", "10.0.0.3"
A6, B6 = "2001:db8::2", "2001:db8::3"


def wait_events(probe, n: int, deadline_s: float = 5.0) -> list:
    """Poll until at least n events arrived (or the deadline passes)."""
    end = time.monotonic() + deadline_s
    while len(probe.events) < n and time.monotonic() < end:
        probe.poll_events(50)
    return list(probe.events)


def settle(probe) -> list:
    """One more short poll, to catch events that should not be there."""
    probe.poll_events(20)
    return list(probe.events)


def test_events_map_is_the_chosen_transport(ev_probe):
    info = bpfsys.map_info(events_map_fd(ev_probe))
    if ev_probe.transport == "ringbuf":
        assert (info["type"], info["max_entries"]) == (BPF_MAP_TYPE_RINGBUF, 64 * 4096)
    else:
        assert info["type"] == BPF_MAP_TYPE_PERF_EVENT_ARRAY


def test_batched_wakeups_strand_nothing(ev_probe):
    """Fewer events than wakeup_events (128) still arrive: poll_events drains after its wait."""
    for port in range(1, 6):
        run(ev_probe, "out", P.packet(4, P.UDP, A, B, port, 9))
    ev_probe.poll_events(0)
    assert sorted(e.key.sport for e in ev_probe.events) == [1, 2, 3, 4, 5]


def test_one_new_event_per_new_flow(ev_probe):
    frames = {
        want(A, B, P.TCP, 40000, 80): P.packet(4, P.TCP, A, B, 40000, 80, payload=b"a" * 10),
        want(A, B, P.UDP, 5000, 53): P.packet(4, P.UDP, A, B, 5000, 53),
        want(A6, B6, P.ICMPV6, 128, 0): P.packet(6, P.ICMPV6, A6, B6, 128, 0),
    }
    for f in frames.values():
        for _ in range(3):
            assert run(ev_probe, "out", f) == BPF_OK
    got = wait_events(ev_probe, 3)
    got = settle(ev_probe)
    assert [e.type for e in got] == [kstructs.EV_NEW] * 3
    assert {key_tuple(e.key): e.len for e in got} == {k: len(f) - 14 for k, f in frames.items()}
    for e in got:
        assert (e.packets, e.drops, e.verdict) == (1, 0, kstructs.ALLOW)
        assert e.bytes == e.len and e.ts_ns > 0
    tcp_ev = next(e for e in got if e.key.proto == P.TCP)
    assert tcp_ev.tcp_flags == P.SYN
    assert ev_probe.read_stats()["events_failed"] == 0 and ev_probe.lost == []


def test_drop_events_are_rate_limited_per_flow(ev_probe):
    ev_probe.set_config(drop_event_interval_ns=60 * 10**9)
    add_rule(ev_probe, flow_key(A, B, P.UDP, 1, 2))
    f = P.packet(4, P.UDP, A, B, 1, 2)
    g = P.packet(4, P.UDP, B, A, 2, 1)  # the reply: a flow of its own
    for _ in range(5):
        assert run(ev_probe, "in", f) == BPF_DROP
    assert run(ev_probe, "in", g) == BPF_DROP
    got = wait_events(ev_probe, 4)
    got = settle(ev_probe)
    kinds = sorted((e.type, key_tuple(e.key)) for e in got)
    fk, gk = want(A, B, P.UDP, 1, 2, "in"), want(B, A, P.UDP, 2, 1, "in")
    assert kinds == sorted([(kstructs.EV_NEW, fk), (kstructs.EV_DROP, fk),
                            (kstructs.EV_NEW, gk), (kstructs.EV_DROP, gk)])
    drop = next(e for e in got if e.type == kstructs.EV_DROP and key_tuple(e.key) == fk)
    assert (drop.verdict, drop.rule_kind, drop.drops, drop.packets) == (kstructs.DROP, kstructs.RULE_FLOW, 1, 1)
    # a shorter interval lets the next drop through
    ev_probe.events.clear()
    ev_probe.set_config(drop_event_interval_ns=1)
    assert run(ev_probe, "in", f) == BPF_DROP
    got = wait_events(ev_probe, 1)
    assert [(e.type, e.drops) for e in got] == [(kstructs.EV_DROP, 6)]


def test_drop_event_in_dry_run(ev_probe):
    ev_probe.set_config(dry_run=True)
    add_rule(ev_probe, flow_key(A, B, P.TCP, 1, 2))
    assert run(ev_probe, "xmit", P.packet(4, P.TCP, A, B, 1, 2)) == BPF_OK
    got = wait_events(ev_probe, 2)
    assert sorted(e.type for e in got) == [kstructs.EV_NEW, kstructs.EV_DROP]
    assert all(e.verdict == kstructs.DROP for e in got)


def test_full_buffer_counts_failures_and_reports_losses():
    """A one-page perf buffer overflows; the program counts failed outputs and
    the reader learns of the loss once the buffer has room again."""
    events, lost = [], []
    with Probe(hooks=("out",), max_flows=4096) as p:
        p.open_events(events.append, lost.append, page_cnt=1, wakeup_events=1)
        for port in range(1, 301):
            run(p, "out", P.packet(4, P.UDP, A, B, port, 9))
        failed = p.read_stats()["events_failed"]
        assert failed > 0
        p.poll_events(0)
        run(p, "out", P.packet(4, P.UDP, A, B, 999, 9))  # the loss record comes with the next write
        end = time.monotonic() + 5
        while not lost and time.monotonic() < end:
            p.poll_events(50)
        assert sum(lost) == failed
        assert len(events) + failed == 301
        assert len({key_tuple(e.key) for e in events}) == len(events)


def test_full_ring_buffer_counts_failures():
    """A one-page ring buffer overflows; with no lost callback the program's
    failed-output counter is the exact loss count, and a drained ring takes
    events again."""
    events, lost = [], []
    with Probe(hooks=("out",), max_flows=4096, events="ringbuf", ringbuf_pages=1) as p:
        assert bpfsys.map_info(events_map_fd(p))["max_entries"] == 4096
        p.open_events(events.append, lost.append)
        for port in range(1, 301):
            run(p, "out", P.packet(4, P.UDP, A, B, port, 9))
        failed = p.read_stats()["events_failed"]
        assert 300 - 4096 // RECORD <= failed < 300
        p.poll_events(0)
        assert len(events) + failed == 300
        assert len({key_tuple(e.key) for e in events}) == len(events)
        assert [e.key.sport for e in events] == sorted(e.key.sport for e in events)  # the first ones fit
        run(p, "out", P.packet(4, P.UDP, A, B, 999, 9))
        p.poll_events(0)
        assert events[-1].key.sport == 999 and p.read_stats()["events_failed"] == failed
        assert lost == []


@pytest.mark.parametrize("events, pages", [("kafka", 64), ("ringbuf", 3), ("ringbuf", 0)])
def test_bad_transport_is_refused_before_compiling(events, pages):
    with pytest.raises(ProbeError, match="perf or ringbuf|power-of-two"):
        Probe(hooks=("out",), events=events, ringbuf_pages=pages)
