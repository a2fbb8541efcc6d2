"""The dashboard as a person runs it: the real app in a pseudo-terminal, N moving flows.

`python -m bench.ptydash [--flows N] [--seconds S] [--against REF]` starts, for
this tree and for git REF (default: main, unpacked with `git archive` into a
temporary directory), a child process that runs DashboardApp.run() with
Textual's real terminal driver on the slave side of a pty (160x48), fed by
bench.dashboard's SyntheticSession (every flow's counters move every tick;
the session's FlowStore.update runs in the same process, as the live
Session's does). bcc is imported in the child, so its library is in the
resident memory, as in `lwtui dashboard`; no program is compiled.

The parent drains the pty (as a terminal emulator would), waits until the
first snapshot was built plus a warm-up, then measures over S seconds:
  cpu    (utime + stime) / wall time from /proc/PID/stat: share of one core
  rss    VmRSS at the end and VmHWM (peak) from /proc/PID/status; of VmRSS, RssAnon
         (the process's own memory) and RssFile (mapped files: Python's and
         libbcc's code, shared with other processes and reclaimable)
  key    from writing `j` to the pty to the next bytes the app writes back,
         five times (`--keys N`: N times), at least 0.37 s apart (an upper bound
         of the answer to a key: a tick's redraw can come first and end the wait
         earlier); median, 90th percentile and max
Results go to bench/results/dashboard_pty.json and are printed, the two trees
side by side with the ratio this/REF. The machine may be shared: read the
figures with the load noted next to them.

`--live` measures the whole product instead: the real `lwtui ROUTE` command
(BCC compiles and loads its programs; the session reads the kernel map every
second) in the pty, on the bench's namespaces (bench/lab.py), while
bench/flowgen.c in the client namespace sends one UDP datagram a second to
each of N flows (`--cycle N`, N datagrams/s): N flows whose counters all move
through the real `out` program. The same figures, from the lwtui process (all
its threads: the UI, the session's reads, the event reader); beside them the
synthetic case of this tree, so live/synthetic is what reading the kernel costs.
Results: bench/results/dashboard_pty_live.json.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import statistics
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

from . import lab
from .common import RESULTS, ROOT, BenchError, log

COLS, ROWS = 160, 48
CHILD = """
import os, sys, time
sys.path.insert(0, os.getcwd())
import bcc  # noqa: F401  (libbcc resident, as in `lwtui dashboard`)
from bench.dashboard import SyntheticSession
from lwtui.ui.app import DashboardApp

class Marked(SyntheticSession):
    def snapshot(self):
        snap = super().snapshot()
        if self.step == 1:
            open(os.environ["PTYDASH_READY"], "w").close()
        return snap

DashboardApp(Marked(int(sys.argv[1])), interval=1.0).run()
"""


def _stat_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Drain(threading.Thread):
    """Reads the pty's master side all the time; notes when bytes last arrived."""

    def __init__(self, fd: int):
        super().__init__(daemon=True)
        self.fd, self.stop, self.last, self.total = fd, threading.Event(), 0.0, 0

    def run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.last, self.total = time.perf_counter(), self.total + len(data)


def measure(root: Path, flows: int, seconds: float, warmup: float, keys: int = 5) -> dict:
    """One child in a pty over `root`'s code (the synthetic feed): cpu share, rss, key answer times."""
    ready = Path(tempfile.mktemp(prefix="ptydash-"))
    env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(root), PTYDASH_READY=str(ready),
               XDG_CONFIG_HOME=str(Path(tempfile.gettempdir()) / "ptydash-config"))
    try:
        return in_pty([sys.executable, "-c", CHILD, str(flows)], root, env, ready.exists, seconds, warmup, keys)
    finally:
        ready.unlink(missing_ok=True)


def in_pty(argv: list[str], cwd: Path, env: dict, ready, seconds: float, warmup: float, keys: int = 5) -> dict:
    """Run `argv` on a pty until ready() (the first snapshot), warm up, then measure it."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    child = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                             start_new_session=True)
    os.close(slave)
    drain = Drain(master)
    drain.start()
    try:
        began = time.monotonic()
        while not ready():
            if child.poll() is not None or time.monotonic() - began > 300:
                raise BenchError(f"the dashboard ({' '.join(argv[:4])} ...) did not start")
            time.sleep(0.1)
        startup = time.monotonic() - began
        time.sleep(warmup)
        cpu0, t0 = _stat_cpu(child.pid), time.monotonic()
        time.sleep(seconds)
        cpu = (_stat_cpu(child.pid) - cpu0) / (time.monotonic() - t0)
        answers = []
        for _ in range(keys):
            time.sleep(0.37)
            sent = time.perf_counter()
            os.write(master, b"j")
            while drain.last < sent and time.perf_counter() - sent < 10:
                time.sleep(0.001)
            answers.append(drain.last - sent if drain.last >= sent else float("inf"))
        rss, hwm = _status_kib(child.pid, "VmRSS"), _status_kib(child.pid, "VmHWM")
        anon, files = _status_kib(child.pid, "RssAnon"), _status_kib(child.pid, "RssFile")
    finally:
        if child.poll() is None:
            os.write(master, b"q")
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        drain.stop.set()
        drain.join(2)
        os.close(master)
    ms = sorted(round(a * 1000, 1) for a in answers)
    return {"cpu_core_share": round(cpu, 3), "rss_mib": round(rss / 1024, 1), "peak_rss_mib": round(hwm / 1024, 1),
            "rss_anon_mib": round(anon / 1024, 1), "rss_file_mib": round(files / 1024, 1),
            "keys": len(ms), "key_answer_ms_median": round(statistics.median(ms), 1),
            "key_answer_ms_p90": ms[min(len(ms) - 1, (9 * len(ms)) // 10)], "key_answer_ms_max": ms[-1],
            "key_answer_ms": ms,
            "first_snapshot_s": round(startup, 2), "exit_code": child.returncode}


def measure_live(flows: int, seconds: float, warmup: float, keys: int = 5) -> dict:
    """The real `lwtui ROUTE` in a pty on the bench's namespaces, `flows` flows moving
    (one datagram a second each); the flows the kernel map held at the end."""
    from .stormtable import build_sender
    name = f"ptydash-{os.getpid()}"
    with tempfile.TemporaryDirectory(prefix="ptydash-live-") as tmp, lab.topology() as topo:
        exe = build_sender(tmp)
        argv = [sys.executable, "-m", "lwtui", lab.ROUTE, "--netns", topo.client_ns, "--interval", "1",
                "--max-flows", str(max(65_536, flows + flows // 4)), "--session", name]
        env = dict(os.environ, TERM="xterm-256color", PYTHONPATH=str(ROOT),
                   XDG_CONFIG_HOME=str(Path(tmp) / "config"))
        total = 300 + warmup + seconds + 30
        mover: list[subprocess.Popen] = []

        def ready() -> bool:
            if not lab.route_encap(topo.client_ns):
                return False
            if not mover:           # attached: the flows start moving, the warm-up fills the table
                mover.append(lab.ns_popen(topo.client_ns, [exe, topo.server_v4, str(flows), f"{total:g}",
                                                           "--sockets", "8", "--cycle", str(flows)]))
            return True
        try:
            out = in_pty(argv, ROOT, env, ready, seconds, warmup, keys)
        finally:
            for p in mover:
                lab.stop(p)
        left = lab.route_encap(topo.client_ns)
        if left:
            subprocess.run([sys.executable, "-m", "lwtui", "detach", "--session", name], cwd=str(ROOT),
                           capture_output=True, text=True, timeout=60)
            raise BenchError(f"lwtui left `encap {left}` on {lab.ROUTE} (restored with detach)")
        return out


def checkout(ref: str) -> Path:
    """`git archive REF` unpacked into a temporary directory: the code to compare against."""
    dest = Path(tempfile.mkdtemp(prefix="ptydash-ref-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ptydash", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flows", type=int, default=100_000)
    p.add_argument("--seconds", type=float, default=30.0, help="measuring window (default 30)")
    p.add_argument("--warmup", type=float, default=10.0, help="after the first snapshot (default 10)")
    p.add_argument("--against", default="main",
                   help="git ref to compare with (default: main; `none`: this tree alone)")
    p.add_argument("--keys", type=int, default=5, help="keys to time, 0.37 s apart (default 5)")
    p.add_argument("--live", action="store_true",
                   help="the real lwtui on a route with N moving flows, beside the synthetic case")
    a = p.parse_args(argv)
    if a.live:
        return main_live(a)
    alone = a.against == "none"
    other = ROOT if alone else checkout(a.against)
    load = os.getloadavg()
    out = {"flows": a.flows, "seconds": a.seconds, "terminal": f"{COLS}x{ROWS}", "against": a.against,
           "ncpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load]}
    try:
        for name, root in (("this", ROOT),) + (() if alone else ((a.against, other),)):
            log(f"{name}: {a.flows} flows in a pty, {a.seconds:g} s")
            out[name] = measure(root, a.flows, a.seconds, a.warmup, a.keys)
            log(f"{name}: {out[name]}")
    finally:
        if not alone:
            shutil.rmtree(other, ignore_errors=True)
    if not alone:
        out["ratio_this_over_" + a.against] = _ratios(out["this"], out[a.against])
    return _save(out, "dashboard_pty", a.flows)


_RATIO_KEYS = ("cpu_core_share", "rss_mib", "peak_rss_mib", "key_answer_ms_median")


def _ratios(mine: dict, theirs: dict) -> dict:
    return {k: round(mine[k] / theirs[k], 3) for k in _RATIO_KEYS if theirs[k]}


def _save(out: dict, stem: str, flows: int) -> int:
    """Write results/STEM.json (STEM_FLOWS.json when not 100,000 flows) and print it."""
    out["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{stem}.json" if flows == 100_000 else f"{stem}_{flows}.json"
    (RESULTS / name).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return 0


def main_live(a) -> int:
    """--live: the real command and the synthetic feed of this tree, side by side."""
    out = {"flows": a.flows, "seconds": a.seconds, "terminal": f"{COLS}x{ROWS}", "ncpus": os.cpu_count(),
           "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    log(f"live: lwtui on {lab.ROUTE} with {a.flows} moving flows in a pty, {a.seconds:g} s")
    out["live"] = measure_live(a.flows, a.seconds, a.warmup, a.keys)
    log(f"live: {out['live']}")
    log(f"synthetic: {a.flows} flows in a pty, {a.seconds:g} s")
    out["synthetic"] = measure(ROOT, a.flows, a.seconds, a.warmup, a.keys)
    log(f"synthetic: {out['synthetic']}")
    out["ratio_live_over_synthetic"] = _ratios(out["live"], out["synthetic"])
    return _save(out, "dashboard_pty_live", a.flows)


def run(flows: int = 100_000, seconds: float = 30.0, warmup: float = 15.0, against: str = "main"):
    """`python -m bench ptydash` (part of `make bench`): the synthetic case for this tree and
    `against` one after the other, then the live case; a Result with the dashboard's targets (BENCHMARKS.md)."""
    from .common import Result
    res = Result("ptydash", params={"flows": flows, "seconds": seconds, "warmup": warmup, "against": against,
                                    "terminal": f"{COLS}x{ROWS}"})
    other = checkout(against)
    try:
        for case, tree, fn in (("synthetic", "this", lambda: measure(ROOT, flows, seconds, warmup)),
                               ("synthetic", against, lambda: measure(other, flows, seconds, warmup)),
                               ("live", "this", lambda: measure_live(flows, seconds, warmup))):
            log(f"{case} ({tree}): {flows:,} flows in a pty, {seconds:g} s")
            row = {"case": case, "tree": tree, **fn()}
            log(f"{case} ({tree}): {row}")
            res.rows.append(row)
    finally:
        shutil.rmtree(other, ignore_errors=True)
    live = res.rows[-1]
    res.target(f"live: {flows:,} moving flows, dashboard process CPU (share of one core)", live["cpu_core_share"],
               0.25, False, detail=f"synthetic {res.rows[0]['cpu_core_share']} ({against}: {res.rows[1]['cpu_core_share']})")
    res.target("live: resident memory with BCC compiled (VmRSS)", live["rss_mib"], 300, False, " MiB",
               f"RssAnon {live['rss_anon_mib']} MiB + RssFile {live['rss_file_mib']} MiB")
    return res


if __name__ == "__main__":
    raise SystemExit(main())
