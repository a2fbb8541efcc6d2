"""Throughput through a veth pair between two namespaces, with and without observers.

Conditions, each applied to the client's route to the server (10.0.0.3/32)
or its device, and taken in a rotating order within every round:
  none     no program, no observer
  noop     `r0 = BPF_OK; exit` on the route's `out` hook: the cost of the
           LWT encap and a BPF call, whatever the program does
  minimal  the seed-like parse-and-compare program on the route's `out` hook
  lwtui    `python -m lwtui watch 10.0.0.3/32 --netns ... --json > /dev/null`
  tcpdump  `tcpdump -i lwtui0 -n -w /dev/null` in the client namespace
  naive    one perf event per packet to a Python reader (bench.naive)
The iperf3 client's CPU time per UDP packet (per KiB for TCP) is recorded too:
it counts only while the sender runs, so it is steadier than packets/s when
other work shares the machine, and the `out` hook runs in the sender's system
time. Each condition runs one TCP iperf3 test (bulk, GSO-sized packets; bits/s as
the receiver counted them) and one UDP test with 64-byte payloads at full
speed: packets/s through the hooked route (the sender's count; the program
runs in the sender's context) and packets/s the receiving socket took (it
overflows at these rates whatever the condition). Ratios to `none` are taken within a round and
summarised as medians over rounds. The observer's own CPU time is recorded.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from lwtui.kernel import bpfsys
from lwtui.net import routes

from . import lab
from .common import ROOT, BenchError, Result, Spread, log, ratio_spread, require_tool
from .progs import Minimal, Noop

CONDITIONS = ("none", "noop", "minimal", "lwtui", "lwtui-nostats", "tcpdump", "naive")
UDP_LEN = 64


class Condition:
    """Start an observer or program before a test and remove it after."""
    name = "none"

    def __init__(self, topo):
        self.topo = topo
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def cpu(self) -> float:
        return lab.cpu_seconds(self.proc.pid) if self.proc is not None else 0.0


class Program(Condition):
    """A loaded program attached to the route's `out` hook for the test."""

    def __init__(self, topo, fd: int, name: str):
        super().__init__(topo)
        self.fd, self.prog, self.att = fd, name, None
        self.name = name

    def start(self) -> None:
        fd = self.fd
        name = f"{self.prog}_{bpfsys.prog_info(fd)['id']}"
        self.att = routes.attach(routes.Target(lab.ROUTE, "out", netns=self.topo.client_ns), fd, name,
                                 on_saved=lambda a: None)

    def stop(self) -> None:
        if self.att is not None:
            routes.detach(self.att)
            self.att = None


class LwtuiWatch(Condition):
    """`lwtui watch ROUTE --json > /dev/null`, stopped with Ctrl-C (SIGINT)."""
    name = "lwtui"
    hide = ""

    def start(self) -> None:
        self.proc = lab.lwtui_watch(self.topo, hide=self.hide)
        lab.wait_for(lambda: lab.route_encap(self.topo.client_ns), 60, "lwtui watch attaching", self.proc, 0.05)

    def stop(self) -> None:
        lab.stop_lwtui(self.topo, self.proc)
        self.proc = None


class LwtuiWatchNoStats(LwtuiWatch):
    """The same watch without BPF run-time statistics (LWTUI_HIDE_FEATURES=run_stats): while a session
    holds them on, the kernel times every run of every BPF program, at a cost of its own."""
    name = "lwtui-nostats"
    hide = "run_stats"


class Tcpdump(Condition):
    """tcpdump writing every packet of the device to /dev/null; its own counts are kept."""
    name = "tcpdump"

    def start(self) -> None:
        require_tool("tcpdump")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.topo.client_ns, "tcpdump", "-i", self.topo.dev,
                                      "-n", "-w", "/dev/null"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        line = self.proc.stderr.readline()  # "tcpdump: listening on lwtui0, ..." once the socket is open
        if "listening" not in line:
            lab.stop(self.proc)
            raise BenchError(f"tcpdump did not start: {line.strip()}")

    def stop(self) -> None:
        lab.stop(self.proc, signal.SIGINT)
        tail = self.proc.stderr.read()
        for line in tail.splitlines():  # "N packets captured", "M packets dropped by kernel"
            parts = line.split()
            if len(parts) >= 3 and parts[1] == "packets":
                self.info[" ".join(parts[2:])] = self.info.get(" ".join(parts[2:]), 0) + int(parts[0])
        self.proc = None


class Naive(Condition):
    """bench.naive in its own process: one perf event per packet to Python."""
    name = "naive"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.naive", "--netns", self.topo.client_ns,
                                      "--route", lab.ROUTE], cwd=str(ROOT),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            lab.stop(self.proc)
            raise BenchError(f"naive reader did not start: {line.strip()} {self.proc.stderr.read()[-400:]}")

    def stop(self) -> None:
        lab.stop(self.proc, signal.SIGINT, timeout=30)
        out = self.proc.stdout.read().strip().splitlines()
        if out:
            for k, v in json.loads(out[-1]).items():
                self.info[k] = self.info.get(k, 0) + v
        if lab.route_encap(self.topo.client_ns):
            raise BenchError("the naive reader left its program on the route")
        self.proc = None


def _one(cond: Condition, seconds: float) -> dict:
    """Both tests under one condition; the observer's CPU seconds per test second."""
    cond.start()
    try:
        c0 = cond.cpu()
        tcp = lab.iperf(cond.topo, seconds)
        c1 = cond.cpu()
        udp = lab.iperf(cond.topo, seconds, udp_len=UDP_LEN)
        c2 = cond.cpu()
    finally:
        cond.stop()
    return {"tcp_bps": tcp["bps"], "tcp_retransmits": tcp["retransmits"], "udp_sent_pps": udp["sent_pps"],
            "udp_pps": udp["pps"], "udp_cpu_ns_per_packet": udp["client_cpu_ns_per_packet"],
            "tcp_cpu_ns_per_kib": tcp["client_cpu_ns_per_byte"] * 1024,
            "udp_sent": udp["sent_packets"], "udp_lost": udp["lost_packets"],
            "observer_cpu_tcp": (c1 - c0) / tcp["seconds"], "observer_cpu_udp": (c2 - c1) / udp["seconds"]}


def run(rounds: int = 5, seconds: float = 5.0, conditions: tuple[str, ...] = CONDITIONS) -> Result:
    """conditions: a subset of CONDITIONS ("none" and "lwtui" always run: every ratio needs them)."""
    require_tool("iperf3")
    require_tool("tcpdump")
    unknown = set(conditions) - set(CONDITIONS)
    if unknown:
        raise BenchError(f"unknown condition(s) {', '.join(sorted(unknown))}: choose from {', '.join(CONDITIONS)}")
    conditions = tuple(c for c in CONDITIONS if c in {"none", "lwtui", *conditions})
    res = Result("throughput", params={"rounds": rounds, "seconds_per_test": seconds, "udp_payload": UDP_LEN,
                                       "conditions": list(conditions), "route": lab.ROUTE})
    hangs0 = len(lab.WATCH_HANGS)
    minimal = Minimal(("out",))
    noop = Noop(("out",))
    per: dict[str, list[dict]] = {c: [] for c in conditions}
    try:
        with lab.topology() as topo, lab.iperf_server(topo):
            made = {"none": lambda: Condition(topo), "noop": lambda: Program(topo, noop.fds["out"], "bench_noop"),
                    "minimal": lambda: Program(topo, minimal.fds["out"], "minimal_out"),
                    "lwtui": lambda: LwtuiWatch(topo), "lwtui-nostats": lambda: LwtuiWatchNoStats(topo),
                    "tcpdump": lambda: Tcpdump(topo), "naive": lambda: Naive(topo)}
            conds = {c: made[c]() for c in conditions}
            lab.iperf(topo, 1)  # warm-up: ARP, neighbour entries, page cache
            for rnd in range(rounds):
                order = list(conditions[rnd % len(conditions):] + conditions[:rnd % len(conditions)])
                for name in order:
                    log(f"throughput round {rnd + 1}/{rounds}: {name}")
                    per[name].append(_one(conds[name], seconds))
            info = {n: c.info for n, c in conds.items() if c.info}
    finally:
        minimal.close()
        noop.close()
    _summarise(res, per, info, rounds)
    hangs = len(lab.WATCH_HANGS) - hangs0
    res.params["watch_hangs_on_sigint"] = hangs
    if hangs:
        res.notes.append(f"lwtui watch did not exit within {lab.STOP_TIMEOUT:g} s of SIGINT {hangs} time(s) in "
                         f"{rounds} rounds (aborted, routes restored with `lwtui detach --session`)")
        res.params["watch_hang_stacks"] = lab.WATCH_HANGS[hangs0:]
    return res


def _summarise(res: Result, per: dict, info: dict, rounds: int) -> None:
    base = per["none"]
    for name, runs in per.items():
        row = {"condition": name}
        for metric in ("tcp_bps", "udp_sent_pps", "udp_pps", "udp_cpu_ns_per_packet", "tcp_cpu_ns_per_kib"):
            vals = [r[metric] for r in runs]
            row[metric] = Spread.of(vals).as_dict(0)
            row[f"{metric}_x_none"] = ratio_spread(vals, [r[metric] for r in base]).as_dict(4)
        for metric in ("observer_cpu_tcp", "observer_cpu_udp"):
            row[metric] = Spread.of([r[metric] for r in runs]).as_dict(3)
        row["udp_lost_packets"] = sum(r["udp_lost"] for r in runs)
        row["udp_sent_packets"] = sum(r["udp_sent"] for r in runs)
        if name in info:
            row["observer"] = info[name]
        res.rows.append(row)
    res.params["raw_rounds"] = per
    # CPU time per packet is steadier than packets/s on a shared machine; on a CPU-bound path throughput
    # scales with its inverse, so cpu(other) / cpu(lwtui) is the throughput ratio it implies
    metrics = (("tcp_bps", "TCP bits/s", False), ("udp_sent_pps", "UDP 64-byte packets/s through the route", False),
               ("udp_cpu_ns_per_packet", "UDP 64-byte throughput implied by the sender's CPU per packet", True))
    for metric, label, inverse in metrics:
        # against the no-op program on the same hook: what lwtui adds to the hook's own cost; for
        # small UDP packets that is a target (>= 0.99 of the no-op's rate), for TCP a note
        vs_noop = None if metric.startswith("tcp") else 0.99
        for other, limit in (("none", 0.97), ("tcpdump", 1.0), ("naive", 1.0), ("noop", vs_noop)):
            if other not in per:
                continue
            mine, theirs = [r[metric] for r in per["lwtui"]], [r[metric] for r in per[other]]
            y = ratio_spread(theirs, mine) if inverse else ratio_spread(mine, theirs)
            what = f"lwtui vs {'no program' if other == 'none' else other}: {label}"
            if limit is None:  # not a target: how much lwtui adds to the hook's own cost
                res.notes.append(f"{what}: {y.median:.3f}x ({y.low:.3f}-{y.high:.3f} over {rounds} rounds)")
            else:
                res.target(what, y.median, limit, higher_is_better=True, unit="x",
                           detail=f"{y.low:.3f}-{y.high:.3f} over {rounds} rounds")
        if "noop" in per and "lwtui-nostats" in per:  # the program alone, without the statistics' cost
            mine, theirs = [r[metric] for r in per["lwtui-nostats"]], [r[metric] for r in per["noop"]]
            y = ratio_spread(theirs, mine) if inverse else ratio_spread(mine, theirs)
            what = f"lwtui without run-time statistics vs noop: {label}"
            if metric.startswith("tcp"):
                res.notes.append(f"{what}: {y.median:.3f}x ({y.low:.3f}-{y.high:.3f} over {rounds} rounds)")
            else:
                res.target(what, y.median, 0.99, higher_is_better=True, unit="x",
                           detail=f"{y.low:.3f}-{y.high:.3f} over {rounds} rounds")
