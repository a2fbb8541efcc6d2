"""Crafted packets on real routes: raw-socket senders and counting receivers,
run inside a test topology's namespaces (never anywhere else), bounded in
count and time."""

from __future__ import annotations

import contextlib
import subprocess
import sys

SEND = """
import socket, sys
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
pkts = [bytes.fromhex(h) for h in sys.argv[3:]]
ok = 0
for _ in range(int(sys.argv[2])):
    for p in pkts:
        try:
            s.sendto(p, (sys.argv[1], 0)); ok += 1
        except OSError:
            pass
print(ok)
"""

# Count what arrives: "udp PORT" (datagrams delivered to a UDP socket) or
# "tcp SPORT DPORT FLAGS" (TCP segments seen by a raw socket, flags all set).
RECV = """
import socket, struct, sys, time
mode, family, expect, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if family == 6 else socket.AF_INET
if mode == "udp":
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(("::" if family == 6 else "0.0.0.0", int(sys.argv[5])))
else:
    s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_TCP)
    want = tuple(int(x) for x in sys.argv[5:8])
print("ready", flush=True)
got, deadline = 0, time.monotonic() + timeout
while got < expect and time.monotonic() < deadline:
    s.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        data = s.recv(65535)
    except socket.timeout:
        break
    if mode == "udp":
        got += 1
        continue
    if family == 4:
        data = data[(data[0] & 0x0F) * 4:]   # IPv4 raw sockets see the IP header
    sport, dport = struct.unpack("!HH", data[:4])
    if (sport, dport) == want[:2] and data[13] & want[2] == want[2]:
        got += 1
print(got, flush=True)
"""


def send(ns: str, dst: str, packets: list[bytes], rounds: int = 1) -> int:
    """Send each IP packet (header included) `rounds` times from `ns`; how many were sent."""
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SEND, dst, str(rounds),
                        *(p.hex() for p in packets)], capture_output=True, text=True, timeout=30, check=True)
    return int(r.stdout)


@contextlib.contextmanager
def receiver(ns: str, family: int, expect: int, timeout: float, *spec):
    """A counter in `ns`, ready when the block is entered; `.result()` waits for
    it (until `expect` packets or `timeout` seconds) and returns the count."""
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", RECV, spec[0], str(family),
                          str(expect), str(timeout), *map(str, spec[1:])],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"receiver in {ns} did not start: {line} {p.stderr.read()}")

        def result() -> int:
            out, err = p.communicate(timeout=timeout + 10)
            assert p.returncode == 0, err
            return int(out.split()[-1])

        p.result = result
        yield p
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=5)


# Pinned to one CPU, send `count` copies of a template IPv4/IPv6 packet whose
# 16-bit field at `port_off` counts up from `first` (first == 0: unchanged),
# waiting for "go" on stdin so that several senders start together.
PINNED = """
import os, socket, struct, sys
cpu, dst, tmpl, port_off, first, count = int(sys.argv[1]), sys.argv[2], bytes.fromhex(sys.argv[3]), \\
    int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
os.sched_setaffinity(0, {cpu})
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_RAW)
pkt = bytearray(tmpl)
print("ready", flush=True)
sys.stdin.readline()
ok = 0
for i in range(count):
    if first:
        struct.pack_into("!H", pkt, port_off, (first + i) & 0xFFFF)
    try:
        s.sendto(pkt, (dst, 0)); ok += 1
    except OSError:
        pass
print(ok, os.sched_getaffinity(0) == {cpu}, flush=True)
"""


def send_pinned(ns: str, dst: str, jobs: list[tuple[int, bytes, int, int, int]]) -> list[int]:
    """Run one raw sender per job (cpu, template, port_off, first, count) in
    `ns`, all started together; returns how many each sent."""
    procs = [subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", PINNED, str(cpu), dst, tmpl.hex(),
                               str(off), str(first), str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for cpu, tmpl, off, first, count in jobs]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        sent = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            n, pinned = out.split()
            assert pinned == "True", "the sender ran off its CPU"
            sent.append(int(n))
        return sent
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
