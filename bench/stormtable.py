"""New-flow storm into the flow table: every flow sent is found by the map read.

`python -m bench.stormtable [--rates R ...] [--seconds S] [--max-flows N] [--rounds K]
[--small-map M]` runs, per step, a fresh worker process (`--worker`) holding a
real Session on the client's route 10.0.0.3/32 (`out`) in the bench's
namespaces, driven as the dashboard drives it: a reader thread polling events
(a hint only) and a refresh thread calling Session.snapshot() once a second,
the next one a second after the last began or at once when it ran longer
(never overlapping). A sender then sends one UDP datagram per flow never seen
before, paced at the step's rate, for S seconds, through the route and so
through the attached program: real packets, no BPF_PROG_TEST_RUN. The sender
is bench/flowgen.c (--sender c, the default: batches of sendmmsg, built with
cc), as one Python sender (bench/flowgen.py, --sender python) reaches only
~80-90,000 datagrams/s here while the session takes the other CPU.

The generator names every flow it sent (source ports, destination ports
walked, failed sends), so the oracle is exact. After the storm (the kernel's
new_flows has reached the count sent) one more snapshot is taken, and:
  found       flows sent whose row is in the table with packets == 1
  ever_shown  flows sent that some snapshot's table held with packets > 0
  in_map      flows sent that the kernel map holds at the end (one more read)
against the kernel's own counters (stats new_flows, flow_update_failed) and
what lwtui reports (Totals.flows_evicted, flows_unseen). Per step also: the
rate achieved (kernel new flows / the sender's seconds), the refreshes' cost
(seconds per snapshot during the storm) and the worker's peak resident memory.

Before the steps, the sender alone (nothing attached to the route) at each
rate: what the machine reaches without lwtui. The last step runs with a
kernel map too small for the storm (--small-map), so the LRU evicts: then
sent - ever_shown must equal flows_unseen and sent - in_map flows_evicted.
Results: bench/results/storm_table.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from . import lab
from .common import ROOT, BenchError, Result, Spread, log, require_tool, rss_kib
from .common import run as run_cmd
from .storm import FLOWGEN

RATES = (25_000, 50_000, 100_000, 200_000)


def _pairs(sent: dict):
    """The flows the generator sent, as sport << 16 | dport (uint64)."""
    import numpy as np
    parts = [(sport << 16) + 1024 + np.arange(n, dtype=np.uint64)
             for sport, n in zip(sent["sports"], sent["walked"]) if n]
    allp = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    failed = np.array([(sent["sports"][i] << 16) + port for i, port in sent["failed_at"]], dtype=np.uint64)
    return np.setdiff1d(allp.astype(np.uint64), failed)


def _udp_pairs(keys, packets, server: bytes):
    """(pair, packets) of the UDP flows to the server at `out` among KEY_DTYPE rows."""
    import numpy as np
    mine = (keys["proto"] == 17) & (keys["hook"] == 1) & (keys["dst"] == np.frombuffer(server, "u1")).all(axis=1)
    pair = (keys["sport"][mine].astype(np.uint64) << np.uint64(16)) | keys["dport"][mine].astype(np.uint64)
    return pair, packets[mine]


class Refresher(threading.Thread):
    """Session.snapshot() once a second, never overlapping; the union of the flows shown."""

    def __init__(self, sess, server: bytes, interval: float = 1.0):
        super().__init__(name="bench-refresh", daemon=True)
        import numpy as np
        self.sess, self.server, self.interval = sess, server, interval
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ticks: list[tuple[float, float, int]] = []   # (start monotonic, seconds, flows in table)
        self.shown = np.zeros(0, np.uint64)
        self.last = None
        self.error: BaseException | None = None

    def tick(self):
        import numpy as np
        t = time.monotonic()
        snap = self.sess.snapshot()
        took = time.monotonic() - t
        view = snap.flows
        pair, pk = _udp_pairs(view.keys, view.cols["packets"], self.server)
        with self.lock:
            self.shown = np.union1d(self.shown, pair[pk > 0])
            self.ticks.append((t, took, len(view)))
            self.last = snap
        return snap

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                began = time.monotonic()
                self.tick()
                self.stop.wait(max(0.0, began + self.interval - time.monotonic()))
        except BaseException as e:  # reported by the worker, not lost in a thread
            self.error = e


def build_sender(directory: str) -> str:
    """bench/flowgen.c compiled with the system's cc into `directory`; its path."""
    cc = require_tool("cc", "gcc")
    exe = os.path.join(directory, "flowgen")
    run_cmd([cc, "-O2", "-o", exe, str(Path(__file__).resolve().parent / "flowgen.c")], timeout=120)
    return exe


def worker(netns: str, server: str, rate: float, seconds: float, max_flows: int, sender: str = "") -> dict:
    """One step in this process: a session, a paced storm, the oracle."""
    import ipaddress

    import numpy as np
    from lwtui.kernel.codec import flow_columns
    from lwtui.net.routes import Target
    from lwtui.session.live import Session
    srv = ipaddress.ip_address(server)
    srv16 = (b"\0" * 10 + b"\xff\xff" + srv.packed) if srv.version == 4 else srv.packed
    sess = Session([Target(lab.ROUTE, "out", netns=netns)], name=f"bench-stormtable-{os.getpid()}",
                   max_flows=max_flows)
    stop_reader = threading.Event()

    def read_events() -> None:      # the dashboard's reader thread: events are a hint, drained as they come
        while not stop_reader.is_set():
            sess.poll_events(100)
    reader = threading.Thread(target=read_events, name="bench-reader", daemon=True)
    ref = None
    try:
        sess.start()
        assert sess.probe is not None
        reader.start()
        ref = Refresher(sess, srv16)
        ref.start()
        time.sleep(1.5)     # a refresh or two of an idle table first
        sockets = max(1, math.ceil(rate * seconds / 64_512) + 1)
        peak = rss_kib()
        storm_t0 = time.monotonic()
        gen = lab.ns_popen(netns, [*([sender] if sender else [sys.executable, FLOWGEN]), server, str(rate),
                                   str(seconds), "--sockets", str(sockets)])
        while gen.poll() is None:
            peak = max(peak, rss_kib())
            time.sleep(0.05)
        storm_t1 = time.monotonic()
        if gen.returncode != 0:
            raise BenchError(f"flowgen failed: {gen.stderr.read()[-400:]}")
        sent = json.loads(gen.stdout.read())
        want = _pairs(sent)
        # every datagram made its flow in the kernel, then one refresh that began after that
        lab.wait_for(lambda: sess.probe.read_stats()["new_flows"] >= len(want), 30, "the kernel counting the storm")
        settled = time.monotonic()
        lab.wait_for(lambda: any(t0 > settled for t0, _, _ in list(ref.ticks)), 30, "a refresh after the storm",
                     step=0.05)
        ref.stop.set()
        ref.join(timeout=60)
        if ref.error is not None:
            raise BenchError(f"a refresh failed: {ref.error!r}")
        snap = ref.last
        peak = max(peak, rss_kib())
        pair, pk = _udp_pairs(snap.flows.keys, snap.flows.cols["packets"], srv16)
        exact = pair[pk == 1]
        keys, _st = sess.probe.read_flow_arrays()
        in_map, _ = _udp_pairs(flow_columns(keys), np.zeros(len(keys)), srv16)
        stats = sess.probe.read_stats()
        t = snap.totals
        storm_ticks = [took for t0, took, _ in ref.ticks if storm_t0 <= t0 <= storm_t1 + 1.0]
        return {"rate": rate, "max_flows": max_flows, "seconds": sent["seconds"], "sent": len(want),
                "send_errors": sent["errors"], "sent_per_s": round(len(want) / sent["seconds"], 1),
                "kernel_new_flows": stats["new_flows"], "kernel_update_failed": stats["flow_update_failed"],
                "new_flows_per_s": round(stats["new_flows"] / sent["seconds"], 1),
                "found": int(np.isin(want, exact).sum()), "present": int(np.isin(want, pair).sum()),
                "ever_shown": int(np.isin(want, ref.shown).sum()), "in_map": int(np.isin(want, in_map).sum()),
                "extra_rows": int((~np.isin(pair, want)).sum()), "table_flows": len(snap.flows),
                "lwtui_new_flows": t.new_flows, "lwtui_evicted": t.flows_evicted, "lwtui_unseen": t.flows_unseen,
                "events_lost": max(t.events_failed, t.events_lost),
                "tick_s": storm_ticks, "ticks_in_storm": len(storm_ticks),
                "idle_tick_s": [took for t0, took, _ in ref.ticks if t0 < storm_t0],
                "last_tick_s": ref.ticks[-1][1], "rss_kib": peak}
    finally:
        if ref is not None:
            ref.stop.set()
            ref.join(timeout=60)
        stop_reader.set()
        if reader.is_alive():
            reader.join(timeout=5)
        sess.close()


def bare(topo, exe: str, rate: float, seconds: float) -> dict:
    """The sender alone, nothing attached to the route: the rate the route and the sender reach."""
    sockets = max(1, math.ceil(rate * seconds / 64_512) + 1)
    gen = lab.ns_popen(topo.client_ns, [*([exe] if exe else [sys.executable, FLOWGEN]), topo.server_v4, str(rate),
                                        str(seconds), "--sockets", str(sockets)])
    out, err = gen.communicate(timeout=seconds + 60)
    if gen.returncode != 0:
        raise BenchError(f"flowgen failed: {err[-400:]}")
    sent = json.loads(out)
    return {"rate": rate, "sent": sent["sent"], "sent_per_s": sent["rate"], "errors": sent["errors"]}


def run(rates=RATES, seconds: float = 3.0, max_flows: int = 1_000_000, small_map: int = 65_536,
        small_rate: float = 100_000, rounds: int = 1, sender: str = "c") -> Result:
    res = Result("storm_table", params={"rates": list(rates), "seconds_per_step": seconds, "max_flows": max_flows,
                                        "small_map": small_map, "small_map_rate": small_rate, "refresh": 1.0,
                                        "rounds": rounds, "sender": sender})
    steps = [(r, max_flows) for r in rates] + ([(small_rate, small_map)] if small_map else [])
    with lab.topology() as topo, tempfile.TemporaryDirectory(prefix="lwtui-bench-") as tmp:
        exe = build_sender(tmp) if sender == "c" else ""
        for rnd in range(rounds):
            for rate in rates:
                b = bare(topo, exe, rate, seconds)
                res.rows.append(dict(b, section="bare", round=rnd))
                log(f"sender alone (no program on the route): {rate:,.0f}/s asked, {b['sent_per_s']:,.0f}/s sent")
        for rnd, (rate, size) in ((rnd, st) for rnd in range(rounds) for st in steps):
            log(f"storm into the table: {rate:,.0f} flows/s for {seconds:g} s, --max-flows {size:,}")
            argv = [sys.executable, "-m", "bench.stormtable", "--worker", "--netns", topo.client_ns,
                    "--server", topo.server_v4, "--seconds", str(seconds), "--rates", str(rate),
                    "--max-flows", str(size), *(["--sender", exe] if exe else [])]
            r = subprocess.run(argv, cwd=str(ROOT), capture_output=True, text=True, timeout=seconds + 240)
            if r.returncode != 0:
                raise BenchError(f"stormtable worker failed ({r.returncode}): {r.stderr.strip()[-800:]}")
            step = json.loads(r.stdout.strip().splitlines()[-1])
            if lab.route_encap(topo.client_ns):
                raise BenchError("the stormtable worker left a program on the route")
            ms = Spread.of([x * 1000 for x in step["tick_s"]]).as_dict(1) if step["tick_s"] else None
            res.rows.append(dict(step, section="session", round=rnd, tick_ms=ms,
                                 rss_mib=round(step["rss_kib"] / 1024, 1)))
            log(f"  sent {step['sent']:,} ({step['sent_per_s']:,.0f}/s), found {step['found']:,}, "
                f"shown {step['ever_shown']:,}, in map {step['in_map']:,}; lwtui: evicted {step['lwtui_evicted']:,}, "
                f"unseen {step['lwtui_unseen']:,}; tick {ms}")
    _targets(res)
    return res


def _targets(res: Result) -> None:
    for s in (r for r in res.rows if r["section"] == "session"):
        big = s["max_flows"] >= s["sent"]
        what = f"round {s['round'] + 1}: {s['rate']:,.0f} flows/s, --max-flows {s['max_flows']:,}"
        if big:
            res.target(f"{what}: flows found in the table with their exact count / sent", s["found"] / s["sent"],
                       1.0, higher_is_better=True, unit="",
                       detail=f"{s['found']:,} of {s['sent']:,} at {s['new_flows_per_s']:,.0f} new flows/s; "
                              f"evicted {s['lwtui_evicted']}, unseen {s['lwtui_unseen']}")
        else:
            res.target(f"{what} (map too small): never shown - flows_unseen", abs(
                (s["sent"] - s["ever_shown"]) - s["lwtui_unseen"]), 0, higher_is_better=False,
                detail=f"sent {s['sent']:,}, shown {s['ever_shown']:,}, unseen {s['lwtui_unseen']:,}; "
                       f"not in map {s['sent'] - s['in_map']:,}, evicted {s['lwtui_evicted']:,}")


def _main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.stormtable", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--netns", help=argparse.SUPPRESS)
    p.add_argument("--server", help=argparse.SUPPRESS)
    p.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--max-flows", type=int, default=1_000_000)
    p.add_argument("--small-map", type=int, default=65_536, help="the step with a map too small (0: none)")
    p.add_argument("--rounds", type=int, default=1, help="passes over every step")
    p.add_argument("--sender", default="c", help="c: bench/flowgen.c (sendmmsg), python: bench/flowgen.py; "
                   "the worker takes the built sender's path")
    a = p.parse_args()
    if a.worker:
        sender = "" if a.sender in ("c", "python") else a.sender
        print(json.dumps(worker(a.netns, a.server, a.rates[0], a.seconds, a.max_flows, sender)))
        return 0
    res = run(a.rates, a.seconds, a.max_flows, a.small_map, rounds=a.rounds, sender=a.sender)
    path = res.save()
    log(f"wrote {path}")
    for t in res.targets:
        log(f"  {'MET ' if t['met'] else 'MISS'} {t['target']}: {t['measured']} {t['detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
