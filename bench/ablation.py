"""Where the common case's nanoseconds go: lwtui's program with one piece
taken out at a time, timed like the microbenchmark (existing IPv4 TCP flow,
allowed, `out` hook) against the no-op in the same round. The base is the
program as a Session compiles it (its -D flags); each variant adds an edit or
a flag.

The variants are copies of bpf/lwtui.bpf.c edited in a temporary directory,
for measurement only: none of them is a proposed program as is (several
drop counters lwtui needs). Each edit names the text it replaces and fails
loudly when the source has changed, so a variant never silently measures the
unmodified program. Beside them, the floors of bench/baselines/lookup.c: a
program that only looks the same 40-byte key up in one kind of kernel map and
adds two counters, what any flow lookup costs here whatever surrounds it. Not
part of the default run (`python -m bench ablation`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from lwtui.kernel import bpfsys, kstructs
from lwtui.kernel.loader import bpf_dir
from lwtui.kernel.verdicts import write_config_slot

from . import packets
from .common import ROOT, BenchError, Result, Spread, log, pin_one_cpu, ratio_spread, require_root
from .microbench import STATS_ON, best_of_batches
from .progs import Noop, compile_c, compile_file, load_type, lwtui_cflags

STATS_AT_ENTRY = ("\tst = stats.lookup(&at);\n\tif (st) {\n\t\tst->v[LWTUI_ST_PACKETS] += pi.segs;\n"
                  "\t\tst->v[LWTUI_ST_BYTES] += len;\n\t}\n", "")
NO_CLOCK = ("\tnow = flow_clock();\n", "\tnow = 1;\n")
NO_GEN = ("\tgen = (__u32)cfg_get(LWTUI_CFG_RULES_GEN);\n", "\tgen = 1;\n")
NO_FLAGS = ("\tfs->tcp_flags |= pi.tcp_flags;\n", "")
LOOKUP_ONLY = ("\tfs = flow_entry(&key, now, &created);\n",
               "\tif (flows.lookup(&key))\n\t\treturn BPF_OK;\n\tfs = flow_entry(&key, now, &created);\n")
NO_FAST_PARSE = ("\tif (parse_fast_ipv4(skb, key, pi))\n\t\treturn;\n", "")
PARSE_ONLY = ("\t\treturn handle_bad(skb, &key, &pi);\n", "\t\treturn handle_bad(skb, &key, &pi);\n\treturn BPF_OK;\n")

# -D flags of bench/baselines/lookup.c -> its row
FLOORS = {
    '-DLOOKUP_MAP="lru_percpu_hash"': "floor: one lookup in a per-CPU LRU hash (the flow map's kind) and two adds, nothing else",
    '-DLOOKUP_MAP="percpu_hash"': "floor: the same in a per-CPU hash (no LRU)",
    '-DLOOKUP_MAP="lru_hash"': "floor: the same in an LRU hash (values shared by the CPUs)",
    '-DLOOKUP_MAP="hash"': "floor: the same in a plain hash",
    "-DLOOKUP_ARRAY": "floor: the same in a per-CPU array at a constant index (inlined by the verifier)",
}

# name -> (text edits, extra -D flags)
VARIANTS: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "lwtui as a Session compiles it": ([], []),
    "precise clock (without -DLWTUI_COARSE_CLOCK)": ([], ["-ULWTUI_COARSE_CLOCK"]),
    "coarse clock read on every packet (no per-jiffy cache)": ([], ["-DLWTUI_NO_CLOCK_CACHE"]),
    "no clock read at all": ([NO_CLOCK], []),
    "the general parser alone (no IPv4 TCP/UDP fast path)": ([NO_FAST_PARSE], []),
    "without the per-CPU stats updates": ([STATS_AT_ENTRY], []),
    "without the rules generation read": ([NO_GEN], []),
    "without the tcp_flags OR": ([NO_FLAGS], []),
    "up to the flow lookup: no counter updates, no verdict check": ([LOOKUP_ONLY], []),
    "stats and parse only (no flow lookup)": ([PARSE_ONLY], []),
    "parse only": ([STATS_AT_ENTRY, PARSE_ONLY], []),
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


def _source_at(tmp: Path, rev: str) -> Path:
    """bpf/lwtui.bpf.c and lwtui.h as they were at a git revision of this tree."""
    d = tmp / "at-rev"
    d.mkdir()
    for name in ("lwtui.bpf.c", "lwtui.h"):
        res = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:bpf/{name}"], capture_output=True, text=True)
        if res.returncode != 0:
            raise BenchError(f"--against {rev}: git cannot show bpf/{name} there: {res.stderr.strip()}")
        (d / name).write_text(res.stdout)
    return d / "lwtui.bpf.c"


def run(rounds: int = 5, repeat: int = 1_000_000, against: str | None = None) -> Result:
    """against: a git revision whose program is timed too, as a variant of its own (before/after)."""
    require_root()
    from lwtui.kernel.loader import build_cflags
    res = Result("ablation", params={"rounds": rounds, "repeat": repeat, "packet": "tcp", "hook": "out",
                                     "lwtui_cflags": list(lwtui_cflags()), "against": against,
                                     "cpu": pin_one_cpu()})
    pkt = packets.packet("tcp")
    noop = Noop(("out",))
    loaded = {}
    with tempfile.TemporaryDirectory(prefix="lwtui-bench-ablation-") as tmp:
        try:
            variants = {name: (edits, extra, None) for name, (edits, extra) in VARIANTS.items()}
            if against:
                variants[f"the program at {against}"] = ([], [], _source_at(Path(tmp), against))
            for name, (edits, extra, given) in variants.items():
                path = given or _variant_source(Path(tmp), name, edits)
                flags = [f for f in build_cflags(65536, 4096, (*lwtui_cflags(), *extra))
                         if not f.startswith("-I")] + [f"-I{path.parent}"]
                bpf = compile_file(path, flags)
                loaded[name] = (bpf, load_type(bpf, "lwtui_out", "out"))
                # A session's rules generation: never 0, which no cached verdict carries.
                write_config_slot(bpf.get_table(b"config").map_fd, kstructs.CFG_RULES_GEN, 1)
            for flag, name in FLOORS.items():
                floor_bpf = compile_c("lookup", [f"-I{bpf_dir()}", flag])
                loaded[name] = (floor_bpf, load_type(floor_bpf, "lookup_floor", "out"))
            # each variant is timed right after the no-op (its own floor): on a shared machine the
            # speed drifts within a round, so a variant is compared with the floor next to it
            ns: dict[str, list[float]] = {name: [] for name in loaded}
            floor: dict[str, list[float]] = {name: [] for name in loaded}
            names = list(loaded)
            for rnd in range(rounds):
                log(f"ablation round {rnd + 1}/{rounds}")
                for name in names[rnd % len(names):] + names[:rnd % len(names)]:
                    fd = loaded[name][1]
                    bpfsys.prog_test_run(fd, pkt, 1)  # the flow exists first
                    floor[name].append(best_of_batches(noop.fds["out"], pkt, repeat, 0, "no-op"))
                    ns[name].append(best_of_batches(fd, pkt, repeat, 0, f"ablation {name!r}, an allowed packet"))
        finally:
            for bpf, _ in loaded.values():
                bpf.cleanup()
            noop.close()
    if STATS_ON["replaced"] or STATS_ON["kept"]:
        res.notes.append(f"batches timed while another process held BPF run-time statistics on: "
                         f"{STATS_ON['replaced']} left out, {STATS_ON['kept']} kept (no clean batch)")
    base = "lwtui as a Session compiles it"
    over = {name: [v - f for v, f in zip(ns[name], floor[name])] for name in ns}  # ns above the floor
    for name, vals in ns.items():
        res.rows.append({"variant": name, "ns": Spread.of(vals).as_dict(1),
                         "x_noop": ratio_spread(vals, floor[name]).as_dict(2),
                         "saved_ns": Spread.of([b - v for b, v in zip(over[base], over[name])]).as_dict(1)})
    res.rows.append({"variant": "no-op", "ns": Spread.of([f for fl in floor.values() for f in fl]).as_dict(1)})
    return res
