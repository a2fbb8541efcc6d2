"""Limits and load: a flow storm bigger than every table, and malformed packets.

Storm: hundreds of thousands of distinct UDP flows (one datagram each) from
the client namespace through a watched route with a 4096-entry flow map. The
kernel's LRU evicts, the user-space table stays at its cap, every new-flow
event is listed, counted past the events listed a second, or counted lost in
the stats lines, and the watch process's memory stays under a ceiling.

Malformed traffic: IP_HDRINCL raw sockets in the client namespace send
packets the parser must reject (IPv4 header length below 5 words, truncated
TCP and ICMP headers, a non-IP version nibble, IPv6 extension chains that are
too long or cut short). What the kernel lets through reaches the `out` and
`xmit` programs, which count parse errors, pass the packets on, and keep a
parallel UDP flow's counts exact. The kernel itself refuses (EINVAL at
sendto) an IPv4 header length below 5 words or past the packet's end: those
never reach a hook, and the test checks that too.
"""

from __future__ import annotations

import json
import sys
import threading
import time

from tests.e2e.cli import ROOT, lwtui_env, watch  # noqa: F401 (fixtures)
from tests.e2e.traffic import nsrun

MAX_FLOWS = 4096
SOCKETS, PORTS = 3, 64000                  # 192,000 distinct flows
RSS_CEILING_KIB = 320 * 1024               # measured: ~165 MiB at start, ~200 MiB peak

STORM = """
import socket, sys, time
dst, nsock, nports, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(nsock)]
for s in socks:
    s.bind(("0.0.0.0", 0))
sent = errors = 0
end = time.monotonic() + seconds
for s in socks:
    send = s.sendto
    for port in range(1024, 1024 + nports):
        try:
            send(b"storm", (dst, port)); sent += 1
        except OSError:
            errors += 1
    if time.monotonic() > end:
        break
print(sent, errors)
"""


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_flow_storm_stays_bounded(topo, watch):
    w = watch("10.0.0.3/32", "--netns", topo.client_ns, "--max-flows", str(MAX_FLOWS), "--interval", "0.5")
    pid = w.proc.pid
    peak, stop = [_rss_kib(pid)], threading.Event()

    def sample():
        while not stop.wait(0.1):
            peak.append(_rss_kib(pid))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    r = nsrun(topo.client_ns, [sys.executable, "-c", STORM, topo.server_v4, str(SOCKETS), str(PORTS), "30"],
              timeout=60)
    sent, errors = map(int, r.stdout.split())
    took = time.monotonic() - t0
    assert sent >= 150_000, f"the storm sent only {sent} datagrams ({errors} errors) in {took:.1f}s"
    final = w.wait_for(lambda d: d["type"] == "stats" and d["new_flows"] >= sent, timeout=20,
                       what=f"stats with new_flows >= {sent}")
    time.sleep(1.0)   # a couple more ticks: the reader drains, the table settles
    stop.set()
    w.drain()
    stats = [d for d in w.seen if d["type"] == "stats"]
    assert final["new_flows"] == sent, "one datagram per flow: every datagram is a new flow"
    assert all(s["flow_capacity"] == MAX_FLOWS and s["active_flows"] <= MAX_FLOWS for s in stats)
    assert max(s["active_flows"] for s in stats) == MAX_FLOWS, "the table filled up"
    last = stats[-1]
    # Whether a storm this size overruns the perf buffer depends on the machine (past the events
    # listed a second the reader only counts them); losses, when there are, are in the sums below.
    # tests/ui/test_live_totals.py overruns it for certain, with nobody reading.
    new_lines = sum(d["type"] == "new" for d in w.seen)
    dropped = sum(int(d["text"].split()[0]) for d in w.seen
                  if d["type"] == "lost" and "log entries dropped" in d["text"])
    counted = sum(int(d["text"].split()[1].replace(",", "")) for d in w.seen    # past the events listed a second
                  if d["type"] == "log" and d["kind"] == "new" and d["text"].startswith("and "))
    # Every new flow is accounted for: shown, dropped from a full log or past the events listed a
    # second (both counted), or lost in the kernel.
    assert new_lines + dropped + counted <= sent
    assert new_lines + dropped + counted + last["events_lost"] >= sent, (
        new_lines, dropped, counted, last["events_lost"], sent)
    flows_per_report = max(sum(1 for _ in g) for g in _reports(w.seen))
    assert flows_per_report <= MAX_FLOWS
    assert max(peak) < RSS_CEILING_KIB, f"peak RSS {max(peak)} KiB"
    print(f"\nstorm: {sent} flows in {took:.1f}s, new lines {new_lines}, log-dropped {dropped}, "
          f"lost {last['events_lost']}, peak RSS {max(peak) // 1024} MiB (start {peak[0] // 1024} MiB)")
    assert w.stop() == 143


def _reports(lines: list[dict]):
    """Flow lines grouped by report (each report ends with a stats line)."""
    group = []
    for d in lines:
        if d["type"] == "flow":
            group.append(d)
        elif d["type"] == "stats":
            yield group
            group = []


MALFORMED = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[1])
from tests.kernel import packets as P
s4, d4, s6, d6 = "10.0.0.2", "10.0.0.3", "fd00:6c77::2", "fd00:6c77::3"
v4 = {
    "ihl-3": P.ipv4(s4, d4, P.UDP, P.udp(1, 2, b"x" * 20), ihl=3),
    "ihl-past-end": P.ipv4(s4, d4, P.UDP, P.udp(1, 2, b"x" * 8), ihl=15),
    "udp-missing-after-options": P.ipv4(s4, d4, P.UDP, b"", ihl=6) + b"\x01\x01\x01\x01",
    "tcp-truncated": P.ipv4(s4, d4, P.TCP, P.tcp(1000, 80)[:10]),
    "tcp-doff-3": P.ipv4(s4, d4, P.TCP, P.tcp(1000, 80, doff=3)),
    "udp-truncated": P.ipv4(s4, d4, P.UDP, b"\x00\x01\x00"),
    "icmp-truncated": P.ipv4(s4, d4, P.ICMP, b"\x08\x00"),
    "version-5": P.ipv4(s4, d4, P.UDP, P.udp(1, 2, b"x"), version=5),
}
v6 = {
    "ipv6-chain-cut-short": P.ipv6(s6, d6, P.DSTOPTS, P.ipv6_chain(s6, d6, ["dst"] * 9, P.UDP, b"")[40:-4]),
    "ipv6-ext-cut-short": P.ipv6(s6, d6, P.HOPOPTS, b"\x11\x05" + b"\0" * 6),
    "ipv6-tcp-truncated": P.ipv6(s6, d6, P.TCP, P.tcp(1000, 80)[:12]),
}
raw4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)      # IP_HDRINCL implied
raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)     # IPV6_HDRINCL implied
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("0.0.0.0", 0))
result, good = {}, 0
for rnd in range(int(sys.argv[2])):
    for (name, pkt), (sock, dst) in [(kv, (raw4, d4)) for kv in v4.items()] + [(kv, (raw6, d6)) for kv in v6.items()]:
        try:
            sock.sendto(pkt, (dst, 0))
            result[name] = result.get(name, 0) + 1
        except OSError as e:
            result[name] = e.strerror
        udp.sendto(b"y" * 100, (d4, 5353))     # the well-formed flow, interleaved
        good += 1
print(json.dumps({"sport": udp.getsockname()[1], "good": good, "malformed": result}))
"""

# The kernel itself refuses these at sendto() (EINVAL) on this kernel: they never reach a hook.
REFUSED_BY_KERNEL = {"ihl-3", "ihl-past-end"}


def test_malformed_packets_count_as_parse_errors_and_disturb_nothing(topo, watch):
    w = watch("10.0.0.3/32", "fd00:6c77::3/128", "--hook", "out,xmit", "--netns", topo.client_ns,
              "--interval", "0.2")
    rounds = 5
    r = nsrun(topo.client_ns, [sys.executable, "-c", MALFORMED, str(ROOT), str(rounds)], timeout=30)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    refused = {k for k, v in out["malformed"].items() if not isinstance(v, int)}
    assert refused == REFUSED_BY_KERNEL, out["malformed"]
    reached = sum(v for v in out["malformed"].values() if isinstance(v, int))
    assert reached == rounds * 9
    good = out["good"]
    for hook in ("out", "xmit"):
        f = w.wait_for(lambda d: d["type"] == "flow" and d["hook"] == hook and d.get("sport") == out["sport"]
                       and d["packets"] == good, what=f"the UDP flow at {hook}")
        assert f["bytes"] == good * 128 and f["drops"] == 0 and f["verdict"] == "allow"
    st = w.wait_for(lambda d: d["type"] == "stats" and d["parse_errors"] == reached,
                    what=f"parse_errors == {reached} (every malformed packet, once: out and xmit share the route)")
    assert st["packets"] == reached + good
    assert st["new_flows"] == 2, "malformed packets make no flows"
    assert {(d["hook"], d["proto"]) for d in w.seen if d["type"] == "flow"} == {("out", "udp"), ("xmit", "udp")}
