"""Matching flows to sockets, and the owner cache: pure logic over listed sockets."""

from __future__ import annotations

import ipaddress
import os
import socket

from lwtui.core.model import FlowId, FlowRecord
from lwtui.net.attrs import Target
from lwtui.net.sockets import SockEntry
from lwtui.session import owners as O

A = ipaddress.ip_address
UDP, TCP = 17, 6


def flow(hook, proto, src, sport, dst, dport) -> FlowId:
    return FlowId(hook=hook, proto=proto, src=A(src), sport=sport, dst=A(dst), dport=dport)


def test_connected_socket_first_then_bound_address_then_wildcards():
    idx = O.SocketIndex([
        SockEntry(UDP, A("0.0.0.0"), 5353, A("0.0.0.0"), 0, 11, 0),
        SockEntry(UDP, A("10.0.0.2"), 5353, A("0.0.0.0"), 0, 12, 0),
        SockEntry(UDP, A("10.0.0.2"), 5353, A("10.0.0.3"), 53, 13, 0),
        SockEntry(TCP, A("::"), 8080, A("::"), 0, 14, 0),
        SockEntry(TCP, A("10.0.0.3"), 8080, A("10.0.0.2"), 40000, 0, 0),   # TIME_WAIT: no inode
    ])
    assert idx.match(flow("out", UDP, "10.0.0.2", 5353, "10.0.0.3", 53)) == 13
    assert idx.match(flow("out", UDP, "10.0.0.2", 5353, "10.0.0.3", 54)) == 12
    assert idx.match(flow("out", UDP, "10.0.0.9", 5353, "10.0.0.3", 54)) == 11
    assert idx.match(flow("in", TCP, "10.0.0.2", 40000, "10.0.0.3", 8080)) == 14   # dual-stack listener
    assert idx.match(flow("in", UDP, "10.0.0.2", 40000, "10.0.0.3", 8080)) is None
    assert idx.match(flow("out", TCP, "10.0.0.2", 8080, "10.0.0.3", 1)) == 14


def test_owners_are_cached_and_unknown_is_retried_a_few_times():
    now = [100.0]
    calls = []
    pid = os.getpid()
    inode = 2**32 - 1          # no process holds a socket with this inode
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock_inode = os.fstat(s.fileno()).st_ino
    known = flow("out", UDP, "10.0.0.2", 40000, "10.0.0.3", 53)
    lost = flow("out", UDP, "10.0.0.2", 40001, "10.0.0.3", 53)
    icmp = flow("out", 1, "10.0.0.2", 8, "10.0.0.3", 0)

    def list_socks(netns):
        calls.append(netns)
        return [SockEntry(UDP, A("10.0.0.2"), 40000, A("0.0.0.0"), 0, sock_inode, 0),
                SockEntry(UDP, A("10.0.0.2"), 40001, A("0.0.0.0"), 0, inode, 0)]

    r = O.OwnerResolver([Target("10.0.0.3/32", "out", "ns1")], list_socks, clock=lambda: now[0])
    recs = [FlowRecord(known), FlowRecord(lost), FlowRecord(icmp)]
    try:
        got = r.resolve(recs)
        assert list(got) == [known] and got[known].pid == pid and calls == ["ns1"]
        assert r.resolve(recs) == got and calls == ["ns1"]           # cached, and not due yet
        for _ in range(O.UNKNOWN_TRIES - 1):
            now[0] += O.UNKNOWN_RETRY
            r.resolve(recs)
        assert len(calls) == O.UNKNOWN_TRIES                          # only `lost` was looked up again
        now[0] += O.UNKNOWN_RETRY
        r.resolve(recs)
        assert len(calls) == O.UNKNOWN_TRIES                          # then left alone for KNOWN_TTL
    finally:
        s.close()


def test_detail_pane_names_the_process_or_says_unknown():
    from lwtui.core.model import Owner
    from lwtui.ui.detail import detail_text
    f = flow("out", UDP, "10.0.0.2", 40000, "10.0.0.3", 53)
    rec = FlowRecord(f, first_seen=1.0, last_seen=2.0)
    assert "process" not in detail_text(rec, 3.0).plain                 # a replay: no attribution at all
    assert "process   unknown" in detail_text(rec, 3.0, {}).plain
    text = detail_text(rec, 3.0, {f: Owner(4242, "lwtui-sender", "root")}).plain
    assert "process   lwtui-sender   pid 4242   user root" in text


def test_a_table_view_is_keyed_by_key_bytes_and_cached_flows_cost_no_flow_id(monkeypatch):
    """A session hands the resolver its table's view: the owners equal those of the same flows
    as records, and a second tick decodes no FlowId for flows already cached."""
    import numpy as np
    from lwtui.core.flowcols import COUNTER_DTYPE, FlowView, encode_ids
    from lwtui.core.flows import FlowStore
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock_inode = os.fstat(s.fileno()).st_ino
    ids = [flow("out", UDP, "10.0.0.2", 40000 + i, "10.0.0.3", 53) for i in range(20)]
    ids.append(flow("out", 1, "10.0.0.2", 8, "10.0.0.3", 0))               # ICMP: never looked up

    def list_socks(netns):
        return [SockEntry(UDP, A("10.0.0.2"), 40000 + i, A("0.0.0.0"), 0, sock_inode if i % 2 else 7, 0)
                for i in range(20)]

    store = FlowStore()
    counters = np.zeros(len(ids), dtype=COUNTER_DTYPE)
    counters["packets"], counters["first_seen"], counters["last_seen"] = 1, 99.0, 100.0
    store.update_columns(100.0, encode_ids(ids), counters)
    view = store.view()
    now = [100.0]
    by_view = O.OwnerResolver([Target("10.0.0.3/32", "out", "ns1")], list_socks, clock=lambda: now[0])
    by_records = O.OwnerResolver([Target("10.0.0.3/32", "out", "ns1")], list_socks, clock=lambda: now[0])
    decoded = []
    real = FlowView.flow_id
    monkeypatch.setattr(FlowView, "flow_id", lambda self, i: decoded.append(i) or real(self, i))
    try:
        got = by_view.resolve(view)
        assert got == by_records.resolve([FlowRecord(f) for f in ids])
        assert set(got) == set(ids[1:20:2]) and len(decoded) == len(ids)
        decoded.clear()
        now[0] += O.RESOLVE_INTERVAL
        assert by_view.resolve(store.view()) == got and decoded == []     # all cached, none due
    finally:
        s.close()
