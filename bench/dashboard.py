"""The dashboard at 1,000 / 10,000 / 100,000 flows; then memory: 100,000
long-lived flows for 70 ticks (each flow's history stops growing at 60
ticks), and churn (50,000 new flows every tick) past the flow table's
100,000 cap, to show resident memory stops growing.

Each size runs in a fresh worker process (`python -m bench.dashboard
--worker N`) so resident memory belongs to that size alone. The worker
drives the real DashboardApp headless (App.run_test) with a session whose
snapshot() does what Session.snapshot() does after its kernel read: the
counters of every flow as columns (every flow's counters move every tick: the
worst case), FlowStore.update_columns, view(), a Snapshot. Per tick:
  build   snapshot() on the tick worker, after the kernel read
  apply   render_flows on the UI thread (the app's own apply_seconds)
  tick    from request_tick() to the snapshot applied and the screen idle
Then, in the same worker, the part the synthetic session leaves out: a real
Probe's flow map filled with N entries, read with Probe.read_flow_arrays() and
turned into identity columns (codec.flow_columns), as Session.snapshot() does.
RSS is taken after the ticks (Python + Textual + table), and again after
loading BCC for the kernel read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ipaddress
import json
import subprocess
import sys
import threading
import time

from .common import RESULTS, ROOT, BenchError, Result, Spread, log, rss_kib

SIZE = (160, 50)


class SyntheticSession:
    """The session interface the dashboard needs, fed with N moving flows.

    With `churn`, every tick brings N flows never seen before (the kernel map
    turning over), so the table meets its cap while this harness holds only
    one tick's rows. `build_s` times what Session.snapshot() does after its
    kernel read; making the FlowIds (the kernel read's decoding) is outside it.
    """
    name = "bench"
    dry_run = False

    def __init__(self, n: int, churn: bool = False):
        from lwtui.core.flows import FlowStore
        self.n, self.churn, self.t0, self.step = n, churn, time.time() - 60, 0
        self.table = FlowStore(max_flows=max(100_000, n))   # a live session's table is as large as its map
        self.ids = self._ids(0)
        self.build_s: list[float] = []
        self._quiet = threading.Event()

    def _ids(self, block: int):
        """This block's flows as the session's identity columns (flowcols.KEY_DTYPE)."""
        import numpy as np
        from lwtui.core.flowcols import KEY_DTYPE, addr_bytes
        base = int(ipaddress.ip_address("10.1.0.0")) + block * self.n // 200 + block
        i = np.arange(self.n)
        keys = np.zeros(self.n, dtype=KEY_DTYPE)
        src = (base + i // 200).astype(">u4").view("u1").reshape(self.n, 4)
        keys["src"][:, 10:12] = 0xFF
        keys["src"][:, 12:] = src
        keys["dst"][:] = np.frombuffer(addr_bytes(ipaddress.ip_address("10.0.0.3")), "u1")
        keys["sport"], keys["dport"] = 30000 + i % 200, 8080 + i % 7
        keys["proto"] = np.where(i % 3 != 0, 6, 17)
        keys["family"], keys["hook"] = 4, 1
        return keys

    def snapshot(self):
        import numpy as np
        from lwtui.core.flowcols import COUNTER_DTYPE
        from lwtui.core.model import Snapshot, Totals
        self.step += 1
        if self.churn and self.step > 1:
            self.ids = self._ids(self.step)
        began = time.perf_counter()
        now = self.t0 + self.step
        s = self.step
        i = np.arange(self.n, dtype=np.int64)
        moving = (i * 7919 + s * 104729) % 5000 * s
        counters = np.zeros(self.n, dtype=COUNTER_DTYPE)
        counters["packets"], counters["bytes"] = moving, moving * 900
        counters["first_seen"], counters["last_seen"], counters["tcp_flags"] = self.t0, now - (i % 9), 0x12
        self.table.update_columns(now, self.ids, counters)
        recs = self.table.view()
        snap = Snapshot(time=now, flows=recs, totals=Totals(active_flows=len(recs), flow_capacity=65536),
                        started=self.t0, session=self.name)
        self.build_s.append(time.perf_counter() - began)
        return snap

    def poll_events(self, timeout_ms: int) -> None:
        self._quiet.wait(timeout_ms / 1000)  # no events: block like a perf buffer poll would

    def rules(self):
        return []


async def _drive(n: int, ticks: int, churn: bool) -> dict:
    from lwtui.ui.app import DashboardApp
    sess = SyntheticSession(n, churn)
    app = DashboardApp(sess, interval=1.0, autotick=False)
    tick_s, rss_ticks = [], []
    async with app.run_test(size=SIZE) as pilot:
        await _until(pilot, lambda: app.ticks >= 1, 120)
        await pilot.pause()
        for _ in range(ticks):
            before = app.ticks
            t = time.perf_counter()
            app.request_tick()
            await _until(pilot, lambda: app.ticks > before, 120)
            await pilot.pause()
            tick_s.append(time.perf_counter() - t)
            rss_ticks.append((len(sess.table), rss_kib()))
        shown = len(app.flow_ids)
        build, apply = sess.build_s[-ticks:], list(app.apply_seconds[-ticks:])
        app.stop_feed()
    return {"build_s": build, "apply_s": apply, "tick_s": tick_s, "rows_shown": shown, "rss_ticks": rss_ticks,
            "table_flows": len(sess.table), "rss_kib": rss_kib()}


async def _until(pilot, cond, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise BenchError("the dashboard did not apply a snapshot in time")
        await pilot.pause(0.005)


def kernel_read(n: int, reads: int) -> dict:
    """Fill a real flow map with n entries; time read_flow_arrays() + flow_columns per read."""
    from lwtui.kernel import bpfsys, kstructs
    from lwtui.kernel.codec import flow_columns
    from lwtui.kernel.probe import Probe
    probe = Probe(hooks=("out",), max_flows=max(1024, 2 * n))
    try:
        fd = probe.map_fd("flows")
        key = kstructs.FlowKey()
        ncpus = bpfsys.possible_cpus()  # `flows` holds one struct flow_stats per possible CPU
        val = (kstructs.FlowStats * ncpus)(kstructs.FlowStats(packets=1, bytes=100))
        key.family, key.proto, key.hook, key.dport = 4, 6, 1, 80
        key.saddr[10] = key.saddr[11] = key.daddr[10] = key.daddr[11] = 0xFF
        key.daddr[12:16] = (10, 0, 0, 3)
        for i in range(n):
            key.saddr[12:16] = (10, 1 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF)
            key.sport = 1024 + i % 50000
            bpfsys.map_update(fd, key, val)
        times, got = [], 0
        for _ in range(reads):
            t = time.perf_counter()
            keys, _stats = probe.read_flow_arrays()
            cols = flow_columns(keys)
            times.append(time.perf_counter() - t)
            got = len(cols)
        return {"kernel_read_s": times, "kernel_rows": got, "rss_with_bcc_kib": rss_kib()}
    finally:
        probe.close()


def kernel_path(n: int, ticks: int, interval: float = 1.0) -> dict:
    """The live session's whole data path on a real flow map holding n entries (--max-flows):
    a batch read into arrays, identity and counter columns, FlowStore.update_columns, a view,
    the table's selection (sorted by rate) and the records of one screen (45 rows).
    Every entry's counters move between ticks (map updates, outside the timing); the
    table's totals of packets are checked against what was written."""
    import ctypes as ct

    import numpy as np
    from bcc.libbcc import lib
    from lwtui.core.flows import FlowStore
    from lwtui.kernel import bpfsys, kstructs
    from lwtui.kernel.codec import flow_columns
    from lwtui.kernel.probe import Probe
    from lwtui.session.reading import kernel_counters
    from lwtui.ui.selection import SORTS, select_flows
    started = time.perf_counter()
    probe = Probe(hooks=("out",), max_flows=n + n // 8)   # an LRU map full to the brim evicts early
    try:
        fd, ncpus = probe.map_fd("flows"), bpfsys.possible_cpus()
        keys = np.zeros(n, dtype=kstructs.FLOW_KEY_DTYPE)
        i = np.arange(n)
        keys["saddr"][:, 10:12] = keys["daddr"][:, 10:12] = 0xFF
        keys["saddr"][:, 12:] = (int(ipaddress.ip_address("10.64.0.0")) + i // 50000).astype(">u4").view("u1").reshape(n, 4)
        keys["daddr"][:, 12:] = np.frombuffer(ipaddress.ip_address("10.0.0.3").packed, "u1")
        keys["sport"], keys["dport"], keys["proto"], keys["family"], keys["hook"] = 1024 + i % 50000, 80, 6, 4, 1
        mono = time.monotonic_ns()
        vals = np.zeros((n, ncpus), dtype=kstructs.FLOW_STATS_DTYPE)
        vals["first"], vals["last"] = mono, mono

        def fill(step: int) -> None:      # every flow moves: CPU 0's share grows
            vals["packets"][:, 0] = (i % 97 + 1) * step
            vals["bytes"][:, 0] = (i % 97 + 1) * step * 1000
            vals["last"][:, 0] = mono + step * 10**9
            done = 0
            while done < n:                 # BPF_MAP_UPDATE_BATCH, in chunks the kernel accepts
                count = ct.c_uint(min(n - done, 65536))
                if lib.bpf_update_batch(fd, keys[done:].ctypes.data, vals[done:].ctypes.data, ct.byref(count)):
                    raise BenchError(f"flows batch update failed: {os.strerror(ct.get_errno())}")
                done += count.value
        fill(1)
        table, m2w = FlowStore(max_flows=n), time.time() - time.monotonic()
        tick_s, first_s, rss = [], None, []
        for step in range(1, ticks + 1):
            if step > 1:
                fill(step)
            t = time.perf_counter()
            k, st = probe.read_flow_arrays()
            table.update_columns(time.time(), flow_columns(k), kernel_counters(st, m2w, False))
            view = table.view()
            sel = select_flows(view, now=time.time(), sort=SORTS[0])
            top = sel.rows[:45]
            tick_s.append(time.perf_counter() - t)
            if first_s is None:
                first_s = time.perf_counter() - started
            rss.append(rss_kib())
            want = int(((i % 97 + 1) * step).sum())
            if int(view.cols["packets"].sum()) != want or len(view) != n or top[0].packets != 97 * step:
                raise BenchError(f"tick {step}: the table does not hold what the map holds")
        return {"kernel_tick_s": tick_s, "kernel_flows": n, "start_to_first_tick_s": first_s,
                "rss_kib_per_tick": rss, "rss_kib": rss_kib()}
    finally:
        probe.close()


def worker(n: int, ticks: int, churn: bool, kernel: bool = True) -> dict:
    out = asyncio.run(_drive(n, ticks, churn))
    if kernel:
        out.update(kernel_read(n, min(ticks, 5)))
    return out


HISTORY_TICKS = 60  # FlowStore's history_len: a long-lived flow's record stops growing after this many ticks


def _worker(n: int, ticks: int, churn: bool, kernel: bool) -> dict:
    argv = [sys.executable, "-m", "bench.dashboard", "--worker", str(n), "--ticks", str(ticks)]
    argv += (["--churn"] if churn else []) + ([] if kernel else ["--no-kernel-read"])
    r = subprocess.run(argv, cwd=str(ROOT), capture_output=True, text=True, timeout=600 + n * ticks / 1000)
    if r.returncode != 0:
        raise BenchError(f"dashboard worker for {n} flows failed: {r.stderr.strip()[-800:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run(rounds: int = 5, sizes=(1_000, 10_000, 100_000), long_lived: tuple[int, int] | None = (100_000, 70),
        churn: tuple[int, int] | None = (50_000, 12)) -> Result:
    """`rounds` ticks per size for the timings; then memory: `long_lived` = (flows, ticks) past the
    history length, and `churn` = (new flows per tick, ticks) past the table's cap."""
    res = Result("dashboard", params={"ticks_per_size": rounds, "sizes": list(sizes), "terminal": list(SIZE),
                                      "flow_table_cap": 100_000, "history_ticks": HISTORY_TICKS,
                                      "long_lived": list(long_lived or ()), "churn": list(churn or ())})
    cases = [("timing", n, rounds) for n in sizes]
    cases += [("long-lived", *long_lived)] if long_lived else []
    cases += [("churn", *churn)] if churn else []
    for case, n, ticks in cases:
        log(f"dashboard: {case}, {n:,} flows, {ticks} ticks")
        w = _worker(n, ticks, churn=case == "churn", kernel=case == "timing")
        ms = lambda xs: Spread.of([x * 1000 for x in xs]).as_dict(2) if xs else None  # noqa: E731
        res.rows.append({"case": case, "flows": n, "ticks": ticks,
                         "flows_fed": n * (ticks + 1) if case == "churn" else n,
                         "snapshot_ms": ms(w["build_s"]), "apply_ms": ms(w["apply_s"]), "tick_ms": ms(w["tick_s"]),
                         "kernel_read_ms": ms(w.get("kernel_read_s")), "kernel_rows": w.get("kernel_rows"),
                         "rows_shown": w["rows_shown"], "table_flows": w["table_flows"],
                         "table_and_rss_kib_per_tick": w["rss_ticks"],
                         "rss_mib": round(w["rss_kib"] / 1024, 1),
                         "rss_with_bcc_mib": round(w["rss_with_bcc_kib"] / 1024, 1) if "rss_with_bcc_kib" in w else None})
    _targets(res)
    return res


def _targets(res: Result) -> None:
    by = {(r["case"], r["flows"]): r for r in res.rows}
    r = by.get(("timing", 10_000))
    if r:
        total = r["snapshot_ms"]["median"] + r["apply_ms"]["median"]
        res.target("10,000 flows: build + apply one snapshot", total, 50.0, higher_is_better=False, unit=" ms",
                   detail=f"build {r['snapshot_ms']['median']:.1f} + apply {r['apply_ms']['median']:.1f} ms; "
                          f"request-to-screen {r['tick_ms']['median']:.1f} ms; kernel read of 10,000 "
                          f"{r['kernel_read_ms']['median']:.1f} ms")
    long = next((r for r in res.rows if r["case"] == "long-lived"), None)
    if long and long["ticks"] > HISTORY_TICKS:
        kib = [k for _, k in long["table_and_rss_kib_per_tick"]]
        full = kib[HISTORY_TICKS - 1]
        res.target(f"memory bounded: {long['flows']:,} long-lived flows, RSS on the last tick vs tick "
                   f"{HISTORY_TICKS} (histories full)", kib[-1] / full, 1.03, higher_is_better=False, unit="x",
                   detail=f"{full / 1024:.0f} -> {kib[-1] / 1024:.0f} MiB (tick 1: {kib[0] / 1024:.0f} MiB)")
        ch = next((r for r in res.rows if r["case"] == "churn"), None)
        if ch:
            peak = max(k for _, k in ch["table_and_rss_kib_per_tick"])
            res.target(f"memory bounded: peak RSS with {ch['flows']:,} new flows every tick ({ch['flows_fed']:,} "
                       f"in all) vs the long-lived ceiling", peak / max(kib), 1.0, higher_is_better=False, unit="x",
                       detail=f"{peak / 1024:.0f} MiB vs {max(kib) / 1024:.0f} MiB; table holds {ch['table_flows']:,}")


def _main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard")
    p.add_argument("--worker", type=int, required=True, metavar="N")
    p.add_argument("--ticks", type=int, default=5)
    p.add_argument("--churn", action="store_true", help="new flows every tick")
    p.add_argument("--no-kernel-read", action="store_true", help="skip the kernel map read")
    p.add_argument("--kernel-path", action="store_true",
                   help="only the live data path on a real map of N entries (kernel_path)")
    a = p.parse_args()
    if a.kernel_path:
        out = kernel_path(a.worker, a.ticks)
        out["loadavg"] = [round(x, 2) for x in os.getloadavg()]
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"dashboard_kernel_path_{a.worker}.json").write_text(json.dumps(out, indent=2) + "\n")
        print(json.dumps(out))
        return 0
    print(json.dumps(worker(a.worker, a.ticks, a.churn, not a.no_kernel_read)))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
