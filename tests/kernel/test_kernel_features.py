"""Kernel features, probed on this kernel, and every path an older kernel takes.

The probes ask the running kernel (and can say no: a refused load is a
missing feature). Each fallback is forced by LWTUI_HIDE_FEATURES, the same
switch a session reads, and the programs built that way must count and judge
exactly as the main path does (BPF_PROG_TEST_RUN, maps read back), with the
differences each fallback names: a GSO packet counts 1 without gso_segs, the
IPv6 extension walk stops at 8 headers and no loop is left without bounded
loops, flows are stamped with the precise clock without the coarse one.
"""

from __future__ import annotations

import ctypes as ct
import struct
import time

import packets as P
import pytest
from conftest import _build, _reset
from kutil import (BPF_DROP, BPF_OK, HOOKS, add_rule, cycles, events_map_fd, flows, host_key, program_insns,
                   rule_val, run, want)
from lwtui.kernel import bpfsys, features, kstructs
from lwtui.kernel.pins import PINNED_MAPS
from lwtui.kernel.verdicts import RuleStore

A, B = "10.0.0.2", "10.0.0.3"
A6, B6 = "fd00:6c77::2", "fd00:6c77::3"
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4


def test_this_kernel_has_every_feature():
    """6.18: every probe answers yes, so nothing falls back unless hidden."""
    found = features.probe_kernel()
    assert found == {name: True for name in features.PROBES}
    assert features.plan(environ={}).fallbacks == ()


def test_probes_can_say_no():
    """The same kinds of probe refuse what the kernel does not have."""
    bad_field = features._insn(0x61, 0, 1, 4096) + features._insn(0x95)   # no __sk_buff field there
    assert features._loads(bad_field) is False
    assert features._loads(features._insn(0xB7) + features._insn(0x95)) is True
    assert bpfsys.probe_helper(bpfsys.PROG_TYPE_LWT_OUT, 100000) is False
    assert bpfsys.probe_map_type(100000) is False
    # the large-program probe's kind: past 5.2's limit (1M instructions) too is refused
    assert features._loads(features._insn(0xB7) * 1_000_001 + features._insn(0x95)) is False


def test_the_cycle_check_sees_a_loop():
    """The bounded-loop probe's program has the one back-edge older verifiers refuse."""
    assert cycles(features._insn(0xB7) + features._insn(0x07, imm=1) + features._insn(0x55, off=-2, imm=4) +
                  features._insn(0x95)) == [(2, 1)]
    assert cycles(features._insn(0x61, 0, 1, features.SKB_GSO_SEGS_OFF) + features._insn(0x95)) == []


def test_the_switch_hides_features_from_a_session_plan():
    p = features.plan("ringbuf", environ={features.HIDE_ENV: "all"})
    assert p.fallback_names == [f.name for f in features.FALLBACKS]
    assert (p.events, p.batch, p.run_stats) == ("perf", False, False)


VARIANTS = ["all", "coarse_clock", "gso_segs", "bounded_loops", "batch"]


@pytest.fixture(scope="module", params=VARIANTS)
def fallback_probe(request):
    """The programs as a session builds them with LWTUI_HIDE_FEATURES=<param>, events open."""
    plan = features.plan("ringbuf", environ={features.HIDE_ENV: request.param})
    p = _build(plan.cflags, events=plan.events, batch=plan.batch)
    p.plan = plan
    p.events, p.lost = [], []
    p.open_events(p.events.append, p.lost.append)
    yield p
    p.close()


@pytest.fixture
def fb(fallback_probe):
    _reset(fallback_probe)
    fallback_probe.poll_events(0)
    fallback_probe.events.clear()
    return fallback_probe


def _run_gso(probe, hook: str, frame: bytes, segs: int, repeat: int = 1) -> int:
    ctx = (ct.c_uint8 * (features.SKB_GSO_SEGS_OFF + 4))()
    struct.pack_into("=I", ctx, features.SKB_GSO_SEGS_OFF, segs)
    retval, _ = bpfsys.prog_test_run(probe.prog_fd(hook), frame, repeat=repeat, ctx=ctx)
    return retval


def test_counts(fb):
    """3 GSO packets of 7 segments and one plain packet: 22 packets on the wire,
    or 4 (one per skb) without gso_segs; bytes are skb->len either way."""
    frame = P.packet(4, P.TCP, A, B, 1, 2, payload=b"x" * 1000, flags=P.ACK)
    assert _run_gso(fb, "out", frame, 7, repeat=3) == BPF_OK
    assert _run_gso(fb, "out", frame, 0) == BPF_OK
    want_pkts = 4 if "gso_segs" in fb.plan.fallback_names else 22
    st = flows(fb)[want(A, B, P.TCP, 1, 2)]
    assert (st.packets, st.bytes) == (want_pkts, 4 * (len(frame) - 14))
    s = fb.read_stats()
    assert (s["packets"], s["bytes"], s["new_flows"], s["parse_errors"]) == (want_pkts, 4 * (len(frame) - 14), 1, 0)


def test_a_blocked_flow_is_dropped_and_counted(fb):
    add_rule(fb, host_key(B + "/32"))
    frame = P.packet(4, P.UDP, A, B, 5000, 53, payload=b"u" * 100)
    assert run(fb, "xmit", frame, repeat=5) == BPF_DROP
    assert run(fb, "xmit", P.packet(4, P.UDP, A, "10.0.0.9", 5000, 53)) == BPF_OK    # another host passes
    st = flows(fb)[want(A, B, P.UDP, 5000, 53, "xmit")]
    assert (st.packets, st.drops, st.verdict) == (5, 5, kstructs.DROP)
    assert fb.read_stats()["drops"] == 5 and rule_val(fb, host_key(B + "/32")).hits == 5


def test_flows_are_read_by_the_chosen_path(fb):
    for port in range(1, 41):
        run(fb, "in", P.packet(4, P.UDP, A, B, port, 9))
    assert fb._batch_ok is fb.plan.batch
    got = {k: v.packets for k, v in flows(fb).items()}
    assert len(got) == 40 and set(got.values()) == {1}
    assert got == {(bytes(k.saddr), bytes(k.daddr), k.sport, k.dport, k.proto, k.family, k.hook, k.flags): v.packets
                   for k, v in fb.read_flows_by_iteration()}


def test_no_loop_left_without_bounded_loops(fb):
    """A kernel without bounded loops (before 5.3) refuses any cycle: that build
    has none at any hook (the IPv6 walk and the compound rules' loops unrolled),
    the others keep their loops."""
    unrolled = "bounded_loops" in fb.plan.fallback_names
    for hook in HOOKS:
        back = cycles(program_insns(fb, hook))
        assert (back == []) if unrolled else (len(back) >= 3), (hook, back)


def test_a_compound_rule_judges_on_every_path(fb):
    """A compound rule (`and`: the compound loop) drops exactly its flow and counts its hits."""
    store = RuleStore({n: fb.map_fd(n) for n in PINNED_MAPS})
    rule = store.add(f"src host {A} and dst port 53/udp")
    try:
        assert run(fb, "in", P.packet(4, P.UDP, A, B, 5000, 53), repeat=4) == BPF_DROP
        assert run(fb, "in", P.packet(4, P.UDP, A, B, 5000, 54)) == BPF_OK
        assert run(fb, "in", P.packet(4, P.UDP, "10.0.0.9", B, 5000, 53)) == BPF_OK
        st = flows(fb)[want(A, B, P.UDP, 5000, 53, "in")]
        assert (st.packets, st.drops, st.verdict, st.rule_kind) == (4, 4, kstructs.DROP, kstructs.RULE_COMPOUND)
        assert fb.read_stats()["drops"] == 4
        assert [(e.text, e.hits) for e in store.entries()] == [(rule.text, 4)]
    finally:
        store.remove(rule.text)


def _dst_chain(n: int) -> bytes:
    nh, body = P.dstopts_chain(n, P.UDP, P.udp(5000, 53, b"x" * 8))
    return P.frame(P.ipv6(A6, B6, nh, body))


def test_ipv6_extension_walk(fb):
    """8 headers are walked on every path; the 9th is past the unrolled walk's
    bound (a parse error judged by host rules), and within the loop's (1152)."""
    unrolled = "bounded_loops" in fb.plan.fallback_names
    assert run(fb, "out", _dst_chain(8)) == BPF_OK
    assert run(fb, "out", _dst_chain(9)) == BPF_OK
    assert fb.read_stats()["parse_errors"] == (1 if unrolled else 0)
    assert flows(fb)[want(A6, B6, P.UDP, 5000, 53)].packets == (1 if unrolled else 2)
    add_rule(fb, host_key(B6 + "/128"))
    assert run(fb, "out", _dst_chain(9), repeat=3) == BPF_DROP
    assert fb.read_stats()["drops"] == 3


def test_clock(fb):
    """The precise clock (the fallback for the coarse one) stamps within the
    run's own CLOCK_MONOTONIC window; the coarse one may lag by a tick."""
    before = time.monotonic_ns()
    run(fb, "out", P.packet(4, P.UDP, A, B, 7, 7))
    after = time.monotonic_ns()
    st = flows(fb)[want(A, B, P.UDP, 7, 7)]
    if "coarse_clock" in fb.plan.fallback_names:
        assert before <= st.first_seen_ns <= after
    else:
        assert before - 50_000_000 <= st.first_seen_ns <= after


def test_events_arrive_through_the_chosen_transport(fb):
    """Ring buffer asked for: hidden, it falls back to the perf buffer."""
    ringbuf = "ringbuf" not in fb.plan.fallback_names
    assert fb.transport == ("ringbuf" if ringbuf else "perf")
    if not ringbuf:
        assert bpfsys.map_info(events_map_fd(fb))["type"] == BPF_MAP_TYPE_PERF_EVENT_ARRAY
    for port in (1, 2, 3):
        run(fb, "out", P.packet(4, P.UDP, A, B, port, 9))
    end = time.monotonic() + 5
    while len(fb.events) < 3 and time.monotonic() < end:
        fb.poll_events(50)
    assert sorted(e.key.sport for e in fb.events if e.type == kstructs.EV_NEW) == [1, 2, 3]
