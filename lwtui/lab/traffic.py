"""The demo lab's processes: `serve` in the server namespace, `client` in the client one.

lwtui.lab.lab starts them as `python -m lwtui.lab.traffic serve|client ...` through
`ip netns exec`, detached, so `lwtui lab up` returns while they run. Every loop
stops after --lifetime seconds and after a count derived from it, so a lab nobody
takes down stops making traffic by itself. Each process keeps a small JSON stats
file up to date (written atomically) that `lwtui lab status` and the tests read;
`serve` marks it "ready" once every socket is bound.

Only the standard library: these run under whatever Python started the lab.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import selectors
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, cast

from lwtui.core.names import endpoint

HTTP4_PORT = 8080
HTTP6_PORT = 8081
UDP_PORT = 5353
BULK_NAME = "bulk.bin"
STATS_PERIOD = 0.5


def write_json(path: Path, data: dict) -> None:
    """Replace `path` atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _stop_on_signals(stop: threading.Event) -> None:
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda *_: stop.set())


# -- serve ---------------------------------------------------------------

class _Counts:
    """Thread-safe counters shared by the servers' threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.values: dict[str, int] = {}

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.values[key] = self.values.get(key, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.values)


class _Handler(SimpleHTTPRequestHandler):
    """Serves the lab's www dir; counts requests instead of logging each one."""

    counts: _Counts

    def log_request(self, code="-", size="-"):
        self.counts.add(f"http{'6' if isinstance(self.server, _HTTP6Server) else '4'}_requests")

    def log_message(self, format, *args):  # errors only (requests go to log_request)
        pass


class _HTTP6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def _http_server(addr: str, port: int, www: str, counts: _Counts) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"counts": counts})
    cls = _HTTP6Server if ":" in addr else ThreadingHTTPServer
    return cls((addr, port), functools.partial(handler, directory=www))


def _udp_sink(addrs: list[str], port: int, counts: _Counts, stop: threading.Event) -> threading.Thread:
    """Receive and count datagrams on `port` of every address until `stop`."""
    sel = selectors.DefaultSelector()
    for a in addrs:
        s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a, port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "udp6" if ":" in a else "udp4")

    def run():
        while not stop.is_set():
            for key, _ in sel.select(timeout=0.2):
                try:
                    data = cast(socket.socket, key.fileobj).recv(65535)
                except BlockingIOError:     # readable, then drained by nobody else: a spurious wake-up
                    continue
                counts.add(f"{key.data}_datagrams")
                counts.add(f"{key.data}_bytes", len(data))
        for key in list(sel.get_map().values()):
            cast(socket.socket, key.fileobj).close()

    t = threading.Thread(target=run, name="udp-sink", daemon=True)
    t.start()
    return t


def serve(args) -> int:
    """HTTP on v4:8080 and [v6]:8081, a UDP sink on port 5353 of both, for --lifetime seconds."""
    stop = threading.Event()
    _stop_on_signals(stop)
    counts = _Counts()
    servers = [_http_server(args.v4, HTTP4_PORT, args.www, counts),
               _http_server(args.v6, HTTP6_PORT, args.www, counts)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    sink = _udp_sink([args.v4, args.v6], UDP_PORT, counts, stop)
    stats = Path(args.stats)
    started = time.time()
    end = time.monotonic() + args.lifetime
    while not stop.is_set():
        write_json(stats, {"ready": True, "pid": os.getpid(), "started": started, **counts.snapshot()})
        if time.monotonic() >= end:
            break
        stop.wait(STATS_PERIOD)
    stop.set()
    for srv in servers:
        srv.shutdown()
        srv.server_close()
    sink.join(timeout=2)
    write_json(stats, {"ready": False, "pid": os.getpid(), "started": started, **counts.snapshot()})
    return 0


# -- client --------------------------------------------------------------

@dataclass
class Job:
    """Something to do every `period` seconds, at most `limit` times (both bound the traffic)."""
    name: str
    period: float
    limit: int
    argv: list[str] | None = None          # a command run without waiting, or
    send: Callable[[], object] | None = None   # a callable that sends one datagram
    due: float = 0.0
    runs: int = 0
    ok: int = 0
    failed: int = 0
    skipped: int = 0                       # still running when due again
    error: str = ""
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def reap(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            if self.proc.returncode == 0:
                self.ok += 1
            else:
                self.failed += 1
            self.proc = None

    def fire(self, now: float) -> None:
        self.due = now + self.period
        if self.proc is not None:
            self.skipped += 1
            return
        self.runs += 1
        try:
            if self.argv is not None:
                self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elif self.send is not None:
                self.send()
                self.ok += 1
        except OSError as e:  # EPERM when a verdict drops it at out/xmit: count, go on
            self.failed += 1
            self.error = str(e)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stats(self) -> dict:
        return {"runs": self.runs, "limit": self.limit, "ok": self.ok, "failed": self.failed,
                "skipped": self.skipped, "error": self.error}


def _url(addr: str, port: int, path: str = "") -> str:
    return f"http://{endpoint(addr, port)}/{path}"


def _datagram_sender(dst: str, port: int, size: int):
    s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
    payload = b"lwtui-lab " + b"x" * max(0, size - 10)
    return lambda: s.sendto(payload, (dst, port))


def client_jobs(v4: str, v6: str, lifetime: float, udp_rate: float) -> list[Job]:
    """The lab's traffic mix, each bounded in count by the lifetime."""
    def curl(url: str, max_time: int) -> list[str]:
        return ["curl", "-g", "-s", "-o", "/dev/null", "--max-time", str(max_time), url]

    def ping(addr: str) -> list[str]:
        return ["ping", "-n", "-q", "-c", "1", "-W", "1", addr]

    specs = [
        ("http4", 1.0, {"argv": curl(_url(v4, HTTP4_PORT), 2)}),
        ("http6", 1.0, {"argv": curl(_url(v6, HTTP6_PORT), 2)}),
        ("bulk", 10.0, {"argv": curl(_url(v4, HTTP4_PORT, BULK_NAME), 8)}),
        ("ping4", 1.0, {"argv": ping(v4)}),
        ("ping6", 1.0, {"argv": ping(v6)}),
        ("udp4", 1.0 / udp_rate, {"send": _datagram_sender(v4, UDP_PORT, 200)}),
        ("udp6", 4.0 / udp_rate, {"send": _datagram_sender(v6, UDP_PORT, 120)}),
    ]
    return [Job(name, period, int(lifetime / period) + 1, **kw) for name, period, kw in specs]


def client(args) -> int:
    """Run the traffic mix against the server addresses until --lifetime or a signal."""
    stop = threading.Event()
    _stop_on_signals(stop)
    jobs = client_jobs(args.v4, args.v6, args.lifetime, args.udp_rate)
    stats = Path(args.stats)
    started = time.time()
    now = time.monotonic()
    end = now + args.lifetime
    next_stats = now
    while not stop.is_set() and now < end and any(j.runs < j.limit for j in jobs):
        for j in jobs:
            j.reap()
            if j.runs < j.limit and now >= j.due:
                j.fire(now)
        if now >= next_stats:
            write_json(stats, {"running": True, "pid": os.getpid(), "started": started,
                               "jobs": {j.name: j.stats() for j in jobs}})
            next_stats = now + STATS_PERIOD
        wake = min([j.due for j in jobs if j.runs < j.limit] + [next_stats, end])
        stop.wait(max(0.0, min(wake - time.monotonic(), 0.2)))
        now = time.monotonic()
    for j in jobs:
        j.stop()
    write_json(stats, {"running": False, "pid": os.getpid(), "started": started,
                       "jobs": {j.name: j.stats() for j in jobs}})
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lwtui.lab.traffic", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("serve", "client"):
        s = sub.add_parser(name)
        s.add_argument("--v4", required=True, help="the server's IPv4 address")
        s.add_argument("--v6", required=True, help="the server's IPv6 address")
        s.add_argument("--stats", required=True, help="JSON stats file to keep up to date")
        s.add_argument("--lifetime", type=float, default=3600.0, help="stop after this many seconds")
    sub.choices["serve"].add_argument("--www", required=True, help="directory to serve")
    sub.choices["client"].add_argument("--udp-rate", type=float, default=20.0, help="IPv4 datagrams a second")
    args = p.parse_args(argv)
    return serve(args) if args.cmd == "serve" else client(args)


if __name__ == "__main__":
    raise SystemExit(main())
