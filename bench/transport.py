"""Perf buffer vs BPF ring buffer, with bench/baselines/events.c.

lwtui's program has no ring-buffer build (no -D flag for it), so the two
transports are compared with a small program that sends one 80-byte record
(the size of struct lwtui_event) per run, driven by BPF_PROG_TEST_RUN:

- in-program cost: ns/run with a reader thread blocked in epoll and draining
  (batches smaller than the buffer, so no output fails), against the no-op;
- capacity: a generator process calls the program at a paced rate for a
  fixed time while one Python reader thread counts records; the highest
  rate with zero failed outputs, and what is delivered past it.
Both transports get the same memory (64 pages per CPU in total) and the same
trivial callback, so the difference is the transport's.
"""

from __future__ import annotations

import ctypes as ct
import json
import os
import subprocess
import sys
import threading
import time

from lwtui.kernel import bpfsys

from . import packets
from .common import ROOT, BenchError, Spread, log
from .progs import Noop, compile_c, load_type

PAGES_PER_CPU = 64
# Generator for the capacity test: paced calls of the program, in its own process.
_GEN = r"""
import sys, time, json
sys.path.insert(0, sys.argv[1])
from lwtui.kernel import bpfsys
fd, rate, seconds, pkt = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), bytes.fromhex(sys.argv[5])
t0 = time.monotonic(); done = 0; slice_s = 0.001
while True:
    now = time.monotonic()
    if now - t0 >= seconds:
        break
    due = int((now - t0 + slice_s) * rate)
    if due > done:
        bpfsys.prog_test_run(fd, pkt, due - done); done = due
    pause = t0 + due / rate - time.monotonic()
    if pause > 0:
        time.sleep(pause)
print(json.dumps({"runs": done, "seconds": time.monotonic() - t0}))
"""


class Transport:
    """events.c compiled for one transport, with a reader thread counting records."""

    def __init__(self, kind: str, wakeup_events: int = 1):
        self.kind, self.wakeup = kind, wakeup_events
        ncpu = os.cpu_count() or 1
        pages = 1 << max(0, (PAGES_PER_CPU * ncpu - 1).bit_length())  # ring buffer: a power of two
        flags = ["-DUSE_RINGBUF", f"-DRINGBUF_PAGES={pages}"] if kind == "ringbuf" else []
        self.bpf = compile_c("events", flags)
        self.fd = load_type(self.bpf, "storm_out", "out")
        self.delivered = self.lost = 0
        self._stop = threading.Event()
        if kind == "ringbuf":
            self.bpf["storm_ring"].open_ring_buffer(self._on_event)
            self._poll, self._drain = self.bpf.ring_buffer_poll, self.bpf.ring_buffer_consume
        else:
            self.bpf["storm_perf"].open_perf_buffer(self._on_event, page_cnt=PAGES_PER_CPU,
                                                    lost_cb=self._on_lost, wakeup_events=wakeup_events)
            self._poll, self._drain = self.bpf.perf_buffer_poll, self.bpf.perf_buffer_consume
        self._thread = threading.Thread(target=self._read, name=f"reader-{kind}", daemon=True)
        self._thread.start()

    @property
    def label(self) -> str:
        return "ring buffer" if self.kind == "ringbuf" else f"perf buffer, wakeup_events={self.wakeup}"

    def _on_event(self, *args):
        self.delivered += 1  # the same trivial work for both transports
        return 0

    def _on_lost(self, n):
        self.lost += n

    def _read(self) -> None:
        while not self._stop.is_set():
            self._poll(50)
            self._drain()  # what batched wakeups left behind, as lwtui's reader does

    def failed(self) -> int:
        return int(sum(self.bpf["storm_failed"][ct.c_int(0)]))

    def generated(self) -> int:
        return int(self.bpf["storm_seq"][ct.c_int(0)].value)

    def settle(self, quiet: float = 0.2, timeout: float = 10.0) -> None:
        """Wait until the reader has taken everything (no new record for `quiet` seconds)."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if self.delivered != last:
                last, since = self.delivered, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.bpf.cleanup()


def cost(t: Transport, noop_fd: int, pkt: bytes, batch: int, calls: int) -> dict:
    """ns/run of the transport and of the no-op, batches drained in between."""
    ns, floor = [], []
    for _ in range(calls):
        f0 = t.failed()
        ns.append(bpfsys.prog_test_run(t.fd, pkt, batch)[1])
        floor.append(bpfsys.prog_test_run(noop_fd, pkt, batch)[1])
        t.settle(quiet=0.05)
        if t.failed() != f0:
            raise BenchError(f"{t.label}: outputs failed while measuring cost; lower the batch")
    return {"ns": Spread.of(ns).as_dict(1), "noop_ns": Spread.of(floor).as_dict(1),
            "minus_noop_ns": Spread.of([a - b for a, b in zip(ns, floor)]).as_dict(1)}


def capacity_step(t: Transport, pkt: bytes, rate: float, seconds: float) -> dict:
    """Drive the program at `rate` runs/s for `seconds` from another process."""
    g0, d0, f0, l0 = t.generated(), t.delivered, t.failed(), t.lost
    gen = subprocess.run([sys.executable, "-c", _GEN, str(ROOT), str(t.fd), str(rate), str(seconds), pkt.hex()],
                         pass_fds=(t.fd,), capture_output=True, text=True, timeout=seconds + 30)
    if gen.returncode != 0:
        raise BenchError(f"event generator failed: {gen.stderr.strip()[-300:]}")
    took = json.loads(gen.stdout)["seconds"]
    t.settle()
    made, got = t.generated() - g0, t.delivered - d0
    return {"rate": rate, "generated_per_s": round(made / took), "delivered_per_s": round(got / took),
            "generated": made, "delivered": got, "failed": t.failed() - f0, "lost_cb": t.lost - l0}


def run_transport(rates: list[float], seconds: float, rounds: int, batch: int = 1000) -> list[dict]:
    """Rows for every transport: cost, then the capacity sweep (`rounds` times)."""
    pkt = packets.packet("udp")
    noop = Noop(("out",))
    rows = []
    try:
        for kind, wake in (("perf", 1), ("perf", 16), ("perf", 128), ("ringbuf", 0)):
            t = Transport(kind, wake)
            try:
                log(f"transport: {t.label}")
                row = {"section": "transport", "transport": t.label, **cost(t, noop.fds["out"], pkt, batch, 20)}
                steps = {}
                for _ in range(rounds):
                    for r in rates:
                        steps.setdefault(r, []).append(capacity_step(t, pkt, r, seconds))
                row["capacity"] = [_step_summary(r, s) for r, s in steps.items()]
                # the generator can fall short of the rate asked (a slow transport throttles it): count what it made
                lossless = [s["generated_per_s"]["min"] for s in row["capacity"] if s["failed_max"] == 0]
                row["max_lossless_rate"] = max(lossless) if lossless else 0
                rows.append(row)
            finally:
                t.close()
    finally:
        noop.close()
    return rows


def _step_summary(rate: float, steps: list[dict]) -> dict:
    return {"rate": rate,
            "generated_per_s": Spread.of([s["generated_per_s"] for s in steps]).as_dict(0),
            "delivered_per_s": Spread.of([s["delivered_per_s"] for s in steps]).as_dict(0),
            "failed_max": max(s["failed"] for s in steps),
            "failed_fraction": Spread.of([s["failed"] / s["generated"] if s["generated"] else 0.0
                                          for s in steps]).as_dict(4),
            "lost_cb": sum(s["lost_cb"] for s in steps)}
