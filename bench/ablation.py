"""Where the common case's nanoseconds go: lwtui's program with one piece
taken out at a time, timed like the microbenchmark (existing IPv4 TCP flow,
allowed, `out` hook) against the no-op in the same round. The base is the
program as a Session compiles it (its -D flags); each variant adds an edit or
a flag.

The variants are copies of bpf/lwtui.bpf.c edited in a temporary directory,
for measurement only: none of them is a proposed program as is (several
drop counters lwtui needs). Each edit names the text it replaces and fails
loudly when the source has changed, so a variant never silently measures the
unmodified program. Not part of the default run (`python -m bench ablation`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from lwtui.kernel import bpfsys
from lwtui.kernel.probe import bpf_dir

from . import packets
from .common import BenchError, Result, Spread, log, ratio_spread, require_root
from .progs import Noop, compile_file, load_type, lwtui_cflags

STATS_AT_ENTRY = "\tstat_add(LWTUI_ST_PACKETS, 1);\n\tstat_add(LWTUI_ST_BYTES, len);\n"
ATOMIC_COUNTS = ("\t__sync_fetch_and_add(&fs->packets, 1);\n\t__sync_fetch_and_add(&fs->bytes, len);\n")
PLAIN_COUNTS = "\tfs->packets += 1;\n\tfs->bytes += len;\n"
LRU = 'BPF_TABLE("lru_hash", struct flow_key, struct flow_stats, flows, MAX_FLOWS);'

NO_CLOCK = ("\tnow = flow_clock();\n", "\tnow = 1;\n")
PERCPU_LRU = (LRU, LRU.replace('"lru_hash"', '"lru_percpu_hash"'))

# name -> (text edits, extra -D flags)
VARIANTS: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "lwtui as a Session compiles it": ([], []),
    "precise clock (without -DLWTUI_COARSE_CLOCK)": ([], ["-ULWTUI_COARSE_CLOCK"]),
    "no clock read at all": ([NO_CLOCK], []),
    "without the two per-CPU stats updates": ([(STATS_AT_ENTRY, "")], []),
    "plain (non-atomic) flow counters": ([(ATOMIC_COUNTS, PLAIN_COUNTS)], []),
    "per-CPU LRU flow map, plain counters": ([PERCPU_LRU, (ATOMIC_COUNTS, PLAIN_COUNTS)], []),
    "no stats updates + per-CPU LRU": ([(STATS_AT_ENTRY, ""), PERCPU_LRU, (ATOMIC_COUNTS, PLAIN_COUNTS)], []),
    "no clock + no stats updates + per-CPU LRU": ([NO_CLOCK, (STATS_AT_ENTRY, ""), PERCPU_LRU,
                                                   (ATOMIC_COUNTS, PLAIN_COUNTS)], []),
}


def _variant_source(tmp: Path, name: str, edits: list[tuple[str, str]]) -> Path:
    src = (bpf_dir() / "lwtui.bpf.c").read_text()
    for old, new in edits:
        if src.count(old) != 1:
            raise BenchError(f"ablation {name!r}: the text to replace occurs {src.count(old)} times in "
                             f"lwtui.bpf.c (expected once): update bench/ablation.py")
        src = src.replace(old, new)
    d = tmp / f"v{abs(hash(name))}"
    d.mkdir()
    shutil.copy(bpf_dir() / "lwtui.h", d / "lwtui.h")
    (d / "lwtui.bpf.c").write_text(src)
    return d / "lwtui.bpf.c"


def run(rounds: int = 5, repeat: int = 1_000_000) -> Result:
    require_root()
    from lwtui.kernel.probe import build_cflags
    res = Result("ablation", params={"rounds": rounds, "repeat": repeat, "packet": "tcp", "hook": "out",
                                     "lwtui_cflags": list(lwtui_cflags())})
    pkt = packets.packet("tcp")
    noop = Noop(("out",))
    loaded = {}
    with tempfile.TemporaryDirectory(prefix="lwtui-bench-ablation-") as tmp:
        try:
            for name, (edits, extra) in VARIANTS.items():
                path = _variant_source(Path(tmp), name, edits)
                flags = [f for f in build_cflags(65536, 4096, (*lwtui_cflags(), *extra))
                         if not f.startswith("-I")] + [f"-I{path.parent}"]
                bpf = compile_file(path, flags)
                loaded[name] = (bpf, load_type(bpf, "lwtui_out", "out"))
            ns = {name: [] for name in loaded}
            floor = []
            for rnd in range(rounds):
                log(f"ablation round {rnd + 1}/{rounds}")
                floor.append(bpfsys.prog_test_run(noop.fds["out"], pkt, repeat)[1])
                for name, (_, fd) in loaded.items():
                    bpfsys.prog_test_run(fd, pkt, 1)  # the flow exists first
                    ret, t = bpfsys.prog_test_run(fd, pkt, repeat)
                    if ret != 0:
                        raise BenchError(f"ablation {name!r} returned {ret} for an allowed packet")
                    ns[name].append(t)
        finally:
            for bpf, _ in loaded.values():
                bpf.cleanup()
            noop.close()
    base = ns["lwtui as a Session compiles it"]
    for name, vals in ns.items():
        res.rows.append({"variant": name, "ns": Spread.of(vals).as_dict(1),
                         "x_noop": ratio_spread(vals, floor).as_dict(2),
                         "saved_ns": Spread.of([b - v for b, v in zip(base, vals)]).as_dict(1)})
    res.rows.append({"variant": "no-op", "ns": Spread.of(floor).as_dict(1)})
    return res
