"""What every benchmark shares: the machine description, robust statistics and
the result files.

Benchmarks run on shared, noisy machines, so no figure stands alone: each one
is a ratio or a comparison measured in the same run, over several rounds, and
reported as a median with its spread (min and max over the rounds). Results
go to bench/results/NAME.json with the machine they ran on; BENCHMARKS.md is
rendered from those files (`python -m bench --report`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
BASELINES = Path(__file__).resolve().parent / "baselines"

if str(ROOT) not in sys.path:  # `python -m bench` from elsewhere still finds lwtui
    sys.path.insert(0, str(ROOT))


class BenchError(RuntimeError):
    """A benchmark cannot run here; the message names what is missing."""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _bcc_version() -> str:
    try:
        import bcc  # noqa: F401 (only the version string)
        return getattr(bcc, "__version__", "unknown")
    except Exception as e:  # reported, never fatal: some benchmarks need no BCC
        return f"unavailable ({e.__class__.__name__})"


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict:
    """The facts a reader needs to judge a figure: CPUs, kernel, load."""
    u = os.uname()
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "hostname": u.nodename,
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "kernel": u.release,
        "arch": u.machine,
        "mem_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "bcc": _bcc_version(),
        "loadavg_start": loadavg(),
    }


@dataclass
class Spread:
    """Median and range of one figure over rounds."""
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Spread":
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def as_dict(self, digits: int = 3) -> dict:
        return {"median": round(self.median, digits), "min": round(self.low, digits),
                "max": round(self.high, digits), "n": self.n}

    @property
    def rel_spread(self) -> float:
        """(max - min) / median: how noisy the rounds were."""
        return (self.high - self.low) / self.median if self.median else 0.0


def ratio_spread(num: list[float], den: list[float]) -> Spread:
    """Per-round ratios num[i] / den[i] (measured in the same round), summarised."""
    if len(num) != len(den):
        raise ValueError("rounds differ")
    return Spread.of([a / b for a, b in zip(num, den) if b])


@dataclass
class Result:
    """One benchmark's output file."""
    name: str
    params: dict = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    targets: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict = field(default_factory=machine)
    started: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    _t0: float = field(default_factory=time.monotonic)

    def target(self, what: str, measured: float, limit: float, higher_is_better: bool,
               unit: str = "", detail: str = "") -> bool:
        """Record a target check; returns whether it is met."""
        met = measured >= limit if higher_is_better else measured <= limit
        self.targets.append({"target": what, "measured": round(measured, 4), "limit": limit, "unit": unit,
                             "higher_is_better": higher_is_better, "met": met, "detail": detail})
        return met

    def save(self, directory: Path = RESULTS) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        m = dict(self.machine, loadavg_end=loadavg())
        doc = {"benchmark": self.name, "started": self.started,
               "seconds": round(time.monotonic() - self._t0, 1), "machine": m,
               "params": self.params, "rows": self.rows, "targets": self.targets, "notes": self.notes}
        path = directory / f"{self.name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        os.replace(tmp, path)
        return path


def pin_one_cpu() -> int:
    """Keep the calling thread (and the threads it starts) on one CPU, the first
    it may use; returns it. BPF_PROG_TEST_RUN runs on the caller's CPU, and the
    vCPUs of a shared VM differ in speed (here by up to a quarter): a ratio of
    two runs on different CPUs would measure the CPUs."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def require_root() -> None:
    if os.geteuid() != 0:
        raise BenchError("the benchmarks load BPF programs and create namespaces: run them as root")


def require_tool(name: str, package: str | None = None) -> str:
    """Path of an executable, or BenchError with the install command."""
    from shutil import which
    path = which(name)
    if not path:
        raise BenchError(f"{name} is missing: apt-get install -y {package or name}")
    return path


def run(argv: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise BenchError(f"`{' '.join(argv)}` failed ({res.returncode}): {res.stderr.strip()[-500:]}")
    return res


def rss_kib(pid: int | None = None) -> int:
    """Resident set size of a process (default: this one), in KiB."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
