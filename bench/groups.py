"""`python -m bench.groups [--ticks N]`: the cost the groups view (lwtui/core/groups.py) adds
to each refresh, beside the refresh it rides on.

Per size (1,000 / 10,000 / 100,000 flows, every flow's counters moving every tick, as in
bench/dashboard.py's synthetic session), in one process:
  build    SyntheticSession.snapshot(): what Session.snapshot() does after its kernel read
           (the baseline: the tick worker's own work)
  book     Groups.update() with no kind wanted: what every refresh pays on the tick worker
  view     Groups.update() with one kind wanted (the groups view on screen), the host
           grouping, so its rows are made too
Medians (and min-max) over N ticks after one warm-up tick, and book/build, view/build as
ratios. Prints a Markdown table. No root, no kernel: pure Python timings.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.dashboard import SyntheticSession
from lwtui.core.groups import Groups


def measure(n: int, ticks: int) -> dict:
    sess = SyntheticSession(n)
    booking, viewing = Groups(), Groups()
    viewing.want("host")
    build, book, view = [], [], []
    for i in range(ticks + 1):
        snap = sess.snapshot()
        t0 = time.perf_counter()
        booking.update(snap.time, snap.flows, snap.owners)
        t1 = time.perf_counter()
        viewing.update(snap.time, snap.flows, snap.owners)
        t2 = time.perf_counter()
        if i:                              # the first tick is a warm-up
            build.append(sess.build_s[-1])
            book.append(t1 - t0)
            view.append(t2 - t1)
    return {"flows": n, "build": build, "book": book, "view": view}


def _ms(xs: list[float]) -> str:
    return f"{statistics.median(xs) * 1000:,.1f} ({min(xs) * 1000:,.1f}-{max(xs) * 1000:,.1f})"


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.groups", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ticks", type=int, default=5)
    args = p.parse_args()
    print("| flows | build snapshot ms | book groups ms | book + host rows ms | book / build | view / build |")
    print("|---|---|---|---|---|---|")
    for n in (1_000, 10_000, 100_000):
        r = measure(n, args.ticks)
        b = statistics.median(r["build"])
        print(f"| {n:,} | {_ms(r['build'])} | {_ms(r['book'])} | {_ms(r['view'])} | "
              f"{statistics.median(r['book']) / b:.2f}x | {statistics.median(r['view']) / b:.2f}x |")


if __name__ == "__main__":
    main()
