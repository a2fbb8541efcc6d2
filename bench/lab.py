"""The benchmarks' network: two namespaces (prefix lwtui-bench) joined by a
veth pair, built by lwtui.net.netns, plus bounded traffic and observers.

Traffic never leaves these namespaces: iperf3 and the UDP senders run in the
client namespace toward the server's address. Every process started here is
bounded in time and killed on exit; the namespaces are deleted in `finally`,
also when a benchmark fails half-way.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

from lwtui.net import netns

from .common import ROOT, BenchError, log, require_root, require_tool

# Another prefix (LWTUI_BENCH_PREFIX=lwtui-bench2, say) lets two benchmarks run side by side.
PREFIX = os.environ.get("LWTUI_BENCH_PREFIX", "lwtui-bench")
if not PREFIX.startswith("lwtui-bench") or len(PREFIX) > 20 or not PREFIX.replace("-", "").isalnum():
    raise SystemExit(f"LWTUI_BENCH_PREFIX={PREFIX!r}: use lwtui-bench followed by up to 9 letters or digits")
ROUTE = "10.0.0.3/32"  # the client's host route to the server: where the `out` programs sit
IPERF_PORT = 5201


def _ip_netns(ns: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv]


@contextlib.contextmanager
def topology():
    """Create the namespaces (removing a leftover of an earlier crashed run) and always delete them."""
    require_root()
    # The namespaces are this run's while it holds the lock: a leftover of a crashed run is
    # removed, never those of a benchmark still running beside this one.
    with open(f"/run/{PREFIX}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(f"another benchmark runs in the namespaces {PREFIX}-*: wait for it to end, or give "
                             "this one namespaces of its own (LWTUI_BENCH_PREFIX=lwtui-bench2)") from None
        if netns.topology_exists(PREFIX):
            log(f"removing leftover namespaces of {PREFIX}")
            netns.destroy_topology(PREFIX)
        topo = netns.create_topology(PREFIX)
        try:
            yield topo
        finally:
            netns.destroy_topology(PREFIX)


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, step: float = 0.02):
    """Poll `pred` until it returns something truthy; BenchError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise BenchError(f"{what}: the process exited ({proc.returncode}) {str(err)[-400:]}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {timeout:g} s")
        time.sleep(step)


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGINT, timeout: float = 10) -> int | None:
    """Signal a process we started and wait; kill it if it lingers."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=5)


def ns_popen(ns: str, argv: list[str]) -> subprocess.Popen:
    """Start `argv` in namespace `ns` with its output captured as text; the caller bounds it."""
    return subprocess.Popen(_ip_netns(ns, argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_bounded(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run a command to completion within `timeout`; BenchError when it fails."""
    res = subprocess.run(argv, cwd=str(ROOT), capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise BenchError(f"`{' '.join(argv[:6])}` failed ({res.returncode}): {res.stderr.strip()[-400:]}")
    return res


def route_encap(ns: str, prefix: str = ROUTE) -> str:
    """The route's `encap ...` text in namespace `ns` ('' when it has none)."""
    out = subprocess.run(["ip", "-n", ns, "route", "show", prefix], capture_output=True, text=True,
                         timeout=10).stdout
    return out.split("encap", 1)[1].strip() if "encap" in out else ""


def listening(ns: str, port: int) -> bool:
    out = subprocess.run(_ip_netns(ns, ["ss", "-Hltn", f"sport = :{port}"]), capture_output=True,
                         text=True, timeout=10).stdout
    return bool(out.strip())


@contextlib.contextmanager
def iperf_server(topo):
    """iperf3 -s on the server address, killed on exit."""
    require_tool("iperf3")
    p = subprocess.Popen(_ip_netns(topo.server_ns, ["iperf3", "-s", "-B", topo.server_v4, "-p", str(IPERF_PORT)]),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: listening(topo.server_ns, IPERF_PORT), 10, "iperf3 server", p)
        yield p
    finally:
        stop(p, signal.SIGTERM)


def iperf(topo, seconds: float, udp_len: int | None = None) -> dict:
    """One bounded iperf3 run from client to server: TCP, or UDP of `udp_len`-byte payloads at full speed.

    TCP: bits/s as the receiver counted them. UDP: packets/s the sender got
    through the route (`sent_pps`: every one crossed the hooked route and the
    veth) and packets/s the receiving socket took (`pps`; the rest overflowed
    its buffer, a limit of the receiver that is the same in every condition).
    """
    argv = ["iperf3", "-c", topo.server_v4, "-p", str(IPERF_PORT), "-t", f"{seconds:g}", "-J",
            "--connect-timeout", "3000"]
    if (os.cpu_count() or 1) >= 2:
        argv += ["-A", "0,1"]  # client on CPU 0, server on CPU 1: less migration noise between rounds
    if udp_len is not None:
        argv += ["-u", "-b", "0", "-l", str(udp_len)]
    res = subprocess.run(_ip_netns(topo.client_ns, argv), capture_output=True, text=True, timeout=seconds + 30)
    try:
        doc = json.loads(res.stdout)
    except json.JSONDecodeError:
        raise BenchError(f"iperf3 gave no JSON ({res.returncode}): {res.stderr.strip()[-300:]}") from None
    if doc.get("error"):
        raise BenchError(f"iperf3: {doc['error']}")
    end = doc["end"]
    # CPU the iperf3 client used (user + system, % of one CPU): the `out` hook runs in its system time
    cpu = end.get("cpu_utilization_percent", {}).get("host_total", 0.0) / 100
    if udp_len is None:
        r = end["sum_received"]
        return {"bps": r["bits_per_second"], "seconds": r["seconds"],
                "retransmits": end["sum_sent"].get("retransmits", 0),
                "client_cpu_ns_per_byte": cpu * r["seconds"] * 1e9 / max(1, end["sum_sent"]["bytes"])}
    s = end.get("sum_received") or end["sum"]  # the receiver's count where iperf3 gives it
    recv = s["packets"] - s["lost_packets"]
    snd = end.get("sum_sent", s)
    return {"bps": recv * udp_len * 8 / s["seconds"], "pps": recv / s["seconds"], "seconds": s["seconds"],
            "sent_pps": snd["packets"] / snd["seconds"], "sent_packets": snd["packets"],
            "lost_packets": s["lost_packets"],
            "client_cpu_ns_per_packet": cpu * snd["seconds"] * 1e9 / max(1, snd["packets"])}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (0 when it is gone)."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# `lwtui watch` runs that did not end within STOP_TIMEOUT of SIGINT (aborted,
# restored with `lwtui detach --session`), with the stacks faulthandler printed;
# benchmarks report them.
WATCH_HANGS: list[str] = []
STOP_TIMEOUT = 10.0
_watch_seq = [0]


def lwtui_watch(topo, interval: float = 1.0, extra: list[str] | None = None,
                stdout=subprocess.DEVNULL, hide: str = "") -> subprocess.Popen:
    """`python -m lwtui watch ROUTE --netns CLIENT --json` as a user runs it (with a known session name);
    `hide`: LWTUI_HIDE_FEATURES for it."""
    _watch_seq[0] += 1
    name = f"bench-{os.getpid()}-{_watch_seq[0]}"
    argv = [sys.executable, "-m", "lwtui", "watch", ROUTE, "--netns", topo.client_ns, "--json",
            "--interval", f"{interval:g}", "--session", name, *(extra or [])]
    # faulthandler: a watch that hangs on SIGINT is sent SIGABRT and says where it was stuck
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    if hide:
        env["LWTUI_HIDE_FEATURES"] = hide
    proc = subprocess.Popen(argv, cwd=str(ROOT), stdout=stdout, stderr=subprocess.PIPE, text=True, env=env)
    proc.lwtui_session = name  # type: ignore[attr-defined]
    return proc


def stop_lwtui(topo, proc: subprocess.Popen) -> None:
    """End a watch with SIGINT (Ctrl-C) and check it restored the route.

    A watch that does not exit within STOP_TIMEOUT is killed, recorded in
    WATCH_HANGS, and its route restored with `lwtui detach --session NAME`
    (the documented recovery after a kill), so one hang does not spoil the
    rest of a run.
    """
    name = getattr(proc, "lwtui_session", "")
    if proc.poll() is not None:
        raise BenchError(f"lwtui watch {name} ended on its own ({proc.returncode}) before it was stopped: "
                         f"{proc.stderr.read()[-500:] if proc.stderr else ''}")
    try:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler dumps every thread's stack to stderr
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        stack = proc.stderr.read()[-4000:] if proc.stderr else ""
        WATCH_HANGS.append(f"{name}: {stack}")
        log(f"lwtui watch {name} did not exit within {STOP_TIMEOUT:g} s of SIGINT: aborted, restoring with "
            f"detach; its stacks:\n{stack}")
        subprocess.run([sys.executable, "-m", "lwtui", "detach", "--session", name], cwd=str(ROOT),
                       capture_output=True, text=True, timeout=60)
        code = "killed"
    left = route_encap(topo.client_ns)
    if left:
        raise BenchError(f"lwtui exited ({code}) leaving `encap {left}` on {ROUTE}")


def instrumented_session(target, name: str):
    """A lwtui Session that also counts the events its callback receives."""
    from lwtui.session.live import Session

    class InstrumentedSession(Session):
        """Session + a count of delivered events (losses are counted by the kernel)."""
        delivered = 0

        def _on_event(self, ev) -> None:
            self.delivered += 1
            super()._on_event(ev)

    return InstrumentedSession([target], name=name)
