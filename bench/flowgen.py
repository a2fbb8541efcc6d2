"""A bounded new-flow storm: UDP datagrams, each one a flow never seen before.

`python bench/flowgen.py DST RATE SECONDS [--sockets N]` (run inside the
client namespace) sends one 16-byte datagram per (source port, destination
port) pair, walking destination ports 1024..65535 on each of N sockets, at
RATE datagrams per second (paced in 1 ms slices; 0 = as fast as it can) for
at most SECONDS. Prints one JSON line: sent, errors, seconds, rate, and what
names every flow sent: each socket's source port (`sports`), how many
destination ports it walked from 1024 (`walked`) and the (socket, port) pairs
whose sendto failed (`failed_at`, the first 10,000).

Standalone on purpose: it imports nothing from lwtui or bench, so it starts
fast inside `ip netns exec`.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

FIRST_PORT, LAST_PORT = 1024, 65535


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("dst")
    p.add_argument("rate", type=float)
    p.add_argument("seconds", type=float)
    p.add_argument("--sockets", type=int, default=8)
    a = p.parse_args()
    fam = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    socks = [socket.socket(fam, socket.SOCK_DGRAM) for _ in range(a.sockets)]
    for s in socks:
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
    payload = b"lwtui-bench-flow"
    sent = errors = 0
    walked = [0] * len(socks)
    failed_at: list[tuple[int, int]] = []
    sock_i, port = 0, FIRST_PORT
    t0 = time.monotonic()
    end = t0 + a.seconds
    slice_s = 0.001
    while True:
        now = time.monotonic()
        if now >= end or sock_i >= len(socks):
            break
        # how many datagrams should be out by the end of this slice
        due = int((now - t0 + slice_s) * a.rate) if a.rate > 0 else sent + 256
        send = socks[sock_i].sendto
        while sent + errors < due and port <= LAST_PORT:
            try:
                send(payload, (a.dst, port))
                sent += 1
            except OSError:
                errors += 1
                if len(failed_at) < 10_000:
                    failed_at.append((sock_i, port))
            port += 1
        walked[sock_i] = port - FIRST_PORT
        if port > LAST_PORT:
            sock_i, port = sock_i + 1, FIRST_PORT
        if a.rate > 0:
            pause = t0 + (due / a.rate) - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    took = time.monotonic() - t0
    print(json.dumps({"sent": sent, "errors": errors, "seconds": round(took, 4),
                      "rate": round(sent / took, 1) if took else 0.0,
                      "sports": [sk.getsockname()[1] for sk in socks], "walked": walked,
                      "failed_at": failed_at}), flush=True)


if __name__ == "__main__":
    main()
