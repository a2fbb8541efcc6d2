"""Start-up (command to first data) and verdict latency.

Start-up, with a ping every 10 ms crossing the client's route, per round:
  lwtui    `python -m lwtui watch 10.0.0.3/32 --netns ... --json --interval 0.1`:
           time to its `session` line (attached) and to its first flow line
  tcpdump  `tcpdump -i lwtui0 -n -l -c 1`: time to its first packet line
  help     `python -m lwtui watch --help`: the interpreter and CLI alone

Verdict latency, with a UDP flood (one flow, as fast as one sender can) on
the route and a Session reading events, per round: the time until the
kernel's drop counter (stats map, read with one bpf(2) call in a tight loop)
first moves,
  api  from calling Session.block("port P/udp"), and from its return (and
       whether the very first read after the return already shows drops)
  cli  from starting `python -m lwtui block port P/udp --session NAME` in
       another process (the way a second terminal blocks)
The flood's mean packet gap is the floor any verdict latency is measured on.
Drop events are not used as clocks: a Session stamps them with the coarse
clock (-DLWTUI_COARSE_CLOCK), one tick of resolution.
"""

from __future__ import annotations

import ctypes as ct
import json
import signal
import subprocess
import sys
import threading
import time

from lwtui.kernel import bpfsys, kstructs

from . import lab
from .common import ROOT, Result, Spread, log

UDP_FLOOD = r"""
import socket, sys, time
dst, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.monotonic() + seconds
sent = err = 0
while time.monotonic() < end:
    for _ in range(64):
        try:
            s.sendto(b"lwtui-bench", (dst, port)); sent += 1
        except OSError:
            err += 1
print(sent, err)
"""


def _lines_with_times(proc: subprocess.Popen, t0: float, until, timeout: float) -> dict:
    """Read a process's stdout; times (from t0) of the first line of each kind until `until(times)`."""
    times: dict[str, float] = {}
    box: list = []

    def reader():
        for line in proc.stdout:
            now = time.monotonic() - t0
            try:
                kind = json.loads(line).get("type", "text")
            except (json.JSONDecodeError, AttributeError):
                kind = "text"
            times.setdefault(kind, now)
            if until(times):
                box.append(True)
                return

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    lab.wait_for(lambda: box, timeout, "first data", proc, 0.005)
    return times


def startup_round(topo) -> dict:
    t0 = time.monotonic()
    p = lab.lwtui_watch(topo, interval=0.1, stdout=subprocess.PIPE)
    try:
        t = _lines_with_times(p, t0, lambda d: "flow" in d or "new" in d, 60)
    finally:
        lab.stop_lwtui(topo, p)
    first = min(v for k, v in t.items() if k in ("flow", "new"))
    t0 = time.monotonic()
    d = subprocess.Popen(["ip", "netns", "exec", topo.client_ns, "tcpdump", "-i", topo.dev, "-n", "-l", "-c", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        dump = _lines_with_times(d, t0, lambda x: bool(x), 30)["text"]
    finally:
        lab.stop(d)
    t0 = time.monotonic()
    lab.run_bounded([sys.executable, "-m", "lwtui", "watch", "--help"], 30)
    return {"lwtui_ready_s": t.get("session", first), "lwtui_first_data_s": first, "tcpdump_first_packet_s": dump,
            "lwtui_help_s": time.monotonic() - t0}


def verdict_round(sess, topo, port: int, via_cli: bool) -> dict:
    """Block the flood's flow and time when the kernel's drop counter moves."""
    flood = lab.ns_popen(topo.client_ns, [sys.executable, "-c", UDP_FLOOD, topo.server_v4, str(port), "4"])
    try:
        p0 = sess.probe.read_stats()["packets"]
        lab.wait_for(lambda: sess.probe.read_stats()["packets"] > p0 + 5000, 10, "the flood on the route", flood, 0.005)
        rate_p0 = sess.probe.read_stats()["packets"]
        time.sleep(0.2)  # to measure the flood's rate: a fixed window, not a wait for an event
        gap_ns = 0.2e9 / max(1, sess.probe.read_stats()["packets"] - rate_p0)
        drops = _drops_reader(sess)
        d0 = drops()
        rule = f"port {port}/udp"
        if via_cli:
            start = time.monotonic_ns()
            proc = subprocess.Popen([sys.executable, "-m", "lwtui", "block", rule, "--session", sess.name],
                                    cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            lab.wait_for(lambda: drops() > d0, 30, "a drop in the stats map", proc, 0)
            seen = time.monotonic_ns()
            if proc.wait(timeout=30) != 0:
                raise BenchError(f"lwtui block failed: {proc.stderr.read()[-300:]}")
            returned = time.monotonic_ns()
            first_read = False
        else:
            start = time.monotonic_ns()
            sess.block(rule)
            returned = time.monotonic_ns()
            first_read = drops() > d0  # already dropping at the first read after the call?
            lab.wait_for(lambda: first_read or drops() > d0, 10, "a drop in the stats map", flood, 0)
            seen = time.monotonic_ns()
        sess.allow(rule)
    finally:
        lab.stop(flood, signal.SIGTERM)
    return {"via": "cli" if via_cli else "api", "call_us": (returned - start) / 1e3,
            "seen_after_start_us": (seen - start) / 1e3,
            "seen_after_return_us": max(0.0, (seen - returned) / 1e3),
            "dropping_at_first_read": first_read, "packet_gap_us": gap_ns / 1e3}


def _possible_cpus() -> int:
    """Number of possible CPUs: the length of a per-CPU map value."""
    text = open("/sys/devices/system/cpu/possible").read().strip()
    return sum(int(b) - int(a) + 1 if "-" in part else 1
               for part in text.split(",") for a, _, b in [part.partition("-")])


def _drops_reader(sess):
    """A cheap read of the kernel's drop counter: one syscall, no BCC."""
    fd = sess.probe.map_fd("stats")
    vals = (ct.c_uint64 * _possible_cpus())()
    key = ct.c_uint32(kstructs.ST_DROPS)

    def read() -> int:
        bpfsys.map_lookup(fd, key, vals)
        return sum(vals)
    return read


def _verdicts(topo, rounds: int) -> list[dict]:
    from lwtui.net.routes import Target
    sess = lab.instrumented_session(Target(lab.ROUTE, "out", netns=topo.client_ns), "bench-latency")
    stop = threading.Event()

    def read():
        while not stop.is_set() and not sess.closed:
            sess.poll_events(50)

    out = []
    try:
        sess.start()
        th = threading.Thread(target=read, daemon=True)
        th.start()
        for rnd in range(rounds):
            for via_cli in (False, True):
                log(f"verdict latency round {rnd + 1}/{rounds} ({'cli' if via_cli else 'api'})")
                out.append(verdict_round(sess, topo, 9000 + 2 * rnd + via_cli, via_cli))
    finally:
        stop.set()
        sess.close()
    return out


def run(rounds: int = 7) -> Result:
    lab.require_tool("tcpdump")
    res = Result("latency", params={"rounds": rounds, "watch_interval": 0.1, "ping_interval": 0.01})
    hangs0 = len(lab.WATCH_HANGS)
    with lab.topology() as topo:
        ping = lab.ns_popen(topo.client_ns, ["ping", "-q", "-i", "0.01", "-w", str(30 * rounds + 60), topo.server_v4])
        try:
            starts = []
            for rnd in range(rounds):
                log(f"start-up round {rnd + 1}/{rounds}")
                starts.append(startup_round(topo))
        finally:
            lab.stop(ping, signal.SIGTERM)
        verdicts = _verdicts(topo, rounds)
    for k in ("lwtui_ready_s", "lwtui_first_data_s", "tcpdump_first_packet_s", "lwtui_help_s"):
        res.rows.append({"section": "startup", "what": k, "s": Spread.of([s[k] for s in starts]).as_dict(3)})
    x = Spread.of([s["lwtui_first_data_s"] / s["tcpdump_first_packet_s"] for s in starts])
    res.rows.append({"section": "startup", "what": "lwtui_first_data_x_tcpdump", "x": x.as_dict(2)})
    for via in ("api", "cli"):
        rs = [v for v in verdicts if v["via"] == via]
        row = {"section": "verdict", "via": via}
        for k in ("call_us", "seen_after_start_us", "seen_after_return_us", "packet_gap_us"):
            row[k] = Spread.of([r[k] for r in rs]).as_dict(1)
        row["dropping_at_first_read"] = sum(r["dropping_at_first_read"] for r in rs)
        row["rounds"] = len(rs)
        res.rows.append(row)
    res.params["raw_verdicts"] = verdicts
    hangs = len(lab.WATCH_HANGS) - hangs0
    if hangs:
        res.notes.append(f"lwtui watch did not exit on SIGINT {hangs} time(s) in {rounds} start-ups "
                         "(killed, routes restored with `lwtui detach --session`)")
    res.params["watch_hangs_on_sigint"] = hangs
    return res
