"""The columnar flow store's views (lwtui/core/flowcols.py): a FlowView reads as the
records do, vectorized filters and sorts agree with the per-record ones."""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

from lwtui.core.filters import parse_filter
from lwtui.core.flowcols import FlowView, decode_id, encode_ids, rule_mask
from lwtui.core.flows import Counters, FlowStore
from lwtui.core.grammar import parse_rule
from lwtui.core.model import FlowId
from lwtui.ui import selection
from lwtui.ui.selection import SORTS, select_flows

ADDRS = ["10.0.0.2", "10.0.0.3", "10.1.2.3", "192.168.7.1", "fd00::2", "fd00::3", "2001:db8::9", "::ffff:10.0.0.2"]


def random_flows(n: int, seed: int = 7) -> list[FlowId]:
    rnd = random.Random(seed)
    out = set()
    while len(out) < n:
        src, dst = rnd.choice(ADDRS), rnd.choice(ADDRS)
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if s.version != d.version:
            continue
        proto = rnd.choice([6, 17, 1, 58, 132])
        out.add(FlowId(rnd.choice(["in", "out", "xmit"]), proto, s, rnd.choice([0, 53, 80, 8080, 40000]),
                       d, rnd.choice([0, 8, 53, 80, 8080]), rnd.random() < 0.1))
    return sorted(out, key=repr)


def filled(n: int = 300) -> tuple[FlowStore, list[FlowId]]:
    t = FlowStore(rate_window=3.0)
    ids = random_flows(n)
    rnd = random.Random(3)
    for tick in range(4):
        now = 100.0 + tick
        rows = [(f, Counters(packets=(i + 1) * (tick + 1) * rnd.randint(1, 3), bytes=(i + 1) * 100 * (tick + 1),
                             drops=(i % 5 == 0) * tick, first_seen=99.0, last_seen=now - (i % 7),
                             verdict=("allow", "drop", "would-drop")[i % 3], rule="port 53" if i % 3 else ""))
                for i, f in enumerate(ids)]
        t.update(now, rows)
    return t, ids


def test_keys_round_trip():
    ids = random_flows(200)
    keys = encode_ids(ids)
    assert [decode_id(k) for k in keys] == ids


def test_a_view_reads_as_the_records():
    t, _ = filled()
    view = t.view()
    assert isinstance(view, FlowView) and len(view) == len(t)
    assert list(view) == t.records()
    assert view[5] is view[5]                       # built once per view
    assert view[-1] == list(view)[-1]


def test_a_view_stays_as_it_was_after_the_next_update():
    t, ids = filled(50)
    view = t.view()
    before = [(r.packets, r.pps, r.history) for r in (view.record(i) for i in range(0, 50, 2))]
    t.update(105.0, [(f, Counters(10**6, 10**8, 0, 99.0, 105.0)) for f in ids])
    after = [(r.packets, r.pps, r.history) for r in view[0:50:2]]
    assert after == before


FILTERS = ["", "host 10.0.0.2", "src host 10.0.0.0/8", "dst 10.0.0.3", "host fd00::/64", "port 53",
           "dst port 8080/tcp", "src port 40000", "proto icmp", "udp", "icmpv6", "hook in", "verdict drop",
           "verdict allow or hook xmit", "not port 80", "(host 10.0.0.2 or host fd00::2) and not udp",
           "flow tcp 10.0.0.2:80 10.0.0.3:8080", "flow icmp 10.0.0.2:8 10.0.0.3:0", "10.1.2.3", "8080/udp",
           "host 2001:db8::/32", "host 10.0.0.2/31 port 53"]


@pytest.mark.parametrize("text", FILTERS)
def test_a_filter_mask_is_the_per_record_match(text):
    t, _ = filled()
    view = t.view()
    flt = parse_filter(text)
    want = [flt.matches(r) for r in view]
    assert flt.mask(view).tolist() == want


@pytest.mark.parametrize("text", ["host 10.0.0.2", "port 53/udp", "proto udp", "flow udp 10.0.0.2:53 10.0.0.3:53",
                                  "src host 10.0.0.2 and dst port 8080/tcp",
                                  "(src host 10.0.0.0/8 or dst host fd00::/8) and not proto tcp"])
def test_a_rule_mask_is_the_rule_match(text):
    t, _ = filled()
    view = t.view()
    rule = parse_rule(text)
    assert rule_mask(view.keys, rule).tolist() == [rule.matches(r.id) for r in view]


@pytest.mark.parametrize("sort", SORTS, ids=[s.name for s in SORTS])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("text", ["", "udp or hook in"])
@pytest.mark.parametrize("partial", [None, 16], ids=["whole-sort", "top-first"])
def test_selection_on_columns_is_the_selection_on_records(sort, reverse, text, partial, monkeypatch):
    if partial:
        monkeypatch.setattr(selection, "PARTIAL_SORT", partial)
    t, ids = filled()
    view = t.view()
    flt = parse_filter(text)
    for limit in (None, 7, 40):
        a = select_flows(view, now=103.0, sort=sort, flt=flt, expire_after=5.0, limit=limit, reverse=reverse)
        b = select_flows(list(view), now=103.0, sort=sort, flt=flt, expire_after=5.0, limit=limit, reverse=reverse)
        assert (a.matched, a.total) == (b.matched, b.total)
        want = [r.id for r in b.rows]
        assert [a.rows.index_of(f) for f in ids] == [want.index(f) if f in want else None for f in ids]
        assert [r.id for r in a.rows] == want


def test_rows_find_a_flow_by_id():
    t, ids = filled(100)
    view = t.view()
    sel = select_flows(view, now=103.0, sort=SORTS[0])
    for f in ids[::9]:
        i = sel.rows.index_of(f)
        assert sel.rows[i].id == f
    assert sel.rows.index_of(FlowId("out", 6, ipaddress.ip_address("1.2.3.4"), 1, ipaddress.ip_address("1.2.3.5"), 2)) \
        is None


def test_columns_in_give_the_same_table_as_objects_in():
    """update_columns (the session's path) and update (objects) keep the same flows."""
    ids = random_flows(100)
    a, b = FlowStore(), FlowStore()
    for tick in range(3):
        now = 100.0 + tick
        rows = [(f, Counters(i * tick + 1, 100 * (i * tick + 1), 0, 99.0, now)) for i, f in enumerate(ids)]
        a.update(now, rows)
        counters = np.array([(c.packets, c.bytes, c.drops, c.first_seen, c.last_seen, 0, 0, 0) for _, c in rows],
                            dtype=[("packets", "<i8"), ("bytes", "<i8"), ("drops", "<i8"), ("first_seen", "<f8"),
                                   ("last_seen", "<f8"), ("tcp_flags", "u1"), ("verdict", "i1"), ("rule", "<i4")])
        b.update_columns(now, encode_ids(ids), counters)
    assert a.records() == b.records()


def test_watch_table_picks_the_same_busiest_flows_from_columns():
    from lwtui.cli.watch import busiest
    t, _ = filled()
    view = t.view()
    assert [r.id for r in busiest(view, 25)] == [r.id for r in busiest(list(view), 25)]


def _counter_rows(ids: list[FlowId], tick: int, now: float) -> np.ndarray:
    return np.array([((i + 1) * (tick + 1), 100 * (i + 1) * (tick + 1), i % 3 * tick, 99.0, now, 0, 0, 0)
                     for i, _ in enumerate(ids)],
                    dtype=[("packets", "<i8"), ("bytes", "<i8"), ("drops", "<i8"), ("first_seen", "<f8"),
                           ("last_seen", "<f8"), ("tcp_flags", "u1"), ("verdict", "i1"), ("rule", "<i4")])


def test_a_steady_map_read_in_another_order_is_hashed_once(monkeypatch):
    """Flows announced by events in one order, the map read in another (its buckets'): the
    table takes the read's order after one hashed match, later reads of the unchanged map
    are matched without hashing, and every record equals a table fed in one order."""
    ids = random_flows(200)
    order = list(range(len(ids)))
    random.Random(5).shuffle(order)
    read = [ids[i] for i in order]
    calls = []
    real_match = FlowStore._match

    def counting(self, keys):
        if self is moved:
            calls.append(len(keys))
        return real_match(self, keys)
    monkeypatch.setattr(FlowStore, "_match", counting)
    plain, moved = FlowStore(), FlowStore()
    for f in ids:                                     # the events' order
        moved.note_new(f, 99.5)
    for tick in range(5):
        now = 100.0 + tick
        plain.update_columns(now, encode_ids(read), _counter_rows(read, tick, now))
        moved.update_columns(now, encode_ids(read), _counter_rows(read, tick, now))
        if tick == 0:        # the events' rows were added by this read: churn, the order stays
            assert calls and [decode_id(k) for k in moved._keys] == ids
        if tick == 1:        # the same flows again: hashed once more, then the table takes the order
            assert [decode_id(k) for k in moved._keys] == read
            calls.clear()
    assert calls == []
    assert sorted(plain.records(), key=lambda r: repr(r.id)) == sorted(moved.records(), key=lambda r: repr(r.id))


def test_a_read_that_brings_new_flows_keeps_the_table_order():
    """Churn (flows new to the table) leaves the table's order alone: reordering it on every
    read would cost more than the match it saves. Flows absent from a read stay in place."""
    ids = random_flows(60)
    t = FlowStore()
    t.update_columns(100.0, encode_ids(ids[:40]), _counter_rows(ids[:40], 0, 100.0))
    later = ids[20:][::-1]                            # 20 flows absent, 20 new, another order
    t.update_columns(101.0, encode_ids(later), _counter_rows(later, 1, 101.0))
    assert [decode_id(k) for k in t._keys] == ids[:40] + [f for f in later if f not in ids[:40]]
    again = ids[20:40][::-1]                          # no new flow: read's order first, absent after
    t.update_columns(102.0, encode_ids(again), _counter_rows(again, 2, 102.0))
    rest = [decode_id(k) for k in t._keys]
    assert rest[:20] == again and sorted(rest[20:], key=repr) == sorted(ids[:20] + ids[40:], key=repr)


def test_rows_appended_in_place_leave_a_views_histories_as_they_were():
    """The history rings keep room for more rows (appends do not copy them each tick); a view
    taken before rows were appended in that room reads the histories of its own tick."""
    from lwtui.core.rates import grown
    buf = np.arange(6.0).reshape(3, 2)
    assert grown(buf, 3, 0) is buf and grown(buf, 2, 1) is buf
    bigger = grown(buf, 3, 1)
    assert bigger.shape == (1024, 2) and (bigger[:3] == buf).all() and (bigger[3:] == 0).all()
    assert grown(bigger, 1000, 24) is bigger and len(grown(bigger, 1000, 25)) == 2048    # twice the room

    ids = random_flows(40)

    def fed(extra: bool) -> tuple[FlowStore, FlowView]:
        t = FlowStore()
        for tick, n in enumerate((20, 30, 31, 32)):
            now = 100.0 + tick
            t.update_columns(now, encode_ids(ids[:n]), _counter_rows(ids[:n], tick, now))
        view = t.view()
        if extra:
            buf = t._hist._buf
            for tick in range(4, 10):                   # one flow more a tick, in the room
                now = 100.0 + tick
                t.update_columns(now, encode_ids(ids[:tick + 29]), _counter_rows(ids[:tick + 29], tick, now))
            assert t._hist._buf is buf and len(buf) > len(t._hist.hist)
        return t, view

    (_, late), (_, plain) = fed(True), fed(False)
    # Six ticks on, two past the rings' 4 ticks of slack, the view leaves out its two oldest
    # values (a full ring writes over them by then): the rule of a view whose rings still move.
    assert [r.history for r in late] == [r.history[2:] for r in plain]
    assert any(len(r.history) >= 3 for r in plain)
