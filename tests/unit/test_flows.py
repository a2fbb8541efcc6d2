"""FlowStore maths (lwtui/core/flows.py): rates, resets, decay, expiry, bounds, history."""

from __future__ import annotations

import ipaddress

import pytest

from lwtui.kernel import kstructs
from lwtui.core.flows import Counters, FlowStore
from lwtui.core.rates import HitSplit, RateMeter, TotalRates
from lwtui.kernel.codec import FlowIdCache, flow_id_from_key
from lwtui.core.model import FlowId, RuleEntry


def fid(n: int = 1, hook: str = "out") -> FlowId:
    return FlowId(hook, 6, ipaddress.ip_address("10.0.0.2"), 40000 + n,
                  ipaddress.ip_address("10.0.0.3"), 8080)


def ctr(packets, nbytes=None, drops=0, first=90.0, last=None, **kw) -> Counters:
    return Counters(packets, packets * 100 if nbytes is None else nbytes, drops, first,
                    100.0 if last is None else last, **kw)


def steady(table: FlowStore, flow: FlowId, start: float, ticks: int, pps: int = 10, dps: int = 0):
    """`ticks` polls one second apart of a flow at `pps` packets of 100 bytes."""
    for i in range(ticks):
        t = start + i
        table.update(t, [(flow, ctr(pps * (i + 1), drops=dps * (i + 1), first=start - 1, last=t))])


# -- rates ---------------------------------------------------------------------------

def test_steady_rates_are_exact_over_the_window():
    t = FlowStore(rate_window=3.0)
    steady(t, fid(), 100.0, 6, pps=10, dps=2)
    r = t.get(fid())
    assert (r.pps, r.bps, r.drops_ps) == (8.0, 6400.0, 2.0)   # what passed, what was dropped
    assert (r.packets, r.bytes, r.drops, r.would_drops) == (60, 6000, 12, 0)


def test_rate_window_smooths_a_burst():
    t = FlowStore(rate_window=3.0)
    f = fid()
    for i, packets in enumerate([10, 20, 30, 60]):       # +10, +10, +10, then +30 in the last second
        t.update(100.0 + i, [(f, ctr(packets, first=99.0, last=100.0 + i))])
    r = t.get(f)
    assert r.pps == pytest.approx((60 - 10) / 3)           # window [100, 103]
    assert r.history[-1] == 30 * 100 * 8                   # history: the last tick alone, in bits/s


def test_first_poll_baseline_is_first_seen():
    t = FlowStore(rate_window=3.0)
    old, recent, unknown, newborn = fid(1), fid(2), fid(3), fid(4)
    t.update(100.0, [(old, ctr(40, first=90.0)), (recent, ctr(30, first=99.5)),
                     (unknown, ctr(30, first=0.0)), (newborn, ctr(2, first=99.999))])
    assert t.get(old).pps == 4.0          # 40 packets since 90: 10 s
    assert t.get(recent).pps == 60.0      # started inside the window: 30 in its 0.5 s, not over 3 s
    assert t.get(unknown).pps == 0.0      # no first_seen: no rate until the next reading
    assert t.get(newborn).pps == 8.0      # 1 ms old: taken over the 0.25 s minimum span


def test_a_new_flow_counts_since_its_first_packet():
    t = FlowStore(rate_window=3.0)
    t.update(100.0, [(fid(1), ctr(1))])
    t.update(100.5, [(fid(1), ctr(1)), (fid(2), ctr(30, first=100.2, last=100.4))])
    r = t.get(fid(2))
    assert r.pps == pytest.approx(100.0) and r.bps == pytest.approx(30 * 100 * 8 / 0.3)
    assert r.history == pytest.approx((r.bps,), rel=1e-6)   # histories are single precision (sparklines)


def test_a_flow_back_from_idle_has_no_rate_until_its_next_reading():
    t = FlowStore(rate_window=3.0, idle_timeout=10.0)
    f = fid()
    t.update(100.0, [(f, ctr(10, first=99.0, last=99.5))])
    t.update(120.0, [])                                  # idle: gone from the table
    assert f not in t
    t.update(121.0, [(f, ctr(500, first=99.0, last=121.0))])   # old counters plus new packets
    assert t.get(f).pps == 0.0 and t.get(f).packets == 500
    t.update(122.0, [(f, ctr(520, first=99.0, last=122.0))])
    assert t.get(f).pps == 20.0


def test_counter_reset_restarts_the_flow_without_negative_rates():
    t = FlowStore(rate_window=3.0)
    f = fid()
    steady(t, f, 100.0, 5, pps=100)                     # 500 packets at t=104
    t.update(105.0, [(f, ctr(20, first=104.5, last=105.0))])   # evicted by the kernel, back with 20
    r = t.get(f)
    assert r.packets == 20 and r.pps == 40.0 and r.bps == 20 * 100 * 8 / 0.5   # since first_seen 104.5
    assert all(v >= 0 for v in r.history)


def test_reinsert_detected_by_first_seen_even_when_counters_grew():
    t = FlowStore(rate_window=3.0)
    f = fid()
    steady(t, f, 100.0, 4, pps=10)                      # 40 packets at t=103, first_seen 99
    t.update(104.0, [(f, ctr(70, first=103.5, last=104.0))])   # a new kernel entry with 70 already
    assert t.get(f).pps == 140.0                         # 70 since 103.5, not (70 - 10) / 3


def test_kernel_entries_seen_counts_each_entry_once_and_each_reinsertion():
    t = FlowStore(max_flows=3)
    a, b, c = fid(1), fid(2), fid(3)
    t.note_new(c, 102.5)                      # an event alone is not a reading of the map
    t.update(100.0, [(a, ctr(1, first=99.0, last=99.0)), (b, ctr(1, first=99.5, last=99.5))])
    assert t.kernel_flows_seen == 2
    t.update(101.0, [(a, ctr(3, first=99.0, last=100.5)), (b, ctr(1, first=99.5, last=99.5))])
    assert t.kernel_flows_seen == 2           # the same entries again: nothing new
    t.update(102.0, [(b, ctr(1, first=99.5, last=99.5))])
    assert t.kernel_flows_seen == 2           # a evicted: absent, not seen again
    t.update(103.0, [(a, ctr(1, first=102.5, last=102.5)), (b, ctr(1, first=99.5, last=99.5)),
                     (c, ctr(1, first=102.5, last=102.5))])
    assert t.kernel_flows_seen == 4           # a made again by the kernel, c read at last
    assert len(t) == 3


def test_a_flow_back_from_idle_is_not_a_new_kernel_entry():
    t = FlowStore(idle_timeout=2.0)
    a, b = fid(1), fid(2)
    t.update(100.0, [(a, ctr(1, first=99.5, last=99.5)), (b, ctr(1, first=99.5, last=99.5))])
    t.update(102.0, [(a, ctr(2, first=99.5, last=101.9)), (b, ctr(1, first=99.5, last=99.5))])
    assert b not in t and t.kernel_flows_seen == 2          # idle too long: out of the table, still in the map
    t.update(103.0, [(a, ctr(2, first=99.5, last=101.9)), (b, ctr(2, first=99.5, last=102.8))])
    assert b in t and t.kernel_flows_seen == 2              # back: the same kernel entry, not counted again


def test_clock_stepping_back_gives_zero_not_nonsense():
    t = FlowStore(rate_window=3.0)
    f = fid()
    steady(t, f, 100.0, 3)
    t.update(50.0, [(f, ctr(40, first=99.0, last=50.0))])
    r = t.get(f)
    assert (r.pps, r.bps, r.drops_ps) == (0.0, 0.0, 0.0)
    t.update(51.0, [(f, ctr(50, first=99.0, last=51.0))])
    assert t.get(f).pps == 10.0


def test_same_instant_twice_is_not_a_division_by_zero():
    t = FlowStore(rate_window=3.0)
    f = fid()
    t.update(100.0, [(f, ctr(30, first=99.0))])
    t.update(100.0, [(f, ctr(30, first=99.0))])
    r = t.get(f)
    assert r.pps == 30.0 and r.history[-1] == 0.0        # 30 since first_seen 99


def test_absent_flows_keep_counters_and_decay_to_zero():
    t = FlowStore(rate_window=3.0)
    f, other = fid(1), fid(2)
    steady(t, f, 100.0, 4, pps=30)                      # 120 packets at t=103
    pps = []
    for now in (104.0, 105.0, 106.0, 107.0):
        t.update(now, [(other, ctr(1, first=103.5, last=now))])
        pps.append(t.get(f).pps)
    assert pps == [20.0, 10.0, 0.0, 0.0]
    r = t.get(f)
    assert r.packets == 120 and r.bytes == 12000 and r.history[-4:] == (0.0, 0.0, 0.0, 0.0)


def sent_by(t: float, start: float, rate: float, stop: float = float("inf")) -> int:
    """Packets a sender at `rate`/s from `start` (first packet) to `stop` has sent by t."""
    if t < start:
        return 0
    return int((min(t, stop) - start) * rate + 1e-9) + 1


@pytest.mark.parametrize("offset", [0.03, 0.31, 0.5, 0.77, 0.98])
@pytest.mark.parametrize("interval", [0.3, 1.0, 2.0])
def test_a_steady_flow_reads_its_rate_from_the_second_report(offset, interval):
    """50 packets/s starting anywhere between two ticks: 50 +-15% from the second report on."""
    t = FlowStore(rate_window=3.0)
    f, start = fid(), 100.0 + offset * interval
    t.update(100.0, [])
    reports = []
    for i in range(1, 12):
        now = 100.0 + i * interval
        n = sent_by(now, start, 50)
        last = start + (n - 1) / 50
        t.update(now, [(f, ctr(n, first=start, last=last))])
        reports.append(t.get(f).pps)
    assert all(abs(pps - 50) <= 50 * 0.15 for pps in reports[1:]), reports


def test_a_stopped_flow_reads_zero_within_the_window():
    t = FlowStore(rate_window=3.0)
    f, start, stop = fid(), 100.2, 105.0
    pps = {}
    for i in range(1, 11):
        now = 100.0 + i
        n = sent_by(now, start, 50, stop)
        t.update(now, [(f, ctr(n, first=start, last=start + (n - 1) / 50))])
        pps[now] = t.get(f).pps
    assert pps[105.0] == pytest.approx(50, rel=0.05)
    assert pps[108.0] == 0.0 and pps[109.0] == 0.0 and pps[110.0] == 0.0   # the window (3 s) after the stop
    assert t.get(f).history[-3:] == (0.0, 0.0, 0.0)


def test_a_blocked_flow_passes_nothing_and_drops_at_its_rate():
    t = FlowStore(rate_window=3.0)
    f = fid()
    t.update(100.0, [(f, ctr(10, first=99.0, last=100.0))])
    for i in range(1, 6):                                # from 100 on every packet is dropped
        t.update(100.0 + i, [(f, ctr(10 + 20 * i, drops=20 * i, first=99.0, last=100.0 + i))])
    r = t.get(f)
    assert (r.pps, r.bps, r.drops_ps, r.would_drops_ps) == (0.0, 0.0, 20.0, 0.0)
    assert (r.packets, r.drops, r.would_drops) == (110, 100, 0)
    assert r.history[-5:] == (0.0,) * 5
    assert r.drop_history == (20 * 100 * 8.0,) * 5       # dropped bits/s per tick, from the first drop on
    assert t.dropped_bytes == 100 * 100


def test_a_partly_dropped_tick_splits_bytes_by_its_mean_packet_size():
    t = FlowStore(rate_window=3.0)
    f = fid()
    t.update(100.0, [(f, ctr(10, nbytes=1000, first=99.0))])
    t.update(101.0, [(f, ctr(20, nbytes=3000, drops=5, first=99.0, last=101.0))])   # 10 packets of 200 B, 5 dropped
    r = t.get(f)
    assert r.history[-1] == 5 * 200 * 8 and r.drop_history == (5 * 200 * 8.0,)
    assert t.dropped_bytes == 1000


def test_dry_run_drops_are_would_drops_and_passed():
    t = FlowStore(rate_window=3.0)
    f = fid()
    t.update(100.0, [(f, ctr(10, first=99.0))], dry_run=True)
    for i in range(1, 4):                                # dry-run: a rule matches every packet
        t.update(100.0 + i, [(f, ctr(10 + 10 * i, drops=10 * i, first=99.0, last=100.0 + i))], dry_run=True)
    r = t.get(f)
    assert (r.drops, r.would_drops) == (0, 30)
    assert (r.pps, r.drops_ps, r.would_drops_ps) == (10.0, 0.0, 10.0)   # they all passed
    assert r.drop_history == ()
    for i in range(4, 7):                                # dry-run off: the same rule drops
        t.update(100.0 + i, [(f, ctr(10 + 10 * i, drops=10 * i, first=99.0, last=100.0 + i))], dry_run=False)
    r = t.get(f)
    assert (r.drops, r.would_drops) == (30, 30)
    assert (r.pps, r.drops_ps, r.would_drops_ps) == (0.0, 10.0, 0.0)


def test_a_reinserted_flow_restarts_its_split():
    t = FlowStore(rate_window=3.0)
    f = fid()
    t.update(100.0, [(f, ctr(10, drops=10, first=99.0))], dry_run=True)
    t.update(101.0, [(f, ctr(4, drops=4, first=100.5, last=101.0))], dry_run=False)   # evicted, back
    r = t.get(f)
    assert (r.drops, r.would_drops) == (4, 0)


# -- note_new --------------------------------------------------------------------------

def test_note_new_makes_the_row_before_the_poll():
    t = FlowStore()
    t.note_new(fid(), 100.25)
    r = t.get(fid())
    assert len(t) == 1 and (r.packets, r.bytes, r.pps) == (0, 0, 0.0)
    assert r.first_seen == r.last_seen == 100.25
    t.note_new(fid(), 200.0)                           # a second event changes nothing
    assert t.get(fid()) is r


def test_note_new_then_poll_uses_the_previous_poll_as_baseline():
    t = FlowStore()
    t.update(100.0, [])
    t.note_new(fid(), 100.4)
    t.update(101.0, [(fid(), ctr(6, first=100.4, last=100.9))])
    assert t.get(fid()).pps == pytest.approx(10.0)       # 6 since its first packet, 0.6 s ago


def test_noted_flow_that_never_shows_up_expires():
    t = FlowStore(idle_timeout=5.0)
    t.note_new(fid(), 100.0)
    t.update(104.0, [])
    assert fid() in t
    t.update(105.5, [])
    assert fid() not in t and len(t) == 0


# -- expiry and bounds -----------------------------------------------------------------

def test_idle_flows_expire_even_when_the_kernel_still_lists_them():
    t = FlowStore(idle_timeout=10.0)
    busy, idle = fid(1), fid(2)
    t.update(100.0, [(busy, ctr(1, last=100.0)), (idle, ctr(1, last=95.0))])
    assert len(t) == 2
    t.update(106.0, [(busy, ctr(2, last=106.0)), (idle, ctr(1, last=95.0))])
    assert busy in t and idle not in t
    t.update(107.0, [(busy, ctr(3, last=107.0)), (idle, ctr(1, last=95.0))])
    assert idle not in t                               # not re-added from the poll either


def test_idle_flows_absent_from_the_poll_expire_too():
    t = FlowStore(idle_timeout=10.0)
    t.update(100.0, [(fid(1), ctr(1, last=99.0))])
    t.update(108.0, [])
    assert fid(1) in t
    t.update(109.5, [])
    assert fid(1) not in t


def test_size_is_bounded_evicting_the_most_idle():
    t = FlowStore(max_flows=3)
    rows = [(fid(n), ctr(1, last=90.0 + n)) for n in range(6)]
    t.update(100.0, rows)
    assert len(t) == 3
    assert sorted(r.id.sport for r in t.records()) == [40003, 40004, 40005]


def test_note_new_at_capacity_evicts_the_most_idle():
    t = FlowStore(max_flows=3)
    t.update(100.0, [(fid(n), ctr(1, last=95.0 + n)) for n in range(3)])
    t.note_new(fid(9), 100.5)
    assert len(t) == 3 and fid(9) in t and fid(0) not in t


def test_at_capacity_rows_the_map_read_never_lose_to_event_hints():
    t = FlowStore(max_flows=4)
    t.update(100.0, [(fid(n), ctr(1, first=99.0, last=99.0 + n / 10)) for n in range(2)])
    for n in range(10, 14):                   # events of flows the kernel evicted before the next read
        t.note_new(fid(n), 100.8)
    t.update(101.0, [(fid(n), ctr(1, first=100.5, last=100.5)) for n in range(20, 24)])
    assert sorted(r.id.sport for r in t.records()) == [40020, 40021, 40022, 40023]
    assert t.kernel_flows_seen == 6


def test_at_capacity_the_flows_of_the_read_stay_even_when_older():
    t = FlowStore(max_flows=2)
    a, b, c, d = fid(1), fid(2), fid(3), fid(4)
    t.update(100.0, [(a, ctr(1, first=99.9, last=99.9)), (b, ctr(1, first=99.9, last=99.9))])
    t.update(101.0, [(c, ctr(1, first=99.0, last=99.0)), (d, ctr(1, first=99.1, last=99.1))])   # a, b evicted
    assert sorted(r.id.sport for r in t.records()) == [40003, 40004], "what the kernel holds is shown"


def test_table_never_grows_without_bound():
    t = FlowStore(max_flows=100, idle_timeout=1000.0)
    for tick in range(50):
        now = 100.0 + tick
        t.update(now, [(fid(tick * 10 + k), ctr(1, first=now, last=now)) for k in range(10)])
        for k in range(10):
            t.note_new(fid(10_000 + tick * 10 + k), now)
        assert len(t) <= 100


def test_history_is_bounded_and_per_tick():
    t = FlowStore(history_len=4, rate_window=3.0)
    f = fid()
    for i, packets in enumerate([1, 3, 6, 10, 15, 21]):   # +1 (from baseline), +2, +3, +4, +5, +6
        t.update(100.0 + i, [(f, ctr(packets, first=99.0, last=100.0 + i))])
    assert t.get(f).history == (3 * 800.0, 4 * 800.0, 5 * 800.0, 6 * 800.0)


def test_long_idle_flow_keeps_its_record_and_wakes_up_right():
    t = FlowStore(history_len=3, rate_window=3.0, idle_timeout=100.0)
    f = fid()
    t.update(100.0, [(f, ctr(30, first=99.0, last=100.0))])
    for i in range(1, 8):
        t.update(100.0 + i, [(f, ctr(30, first=99.0, last=100.0))])
    r = t.get(f)
    assert r.history == (0.0, 0.0, 0.0) and r.pps == 0.0
    t.update(108.0, [(f, ctr(30, first=99.0, last=100.0))])
    assert t.get(f) is r                                 # nothing changed: nothing rebuilt
    t.update(109.0, [(f, ctr(60, first=99.0, last=109.0))])
    r2 = t.get(f)
    assert r2.pps == 10.0 and r2.history == (0.0, 0.0, 30 * 100 * 8.0)


# -- records -----------------------------------------------------------------------------

def test_records_are_copies_that_later_updates_do_not_touch():
    t = FlowStore()
    t.update(100.0, [(fid(), ctr(10, first=99.0))])
    before = t.records()
    snap = (before[0].packets, before[0].pps, before[0].history)
    t.update(101.0, [(fid(), ctr(50, first=99.0, last=101.0))])
    assert (before[0].packets, before[0].pps, before[0].history) == snap
    assert t.get(fid()).packets == 50


def test_verdict_rule_and_flags_pass_through():
    t = FlowStore()
    t.update(100.0, [(fid(), ctr(5, tcp_flags=0x12, verdict="drop", rule="port 8080"))])
    r = t.get(fid())
    assert (r.tcp_flags, r.verdict, r.rule) == (0x12, "drop", "port 8080")
    t.update(101.0, [(fid(), ctr(5, tcp_flags=0x12))])   # rule lifted while idle
    assert (t.get(fid()).verdict, t.get(fid()).rule) == ("allow", "")


def test_a_duplicate_row_in_one_poll_is_ignored():
    t = FlowStore()
    t.update(100.0, [(fid(), ctr(30, first=99.0)), (fid(), ctr(3000, first=99.0))])
    assert t.get(fid()).packets == 30


def test_constructor_refuses_nonsense():
    with pytest.raises(ValueError):
        FlowStore(max_flows=0)
    with pytest.raises(ValueError):
        FlowStore(rate_window=0)


# -- RateMeter -------------------------------------------------------------------------------

def test_rate_meter():
    m = RateMeter(window=2.0)
    assert m.update(10.0, 100) == 0.0                   # one reading: no rate yet
    assert m.update(10.0, 150) == 0.0                   # zero period
    assert m.update(11.0, 200) == 100.0
    assert m.update(12.0, 400) == 125.0                 # (400 - 150) / 2: the newest reading at 10
    assert m.update(13.0, 500) == 150.0                 # (500 - 200) / 2
    assert m.update(14.0, 50) == 0.0                    # counter reset
    assert m.update(15.0, 80) == 30.0 and m.rate == 30.0
    assert m.update(1.0, 90) == 0.0                     # clock stepped back


def test_rate_meter_counts_from_its_start():
    m = RateMeter(window=3.0, start=(100.0, 0))
    assert m.update(100.5, 25) == 50.0                  # a young session: its own age, not the window
    assert m.update(101.5, 75) == 50.0
    assert m.update(104.0, 200) == 50.0                 # from the newest reading at or before 101: (100.5, 25)


def test_total_rates_are_of_what_passed_and_of_what_was_dropped():
    rates = TotalRates(window=3.0, start=100.0)
    stats = lambda p, b, d, w: {"packets": p, "bytes": b, "drops": d, "would_drops": w}
    assert rates.update(101.0, stats(100, 10_000, 0, 0), 0.0) == \
        {"pps": 100.0, "bps": 80_000.0, "drops_ps": 0.0, "would_drops_ps": 0.0}
    got = rates.update(102.0, stats(200, 20_000, 60, 40), dropped_bytes=6_000.0)   # 60 of 100 dropped
    assert got == {"pps": 70.0, "bps": 14_000 * 8 / 2, "drops_ps": 30.0, "would_drops_ps": 20.0}


def test_a_young_sessions_totals_count_from_its_first_packet():
    rates = TotalRates(window=3.0, start=100.0)
    stats = lambda p: {"packets": p, "bytes": 100 * p, "drops": 0, "would_drops": 0}
    assert rates.update(101.0, stats(0), 0.0, first_packet=None)["pps"] == 0.0
    assert rates.update(102.0, stats(25), 0.0, first_packet=101.5)["pps"] == 50.0   # 25 in its 0.5 s
    assert rates.update(103.0, stats(75), 0.0, first_packet=101.5)["pps"] == 50.0
    assert rates.update(105.0, stats(175), 0.0, first_packet=101.5)["pps"] == 50.0  # (175 - 25) from 102


def test_flow_table_knows_its_first_packet():
    t = FlowStore()
    t.update(100.0, [(fid(1), ctr(5, first=99.5))])
    t.update(101.0, [(fid(1), ctr(9, first=99.5)), (fid(2), ctr(3, first=100.7))])
    assert t.first_packet == 99.5


def test_flow_table_knows_its_first_drops_and_would_drops():
    t = FlowStore()
    t.update(100.0, [(fid(1), ctr(5, first=99.5))])
    assert (t.first_drop, t.first_would_drop) == (None, None)
    t.update(101.0, [(fid(1), ctr(9, first=99.5)), (fid(2), ctr(3, drops=3, first=100.7, verdict="drop"))])
    assert (t.first_drop, t.first_would_drop) == (100.7, None)
    t.update(102.0, [(fid(3), ctr(4, drops=4, first=101.2, verdict="drop"))], dry_run=True)
    assert (t.first_drop, t.first_would_drop) == (100.7, 101.2)


def test_the_first_drops_of_a_session_are_rated_from_their_flow_on():
    """A session without drops for 10 s, then a flow blocked from its first packet (half a
    second ago): its 25 drops are 50/s, as on its row, not 25 over the 3 s window."""
    rates = TotalRates(window=3.0, start=100.0)
    stats = lambda d, w: {"packets": d + w, "bytes": 100 * (d + w), "drops": d, "would_drops": w}
    for now in range(101, 111):
        rates.update(float(now), stats(0, 0), 0.0)
    assert rates.update(110.5, stats(0, 0), 0.0, first_drop=None)["drops_ps"] == 0.0
    got = rates.update(111.0, stats(25, 10), 2500.0, first_drop=110.5, first_would_drop=110.8)
    assert (got["drops_ps"], got["would_drops_ps"]) == (50.0, 40.0)
    assert rates.update(111.0, stats(25, 10), 2500.0)["drops_ps"] == 25 / 3   # without: the window's average


def test_hit_split_books_hits_by_mode():
    split = HitSplit()
    e = lambda hits, text="port 53": RuleEntry(text, "port", hits=hits)
    assert split.update([e(10)], dry_run=False)[0].would_drops == 0
    got = split.update([e(25)], dry_run=True)[0]
    assert (got.hits, got.would_drops, got.drops) == (25, 15, 10)
    assert split.view([e(30)], dry_run=True)[0].would_drops == 20   # a read between ticks books nothing
    got = split.update([e(40)], dry_run=False)[0]
    assert (got.would_drops, got.drops) == (15, 25)
    assert split.update([e(3)], dry_run=True)[0].would_drops == 3   # lifted and added again


# -- flow_key decoding ---------------------------------------------------------------------

def key(src, dst, family, hook=1, flags=0, proto=17, sport=5000, dport=53):
    k = kstructs.FlowKey(sport=sport, dport=dport, proto=proto, family=family, hook=hook, flags=flags)
    k.saddr[:] = list(kstructs.addr_to_bytes(ipaddress.ip_address(src)))
    k.daddr[:] = list(kstructs.addr_to_bytes(ipaddress.ip_address(dst)))
    return k


def test_flow_id_from_key():
    f = flow_id_from_key(key("10.0.0.2", "10.0.0.3", 4, hook=kstructs.HOOK_XMIT))
    assert f == FlowId("xmit", 17, ipaddress.ip_address("10.0.0.2"), 5000,
                       ipaddress.ip_address("10.0.0.3"), 53, False)
    f6 = flow_id_from_key(key("fd00::2", "fd00::3", 6, hook=kstructs.HOOK_IN, flags=kstructs.KEY_FRAGMENT,
                              sport=0, dport=0))
    assert (f6.hook, f6.src, f6.fragment, f6.family) == ("in", ipaddress.ip_address("fd00::2"), True, 6)
    assert flow_id_from_key(key("10.0.0.2", "10.0.0.3", 4, hook=7)).hook == "7"


def test_flow_id_from_key_gives_the_same_object_for_the_same_key():
    cache = FlowIdCache()
    a = flow_id_from_key(key("10.0.0.2", "10.0.0.3", 4), cache)
    b = flow_id_from_key(kstructs.FlowKey.from_buffer_copy(bytes(key("10.0.0.2", "10.0.0.3", 4))), cache)
    assert a is b
    assert flow_id_from_key(key("10.0.0.2", "10.0.0.3", 4, sport=5001), cache) is not a


def test_two_flows_with_one_hash_keep_their_own_counts(monkeypatch):
    """A 64-bit hash collision (forced: every key hashes alike under the first seed) never puts
    one flow's counters on another's row: the table re-seeds and matches by the whole key."""
    import lwtui.core.flowcols as flowcols
    real = flowcols.key_hashes

    def colliding(keys, seed=0):
        return real(keys, seed) if seed else real(keys, seed) * 0
    monkeypatch.setattr(flowcols, "key_hashes", colliding)
    t = FlowStore(rate_window=3.0)
    a, b, c = fid(1), fid(2), fid(3)
    t.note_new(c, 99.0)
    t.update(100.0, [(a, ctr(10, first=99.0, last=100.0)), (b, ctr(20, first=99.0, last=100.0))])
    t.update(101.0, [(a, ctr(13, first=99.0, last=101.0)), (b, ctr(50, first=99.0, last=101.0))])
    assert len(t) == 3 and (t.get(a).packets, t.get(b).packets) == (13, 50) and t.get(c).packets == 0
    assert t.get(fid(4)) is None
