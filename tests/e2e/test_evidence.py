"""Evidence: `--pcap FILE` records the dropped (and, in dry-run, would-drop) packets.

The oracle is tcpdump reading the file back: exactly the datagrams the test
sent into a block, with their 5-tuple, their captured bytes cut at the
snaplen, and kernel timestamps within the seconds the test sent them; the
traffic that passed is not in it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from tests.e2e.cli import lwtui_env, ok, watch, which  # noqa: F401 (fixtures)
from tests.e2e.traffic import udp_send


def tcpdump(path, *flags: str) -> list[str]:
    r = subprocess.run([which("tcpdump"), "-r", str(path), "-nn", *flags], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def packets(path) -> list[tuple[float, str, int, str, int]]:
    """(time, src, sport, dst, dport) of each packet in the file, as tcpdump reads it."""
    out = []
    for line in tcpdump(path, "-tt"):
        m = re.match(r"(\d+\.\d+) IP (\S+)\.(\d+) > (\S+)\.(\d+): ", line)
        assert m, line
        out.append((float(m[1]), m[2], int(m[3]), m[4], int(m[5])))
    return out


def flow_done(w, sport: int, field: str, n: int) -> dict:
    return w.wait_for(lambda d: d["type"] == "flow" and d.get("sport") == sport and d[field] == n,
                      what=f"the flow from port {sport} with {field} {n}")


def test_pcap_holds_exactly_the_dropped_packets(topo, watch, lwtui_env, tmp_path):
    name, pcap, n = f"t{os.getpid()}p", tmp_path / "drops.pcap", 7
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.2", "--duration", "60",
              "--session", name, "--pcap", str(pcap), "--snaplen", "64")
    assert w.session()["pcap"] == str(pcap)
    ok(lwtui_env, "block", "port", "5353/udp", "--session", name)
    began = time.time()
    _, passed = udp_send(topo.client_ns, topo.server_v4, 5354, 4, 100, sport=40301)   # allowed: not evidence
    assert passed == 4
    sport, sent = udp_send(topo.client_ns, topo.server_v4, 5353, n, 100, sport=40302)
    ended = time.time()
    assert sent == 0                                  # every sendto got EPERM: all n were dropped
    flow_done(w, sport, "drops", n)
    st = w.wait_for(lambda d: d["type"] == "stats" and d.get("pcap", {}).get("files", [{}])[0].get("packets") == n,
                    what="the stats line counting the recorded packets")
    assert st["pcap"]["lost"] == 0 and st["pcap"]["files"][0]["skipped"] == 0
    assert w.stop() == 128 + signal.SIGTERM
    got = packets(pcap)
    assert [p[1:] for p in got] == [(topo.client_v4, sport, topo.server_v4, 5353)] * n
    assert all(began - 0.01 <= p[0] <= ended + 0.01 for p in got), (began, ended, got)   # kernel time, as wall time
    # Each record holds the snaplen's 64 bytes of the 128-byte datagram (20 IP + 8 UDP + 100).
    hexdump = tcpdump(pcap, "-x")
    sizes = []
    for line in hexdump:
        if line.startswith("\t0x"):
            sizes[-1] += len(line.split(":", 1)[1].split())
        else:
            sizes.append(0)
    assert sizes == [32] * n      # -x prints 16-bit words: 64 bytes
    said = f"lwtui: {n} packet(s) recorded in {pcap}"
    deadline = time.monotonic() + 10
    while said not in w.stderr and time.monotonic() < deadline:   # the stderr reader catches up
        time.sleep(0.05)
    assert said in w.stderr


def test_dry_run_records_the_would_drop_packets_it_lets_through(topo, watch, lwtui_env, tmp_path):
    name, pcap, n = f"t{os.getpid()}q", tmp_path / "would.pcap", 5
    w = watch(f"{topo.server_v4}/32", "--netns", topo.client_ns, "--interval", "0.2", "--duration", "60",
              "--session", name, "--pcap", str(pcap), "--dry-run")
    ok(lwtui_env, "block", "port", "5353/udp", "--session", name)
    sport, sent = udp_send(topo.client_ns, topo.server_v4, 5353, n, 100, sport=40303)
    assert sent == n                                  # dry-run: every datagram passed
    flow_done(w, sport, "would_drops", n)
    w.wait_for(lambda d: d["type"] == "stats" and d.get("pcap", {}).get("files", [{}])[0].get("packets") == n,
               what="the stats line counting the recorded packets")
    assert w.stop() == 128 + signal.SIGTERM
    assert [p[1:] for p in packets(pcap)] == [(topo.client_v4, sport, topo.server_v4, 5353)] * n
