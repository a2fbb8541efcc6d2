"""`python -m bench [NAME ...] [--quick] [--rounds N]`: run benchmarks, write
bench/results/NAME.json (with --quick: bench/results/quick/), print a
summary and render the tables of BENCHMARKS.md; `--report` only renders them
from the result files already there.

Benchmarks are not tests: they need root, take minutes and load the machine;
they never run in CI. Names: microbench, throughput, storm, latency, dashboard,
ptydash (the dashboard as a person runs it, in a pty: synthetic flows, this
tree and main, then the real lwtui on a route with 100,000 moving flows) (the
default set), ablation (on request: where the per-packet time goes) and
capture (on request: what --pcap costs a dropped packet).
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback

from .common import RESULTS, BenchError, log

NAMES = ("microbench", "throughput", "storm", "latency", "dashboard", "ptydash")
EXTRA = ("ablation", "capture")


def _runner(name: str, args):
    """The callable for one benchmark, with its full or --quick parameters."""
    q = args.quick
    rounds = args.rounds
    if name == "microbench":
        from . import microbench
        return lambda: microbench.run(rounds=rounds or (2 if q else 5), repeat=100_000 if q else 1_000_000,
                                      new_n=1500 if q else 3000)
    if name == "throughput":
        from . import throughput
        conds = tuple(args.conditions.split(",")) if args.conditions else throughput.CONDITIONS
        return lambda: throughput.run(rounds=rounds or (1 if q else 15), seconds=2 if q else 2.5, conditions=conds)
    if name == "storm":
        from . import storm
        return lambda: storm.run(rounds=rounds or (1 if q else 3), seconds=1.0 if q else 3.0)
    if name == "latency":
        from . import latency
        return lambda: latency.run(rounds=rounds or (2 if q else 7))
    if name == "ablation":
        from . import ablation
        return lambda: ablation.run(rounds=rounds or (2 if q else 5), repeat=100_000 if q else 1_000_000,
                                    against=args.against)
    if name == "capture":
        from . import capture
        return lambda: capture.run(rounds=rounds or (2 if q else 5), repeat=100_000 if q else 1_000_000)
    if name == "dashboard":
        from . import dashboard
        return lambda: dashboard.run(rounds=rounds or (2 if q else 5),
                                     sizes=(1_000, 10_000) if q else (1_000, 10_000, 100_000),
                                     long_lived=(10_000, 65) if q else (100_000, 70),
                                     churn=(20_000, 6) if q else (50_000, 12))
    if name == "ptydash":
        from . import ptydash
        return lambda: ptydash.run(flows=20_000 if q else 100_000, seconds=10 if q else 30, warmup=5 if q else 15)
    raise BenchError(f"unknown benchmark {name!r}: choose from {', '.join(NAMES + EXTRA)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"benchmarks to run (default: {', '.join(NAMES)}; also: {', '.join(EXTRA)})")
    p.add_argument("--quick", action="store_true", help="short runs for trying the harness; not for publishing")
    p.add_argument("--rounds", type=int, help="rounds per benchmark (default: each benchmark's own)")
    p.add_argument("--against", metavar="REV",
                   help="ablation: also time bpf/lwtui.bpf.c as it was at this git revision (before/after)")
    p.add_argument("--conditions", metavar="LIST",
                   help="throughput: comma-separated conditions to run (none and lwtui always run)")
    p.add_argument("--report", action="store_true", help="only render BENCHMARKS.md tables from bench/results")
    p.add_argument("--no-report", action="store_true", help="do not update BENCHMARKS.md after running")
    args = p.parse_args(argv)
    # A shell's background job starts with SIGINT ignored, and children inherit
    # that: `lwtui watch` would then never see the Ctrl-C the benchmarks send.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from . import report
    if args.report:
        path = report.update()
        log(f"tables rendered into {path}")
        return 0
    names = args.names or list(NAMES)
    failed = []
    for name in names:
        try:
            run = _runner(name, args)
            log(f"== {name}")
            res = run()
            res.params["quick"] = args.quick
            path = res.save(RESULTS / "quick" if args.quick else RESULTS)
            log(f"{name}: wrote {path}")
            for t in res.targets:
                log(f"  {'MET ' if t['met'] else 'MISS'} {t['target']}: {t['measured']}{t['unit']} "
                    f"(limit {t['limit']}{t['unit']}) {t['detail']}")
        except BenchError as e:
            log(f"{name}: cannot run: {e}")
            failed.append(name)
        except Exception:
            log(f"{name}: failed:\n{traceback.format_exc()}")
            failed.append(name)
    if not args.no_report and not args.quick:
        log(f"tables rendered into {report.update()}")
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
