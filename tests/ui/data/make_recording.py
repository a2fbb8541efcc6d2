"""Generate tests/ui/data/demo.json: a hand-shaped recording of the demo lab.

Not kernel counters: deterministic curves (no randomness) shaped like the lab's
traffic seen from 10.0.0.2 in namespace lwtui-demo-a: HTTP to 10.0.0.3:8080, an
iperf-like bulk transfer, mDNS-like UDP, DNS that went quiet, pings (IPv4 and
IPv6), IPv6 HTTP, and the HTTP replies at the `in` hook. Run it again after
changing the shapes:  .venv/bin/python tests/ui/data/make_recording.py
"""

from __future__ import annotations

import ipaddress
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from lwtui.core.model import AttachedRoute, EventEntry, FlowId, FlowRecord, Snapshot, Totals  # noqa: E402
from lwtui.session.replay import record_snapshots  # noqa: E402

T0 = 1767268800.0          # 2026-01-01 12:00:00 UTC: a fixed clock for screenshots
STARTED = T0 - 27.0
FRAMES = 40
HISTORY = 60
NETNS = "lwtui-demo-a"
SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01


def ip(a: str):
    return ipaddress.ip_address(a)


# (flow, first frame, last active frame, bits/s function of frame, packet size, tcp flags)
def _profiles():
    bulk = lambda i: 930e6 + 40e6 * math.sin(i / 2.3)                       # noqa: E731
    http = lambda i: 180e3 + 160e3 * max(0.0, math.sin(i * 1.7))            # noqa: E731
    http_in = lambda i: 1.4e6 + 1.2e6 * max(0.0, math.sin(i * 1.7 + 0.2))   # noqa: E731
    v6 = lambda i: 2.1e6 + 0.9e6 * math.sin(i / 1.5)                        # noqa: E731
    video = lambda i: 4.8e6 + 0.6e6 * math.sin(i / 3.0)                     # noqa: E731
    return [
        (FlowId("out", 6, ip("10.0.0.2"), 45678, ip("10.0.0.3"), 5201), 4, FRAMES, bulk, 1500, SYN | ACK | PSH),
        (FlowId("out", 6, ip("10.0.0.2"), 40312, ip("10.0.0.3"), 8080), 0, FRAMES, http, 420, SYN | ACK | PSH),
        (FlowId("in", 6, ip("10.0.0.3"), 8080, ip("10.0.0.2"), 40312), 0, FRAMES, http_in, 1200, SYN | ACK | PSH),
        (FlowId("out", 6, ip("10.0.0.2"), 40318, ip("10.0.0.3"), 8080), 2, 12, http, 380,
         SYN | ACK | PSH | FIN),
        (FlowId("out", 17, ip("10.0.0.2"), 5353, ip("10.0.0.3"), 5353), 0, FRAMES, lambda i: 12 * 120 * 8, 120, 0),
        (FlowId("out", 1, ip("10.0.0.2"), 8, ip("10.0.0.3"), 0), 1, FRAMES, lambda i: 84 * 8, 84, 0),
        (FlowId("in", 1, ip("10.0.0.3"), 0, ip("10.0.0.2"), 0), 1, FRAMES, lambda i: 84 * 8, 84, 0),
        (FlowId("out", 6, ip("2001:db8::2"), 50412, ip("2001:db8::3"), 8080), 6, FRAMES, v6, 1280, SYN | ACK | PSH),
        (FlowId("out", 58, ip("2001:db8::2"), 128, ip("2001:db8::3"), 0), 3, FRAMES, lambda i: 104 * 8, 104, 0),
        (FlowId("out", 17, ip("10.0.0.2"), 39211, ip("10.0.0.3"), 53), 0, 5, lambda i: 9 * 76 * 8, 76, 0),
        (FlowId("xmit", 17, ip("10.0.0.2"), 41000, ip("10.0.0.3"), 9000), 8, FRAMES, video, 1316, 0),
    ]


def _text(f: FlowId) -> str:
    def ep(a, p):
        s = f"[{a}]" if a.version == 6 else str(a)
        return s if f.is_icmp else f"{s}:{p}"
    return f"{f.hook} {f.proto_name} {ep(f.src, f.sport)} -> {ep(f.dst, f.dport)}"


def build() -> list[Snapshot]:
    """The frames, one per second."""
    state: dict[FlowId, FlowRecord] = {}
    snaps = []
    routes = [AttachedRoute("10.0.0.3/32", "out", NETNS, "lwtui-a0"),
              AttachedRoute("10.0.0.3/32", "xmit", NETNS, "lwtui-a0"),
              AttachedRoute("2001:db8::3/128", "out", NETNS, "lwtui-a0"),
              AttachedRoute("10.0.0.2/32", "in", NETNS, "lwtui-a0")]
    for i in range(FRAMES):
        now = T0 + i
        events = []
        if i == 0:
            events.append(EventEntry(now - 0.5, "info", "session demo attached to 10.0.0.3/32 (out, xmit), "
                                     "2001:db8::3/128 (out), 10.0.0.2/32 (in)"))
        for fid, start, stop, rate, size, flags in _profiles():
            if i < start:
                continue
            rec = state.get(fid)
            if rec is None:
                rec = state[fid] = FlowRecord(id=fid, first_seen=now - 0.4, last_seen=now - 0.4)
                events.append(EventEntry(now - 0.4, "new", _text(fid), fid))
            bps = rate(i) if i <= stop else 0.0
            pkts = int(round(bps / 8 / size)) if bps else 0
            rec.packets += pkts
            rec.bytes += pkts * size
            rec.tcp_flags |= flags if pkts else 0
            if pkts:
                rec.last_seen = now - 0.05
            rec.bps = pkts * size * 8.0
            rec.pps = float(pkts)
            rec.history = (rec.history + (rec.bps,))[-HISTORY:]
        flows = [FlowRecord(**{k: getattr(r, k) for k in r.__dataclass_fields__}) for r in state.values()]
        totals = Totals(packets=sum(r.packets for r in flows), bytes=sum(r.bytes for r in flows),
                        new_flows=len(flows), pps=sum(r.pps for r in flows), bps=sum(r.bps for r in flows),
                        active_flows=len(flows), flow_capacity=65536)
        snaps.append(Snapshot(time=now, flows=flows, totals=totals, events=events, routes=routes,
                              started=STARTED, session="demo"))
    return snaps


if __name__ == "__main__":
    out = Path(__file__).with_name("demo.json")
    record_snapshots(build(), out)
    print(f"wrote {out} ({FRAMES} frames)")
