"""The naive design as a process: one perf event per packet, counted in Python.

`python -m bench.naive --netns NS --route PREFIX` compiles
bench/baselines/naive.c, attaches it to the route's `out` hook, and reads
every packet's event with BCC's defaults (8 pages per CPU, a wakeup per
event), aggregating flows in a dict, as a first tool written without the
kernel-side aggregation would. It prints `ready` once attached, runs until
SIGINT/SIGTERM, then prints one JSON line (events, lost, flows) and restores
the route.
"""

from __future__ import annotations

import argparse
import ctypes as ct
import json
import signal
import sys

from .common import ROOT  # noqa: F401 (puts the project on sys.path)
from lwtui.kernel import bpfsys
from lwtui.net import routes

from .progs import compile_c, load_type


class PktEvent(ct.Structure):
    """struct pkt_event in bench/baselines/naive.c"""
    _fields_ = [("saddr", ct.c_uint32), ("daddr", ct.c_uint32), ("sport", ct.c_uint16),
                ("dport", ct.c_uint16), ("proto", ct.c_uint8), ("pad", ct.c_uint8 * 3),
                ("len", ct.c_uint32), ("ts_ns", ct.c_uint64)]


_stop = []


def _on_signal(signum, frame):
    # A flag, not an exception: raised inside a BCC callback it would be swallowed by ctypes.
    _stop.append(signum)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.naive")
    p.add_argument("--netns", required=True)
    p.add_argument("--route", required=True)
    args = p.parse_args(argv)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _on_signal)
    bpf = compile_c("naive")
    fd = load_type(bpf, "naive_out", "out")
    name = f"naive_out_{bpfsys.prog_info(fd)['id']}"
    flows: dict[tuple, list[int]] = {}
    counts = {"events": 0, "lost": 0}

    def on_event(cpu, data, size):
        ev = ct.cast(data, ct.POINTER(PktEvent)).contents
        key = (ev.saddr, ev.daddr, ev.sport, ev.dport, ev.proto)
        st = flows.setdefault(key, [0, 0])
        st[0] += 1
        st[1] += ev.len
        counts["events"] += 1

    def on_lost(n):
        counts["lost"] += n

    bpf["naive_events"].open_perf_buffer(on_event, lost_cb=on_lost)
    att = None
    try:
        att = routes.attach(routes.Target(args.route, "out", netns=args.netns), fd, name, on_saved=lambda a: None)
        print("ready", flush=True)
        while not _stop:
            bpf.perf_buffer_poll(100)
    finally:
        if att is not None:
            routes.detach(att)
        failed = sum(bpf["naive_failed"][ct.c_int(0)])
        print(json.dumps({"events": counts["events"], "lost": counts["lost"], "failed_in_kernel": int(failed),
                          "flows": len(flows)}), flush=True)
        bpf.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
