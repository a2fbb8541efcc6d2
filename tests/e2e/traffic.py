"""Bounded traffic between a test topology's namespaces (never anywhere else)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

UDP_SEND = """
import socket, sys
dst, port, n, size, sport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', sport))
ok = 0
for _ in range(n):
    try:
        s.sendto(b'x' * size, (dst, port)); ok += 1
    except OSError:
        pass
print(s.getsockname()[1], ok)
"""


UDP_PACED = """
import socket, sys, time
dst, port, n, size, sport, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \\
    int(sys.argv[5]), float(sys.argv[6])
fam = socket.AF_INET6 if ':' in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('::' if fam == socket.AF_INET6 else '0.0.0.0', sport))
ok = 0
start = time.monotonic()
for i in range(n):
    delay = start + i / rate - time.monotonic()   # on a fixed schedule: no drift from slow sends
    if delay > 0:
        time.sleep(delay)
    try:
        s.sendto(b'x' * size, (dst, port)); ok += 1
    except OSError:
        pass
print(s.getsockname()[1], ok, time.monotonic() - start)
"""


def nsrun(ns: str, argv: list[str], timeout: float = 20, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          timeout=timeout, check=check)


def udp_send(ns: str, dst: str, port: int, n: int, size: int, sport: int = 0) -> tuple[int, int]:
    """Send n datagrams of `size` payload bytes from `sport` (0: any);
    returns (source port, datagrams sent)."""
    r = nsrun(ns, [sys.executable, "-c", UDP_SEND, dst, str(port), str(n), str(size), str(sport)], check=True)
    sport, ok = r.stdout.split()
    return int(sport), int(ok)


class PacedUdp:
    """n datagrams at `rate` per second on a fixed schedule (bounded: n / rate seconds),
    sent from `sport` in the background; result() waits for it: (datagrams sent, seconds)."""

    def __init__(self, ns: str, dst: str, port: int, n: int, rate: float, size: int = 100, sport: int = 0):
        self.n, self.rate = n, rate
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", UDP_PACED, dst, str(port),
                                      str(n), str(size), str(sport), str(rate)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def result(self) -> tuple[int, float]:
        try:
            out, err = self.proc.communicate(timeout=self.n / self.rate + 20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise
        assert self.proc.returncode == 0, err
        _, ok, seconds = out.split()
        return int(ok), float(seconds)

    def __enter__(self) -> "PacedUdp":
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def ping(ns: str, dst: str, n: int, size: int = 56, timeout: float = 1) -> int:
    """ping -c n; returns how many replies came back."""
    r = nsrun(ns, ["ping", "-c", str(n), "-i", "0.05", "-W", str(timeout), "-s", str(size), "-q", dst],
              timeout=n * 0.05 + timeout + 10)
    for line in r.stdout.splitlines():
        if "received" in line:
            return int(line.split(",")[1].split()[0])
    return 0


def curl(ns: str, url: str, timeout: float = 2, local_port: int | None = None) -> bool:
    """One GET (from `local_port` when given); True when it returned 200 within `timeout`."""
    port = ["--local-port", str(local_port)] if local_port else []
    r = nsrun(ns, ["curl", "-s", "-o", "/dev/null", *port, "--max-time", str(timeout), "-w", "%{http_code}",
                   url], timeout=timeout + 10)
    return r.returncode == 0 and r.stdout.strip() == "200"


@contextlib.contextmanager
def http_server(ns: str, addr: str, port: int, directory: str):
    """python -m http.server in `ns`, ready when it answers, killed on exit."""
    bind = addr
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "http.server", str(port),
                          "--bind", bind, "--directory", directory],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        probe = ["python3", "-c", f"import socket; socket.create_connection(({addr!r}, {port}), 0.5)"]
        while nsrun(ns, probe).returncode != 0:
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError(f"http server on {addr}:{port} in {ns} did not start")
            time.sleep(0.05)
        yield p
    finally:
        p.kill()
        p.wait(timeout=5)
