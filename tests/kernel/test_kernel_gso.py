"""A GSO/TSO packet counts as the packets it becomes on the wire (gso_segs);
bytes count skb->len, the IP bytes as the hook sees them.

BPF_PROG_TEST_RUN with a __sk_buff context carrying gso_segs, then a bulk TCP
flow through a real route against the sender's own count of segments
(`nstat` TcpOutSegs in the sender's namespace).
"""

from __future__ import annotations

import ctypes as ct
import struct
import subprocess
import sys

import packets as P
from kutil import BPF_DROP, add_rule, flows, host_key, rule_val, want
from lwtui.kernel import bpfsys

SKB_GSO_SEGS = 164  # offsetof(struct __sk_buff, gso_segs)


def run_gso(probe, hook: str, frame: bytes, segs: int, repeat: int = 1) -> int:
    ctx = (ct.c_uint8 * (SKB_GSO_SEGS + 4))()
    struct.pack_into("=I", ctx, SKB_GSO_SEGS, segs)
    retval, _ = bpfsys.prog_test_run(probe.prog_fd(hook), frame, repeat=repeat, ctx=ctx)
    return retval


def test_gso_packet_counts_its_segments(probe):
    frame = P.packet(4, P.TCP, "10.0.0.2", "10.0.0.3", 1, 2, payload=b"x" * 1000, flags=P.ACK)
    run_gso(probe, "out", frame, 7, repeat=3)
    run_gso(probe, "out", frame, 0)  # not GSO: one packet
    st = flows(probe)[want("10.0.0.2", "10.0.0.3", P.TCP, 1, 2)]
    assert (st.packets, st.bytes) == (22, 4 * (len(frame) - 14))
    s = probe.read_stats()
    assert (s["packets"], s["bytes"]) == (22, 4 * (len(frame) - 14))


def test_dropped_gso_packet_drops_its_segments(probe):
    add_rule(probe, host_key("10.0.0.3/32"))
    frame = P.packet(4, P.UDP, "10.0.0.2", "10.0.0.3", 1, 2, payload=b"u" * 1400)
    assert run_gso(probe, "xmit", frame, 5, repeat=2) == BPF_DROP
    st = flows(probe)[want("10.0.0.2", "10.0.0.3", P.UDP, 1, 2, "xmit")]
    assert (st.packets, st.drops) == (10, 10)
    assert probe.read_stats()["drops"] == 10 and rule_val(probe, host_key("10.0.0.3/32")).hits == 10


SINK = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(20)
print("ready", flush=True)
c, _ = s.accept(); c.settimeout(20)
n = 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    n += len(b)
print(n, flush=True)
"""

BULK = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
buf, left = b"b" * (1 << 16), int(sys.argv[3])
while left > 0:
    c.sendall(buf[:left]); left -= len(buf)
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
"""


def tcp_out_segs(ns: str) -> int:
    r = subprocess.run(["ip", "netns", "exec", ns, "nstat", "-asz", "TcpOutSegs"], capture_output=True,
                       text=True, timeout=10, check=True)
    return int(r.stdout.split("TcpOutSegs")[1].split()[0])


def test_bulk_tcp_counts_what_the_sender_sent(probe, topo, on_route):
    """8 MB over TCP through the `out` hook: the flow's packets match the
    sender's TcpOutSegs (GSO packets of up to 64 KB count their segments)."""
    cli, srv, size = topo.client_v4, topo.server_v4, 8 << 20
    on_route(probe, "out", 4)
    sink = subprocess.Popen(["ip", "netns", "exec", topo.server_ns, sys.executable, "-c", SINK, srv, "5201"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready", sink.stderr.read()
        before = tcp_out_segs(topo.client_ns)
        subprocess.run(["ip", "netns", "exec", topo.client_ns, sys.executable, "-c", BULK, srv, "5201", str(size)],
                       check=True, timeout=30, capture_output=True)
        received = int(sink.communicate(timeout=30)[0].split()[-1])
        segs = tcp_out_segs(topo.client_ns) - before
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    assert received == size
    mine = [st for k, st in flows(probe).items() if k[4] == P.TCP and k[3] == 5201]
    assert len(mine) == 1
    counted = mine[0].packets
    print(f"bulk TCP: counted {counted} packets, TcpOutSegs grew by {segs}")
    assert abs(counted - segs) <= 0.03 * segs, (counted, segs)
    assert counted > 3 * size // 65536, "GSO packets were counted once each"
    assert mine[0].bytes > size
