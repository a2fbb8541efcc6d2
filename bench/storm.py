"""New-flow storm: how many distinct flows per second lwtui shows with zero
lost events, and what happens past that.

Each round starts a fresh worker process (`python -m bench.storm --worker`)
that runs what `lwtui watch ROUTE --json > /dev/null` runs: a Session on the
client's route 10.0.0.3/32 and lwtui.cli.watch.run_watch (reader thread, 1 s
ticks, JSON to /dev/null). bench/flowgen.py then sends one UDP datagram per
new flow at a fixed rate for a few seconds, stepping the rate up. Per step:
  new_flows  the kernel's count (stats map)
  delivered  events that reached the session's callback
  lost       failed perf outputs in the kernel (exact: every new flow's event
             either lands in the buffer or fails)
  table      flows in the session's FlowStore; rss: the worker's peak
             resident memory (Python + BCC + maps + table)
A worker per round keeps one round's memory from hiding in the next.

Then bench.transport compares the perf buffer with a BPF ring buffer.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time

from . import lab, transport
from .common import BASELINES, ROOT, BenchError, Result, Spread, log, rss_kib

RATES = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 0)  # 0: as fast as the sender can
FLOWGEN = str(BASELINES.parent / "flowgen.py")


def _accounted(sess, before: dict) -> dict:
    st = sess.probe.read_stats()
    return {"new_flows": st["new_flows"] - before["new_flows"],
            "delivered": sess.delivered - before["delivered"],
            "failed": st["events_failed"] - before["failed"],
            "lost_cb": sess._lost - before["lost_cb"]}


def _step(sess, netns: str, server: str, rate: float, seconds: float) -> dict:
    st = sess.probe.read_stats()
    before = {"new_flows": st["new_flows"], "delivered": sess.delivered, "failed": st["events_failed"],
              "lost_cb": sess._lost}
    sockets = max(1, math.ceil((rate or 400_000) * seconds / 64_512) + 1)
    gen = lab.ns_popen(netns, [sys.executable, FLOWGEN, server, str(rate), str(seconds), "--sockets", str(sockets)])
    peak = rss_kib()
    while gen.poll() is None:
        peak = max(peak, rss_kib())
        time.sleep(0.05)
    sent = json.loads(gen.stdout.read())
    # every new flow's event is delivered or failed: wait until the reader has taken them all
    acc = lab.wait_for(lambda: (lambda a: a if a["delivered"] + a["failed"] >= a["new_flows"] else None)(
        _accounted(sess, before)), 60, "the reader draining the perf buffer")
    time.sleep(1.1)  # one watch tick, so the table has merged the step's flows
    acc = _accounted(sess, before)
    peak = max(peak, rss_kib())
    return {"rate": rate, "sent": sent["sent"], "sent_per_s": sent["rate"], **acc,
            "new_flows_per_s": round(acc["new_flows"] / sent["seconds"], 1),
            "lost_fraction": round(acc["failed"] / acc["new_flows"], 4) if acc["new_flows"] else 0.0,
            "table_flows": len(sess.flows), "rss_kib": peak}


def worker(netns: str, server: str, rates: list[float], seconds: float) -> list[dict]:
    """One round in this process: a watch-equivalent session and the rate sweep."""
    from lwtui.net.routes import Target
    from lwtui.cli.watch import run_watch
    rss_start = rss_kib()
    sess = lab.instrumented_session(Target(lab.ROUTE, "out", netns=netns), f"bench-storm-{os.getpid()}")
    stop = threading.Event()
    steps = []
    th = None
    with open(os.devnull, "w") as devnull:
        try:
            sess.start()
            rss_ready = rss_kib()
            th = threading.Thread(target=run_watch, args=(sess,), daemon=True,
                                  kwargs=dict(interval=1.0, duration=None, as_json=True, out=devnull, stop=stop))
            th.start()
            for rate in rates:
                steps.append(dict(_step(sess, netns, server, rate, seconds), rss_start_kib=rss_start,
                                  rss_ready_kib=rss_ready))
        finally:
            stop.set()
            if th is not None:
                th.join(timeout=10)  # the watch loop ends within one interval; then close the session
            sess.close()
    return steps


def lwtui_sweep(rounds: int, seconds: float, rates=RATES) -> tuple[list[dict], list[dict]]:
    """Rows per rate (medians over rounds) and the raw steps."""
    raw: list[dict] = []
    with lab.topology() as topo:
        for rnd in range(rounds):
            log(f"storm round {rnd + 1}/{rounds}: rates {', '.join(str(r or 'max') for r in rates)} flows/s")
            argv = [sys.executable, "-m", "bench.storm", "--worker", "--netns", topo.client_ns,
                    "--server", topo.server_v4, "--seconds", str(seconds), "--rates", *map(str, rates)]
            res = subprocess.run(argv, cwd=str(ROOT), capture_output=True, text=True,
                                 timeout=len(rates) * (seconds + 70) + 60)
            if res.returncode != 0:
                raise BenchError(f"storm worker failed ({res.returncode}): {res.stderr.strip()[-600:]}")
            raw.extend(dict(s, round=rnd) for s in json.loads(res.stdout))
            if lab.route_encap(topo.client_ns):
                raise BenchError("the storm worker left a program on the route")
    rows = []
    for rate in rates:
        steps = [s for s in raw if s["rate"] == rate]
        row = {"section": "lwtui", "rate": rate or "max"}
        for k in ("sent_per_s", "new_flows_per_s", "delivered", "failed", "lost_cb", "lost_fraction",
                  "table_flows"):
            row[k] = Spread.of([s[k] for s in steps]).as_dict(4 if k == "lost_fraction" else 0)
        row["rss_mib"] = Spread.of([s["rss_kib"] / 1024 for s in steps]).as_dict(1)
        row["rss_ready_mib"] = Spread.of([s["rss_ready_kib"] / 1024 for s in steps]).as_dict(1)
        rows.append(row)
    return rows, raw


def run(rounds: int = 3, seconds: float = 3.0) -> Result:
    res = Result("storm", params={"rounds": rounds, "seconds_per_step": seconds, "rates": list(RATES),
                                  "watch_interval": 1.0})
    rows, raw = lwtui_sweep(rounds, seconds)
    res.rows.extend(rows)
    res.params["raw_steps"] = raw
    per_rate: dict = {}
    for s in raw:
        per_rate.setdefault(s["rate"], []).append(s)
    always = [min(x["new_flows_per_s"] for x in v) for v in per_rate.values() if all(x["failed"] == 0 for x in v)]
    best = max((s["new_flows_per_s"] for s in raw if s["failed"] == 0), default=0.0)
    res.rows.append({"section": "summary", "lossless_flows_per_s_every_round": max(always, default=0.0),
                     "lossless_flows_per_s_best_step": best,
                     "peak_rss_mib": round(max(s["rss_kib"] for s in raw) / 1024, 1)})
    res.rows.extend(transport.run_transport([50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000],
                                            seconds=min(seconds, 2.0), rounds=rounds))
    return res


def _main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.storm")
    p.add_argument("--worker", action="store_true", required=True)
    p.add_argument("--netns", required=True)
    p.add_argument("--server", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--rates", type=float, nargs="+", required=True)
    a = p.parse_args()
    print(json.dumps(worker(a.netns, a.server, a.rates, a.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
