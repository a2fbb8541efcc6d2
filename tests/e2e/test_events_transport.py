"""End to end: `lwtui watch --events ringbuf` delivers new-flow events through
the BPF ring buffer build, and the route is as before afterwards."""

from __future__ import annotations

import os
import signal
from collections import Counter

from pathlib import Path

from tests.e2e.cli import lwtui_env, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import udp_send


BPF_MAP_TYPE_PERF_EVENT_ARRAY, BPF_MAP_TYPE_RINGBUF = 4, 27


def map_types(pid: int) -> Counter[int]:
    """Types of the BPF maps process `pid` holds open, from /proc/PID/fdinfo, with how many
    of each (by map id: a map open on two fds counts once)."""
    maps: dict[int, int] = {}
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            fields = dict(line.split(":", 1) for line in info.read_text().splitlines() if ":" in line)
        except OSError:  # an fd closed meanwhile
            continue
        if "map_type" in fields:
            maps[int(fields.get("map_id", f"-{info.name}"))] = int(fields["map_type"])
    return Counter(maps.values())


def test_watch_with_ring_buffer_reports_a_new_flow(topo, route_dump, watch):
    before = route_dump(topo.client_ns)
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--events", "ringbuf",
              "--interval", "0.3", "--duration", "120", "--session", f"t{os.getpid()}r")
    sport, sent = udp_send(topo.client_ns, topo.server_v4, 5353, 3, 100)
    assert sent == 3
    new = w.wait_for(lambda d: d["type"] == "new" and d.get("proto") == "udp" and d.get("sport") == sport,
                     what="the new-flow event")
    assert (new["src"], new["dst"], new["dport"], new["hook"]) == (topo.client_v4, topo.server_v4, 5353, "out")
    types = map_types(w.proc.pid)
    # events in the ring buffer; the one perf buffer left is `captures` (pcap files, --pcap / w)
    assert types[BPF_MAP_TYPE_RINGBUF] == 1 and types[BPF_MAP_TYPE_PERF_EVENT_ARRAY] == 1, types
    w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport and d.get("packets") == 3,
               what="the flow line")
    assert w.stop() == 128 + signal.SIGTERM
    assert "Traceback" not in w.stderr
    w.drain()
    stats = [d for d in w.seen if d["type"] == "stats"]
    assert stats and all(d["events_lost"] == 0 for d in stats)
    # exactly one new-flow event for the flow: the ring buffer neither lost nor repeated it
    assert sum(1 for d in w.seen if d["type"] == "new" and d.get("sport") == sport) == 1
    assert route_dump(topo.client_ns) == before
