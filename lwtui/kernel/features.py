"""What the running kernel offers lwtui, found out by asking it, and the path taken for each.

Every check asks the kernel itself (libbpf's probes, which load a tiny program
or create a map; a tiny program of our own; a map creation and one batch
call; BPF_ENABLE_STATS switched on and straight off again): never the kernel
version, which backports (RHEL) make a poor witness.

Two kinds of feature:
- required (LWT program types, per-CPU LRU hashes, LPM tries, the helpers
  lwtui cannot do without): missing means lwtui cannot run, and `lwtui
  doctor` names it;
- with a fallback (FALLBACKS): missing means an older path is taken and
  named, never a failure.

LWTUI_HIDE_FEATURES=name,name (or `all`) hides features with a fallback from
the probe, so every path an older kernel takes can run on a new one (tests).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Callable, Mapping

from lwtui.kernel import bpfsys

HIDE_ENV = "LWTUI_HIDE_FEATURES"

# enum bpf_map_type, enum bpf_func_id (include/uapi/linux/bpf.h)
_MAP_HASH, _MAP_LRU_PERCPU_HASH, _MAP_LPM_TRIE, _MAP_RINGBUF = 1, 10, 11, 27
_FN_KTIME_GET_NS, _FN_PERF_EVENT_OUTPUT, _FN_SKB_LOAD_BYTES = 5, 25, 26
_FN_JIFFIES64, _FN_RINGBUF_OUTPUT, _FN_KTIME_GET_COARSE_NS = 118, 130, 160
SKB_GSO_SEGS_OFF = 164  # offsetof(struct __sk_buff, gso_segs)
BPF_MAXINSNS = 4096     # the size limit of every program before 5.2 (include/uapi/linux/bpf_common.h)
# The IPv6 extension headers walked when the kernel has no bounded loops: the
# walk is unrolled, and every header unrolled costs verifier work and program size.
IPV6_EXT_UNROLLED = 8


@dataclass(frozen=True)
class Feature:
    """One kernel feature lwtui looks for. `fallback` is what lwtui does without
    it ("" for a required feature); `since` the mainline release that brought it."""
    name: str
    what: str
    since: str
    fallback: str = ""


FALLBACKS: tuple[Feature, ...] = (
    Feature("coarse_clock", "bpf_ktime_get_coarse_ns (read once per jiffy: bpf_jiffies64)", "5.11",
            "flows and events stamped with bpf_ktime_get_ns (precise, ~20-40 ns more per packet)"),
    Feature("ringbuf", "BPF ring buffer (--events ringbuf)", "5.8",
            "events through the perf buffer"),
    Feature("batch", "batch map reads (BPF_MAP_LOOKUP_BATCH)", "5.6",
            "the flow map read one key at a time"),
    Feature("run_stats", "run-time statistics (BPF_ENABLE_STATS)", "5.8",
            "lwtui's own cost (ns per packet) not shown"),
    Feature("gso_segs", "__sk_buff gso_segs", "5.1",
            "a GSO packet counts as 1 packet, not its segments on the wire"),
    Feature("bounded_loops", "bounded loops", "5.3",
            f"the IPv6 extension header walk unrolled, {IPV6_EXT_UNROLLED} headers at most (else 1152), "
            "and the compound rules' loops unrolled (a program about four times larger)"),
)
REQUIRED: tuple[Feature, ...] = (
    Feature("lwt", "LWT BPF programs (in, out, xmit)", "4.10"),
    Feature("lru_percpu_hash", "per-CPU LRU hash maps", "4.10"),
    Feature("lpm_trie", "LPM trie maps", "4.11"),
    Feature("skb_load_bytes", "bpf_skb_load_bytes at LWT hooks", "4.10"),
    Feature("perf_output", "bpf_perf_event_output at LWT hooks (events; the packets --pcap records)", "4.10"),
    Feature("ktime", "bpf_ktime_get_ns", "4.1"),
    # lwtui's programs are past 4,096 instructions and need hundreds of thousands
    # verified: kernels before 5.2 (131,072 at most) refuse them.
    Feature("large_programs", "programs past 4,096 instructions (a verifier budget of 1M)", "5.2"),
)
BY_NAME = {f.name: f for f in FALLBACKS + REQUIRED}


class FeatureError(ValueError):
    """LWTUI_HIDE_FEATURES names something that is not a feature with a fallback."""


def parse_hidden(text: str | None) -> frozenset[str]:
    """The features LWTUI_HIDE_FEATURES hides: comma-separated names, or `all`."""
    names = {n.strip() for n in (text or "").split(",") if n.strip()}
    if "all" in names:
        return frozenset(f.name for f in FALLBACKS)
    unknown = sorted(names - {f.name for f in FALLBACKS})
    if unknown:
        raise FeatureError(f"{HIDE_ENV} names unknown feature(s) {', '.join(unknown)}: use all or any of "
                           + ", ".join(f.name for f in FALLBACKS))
    return frozenset(names)


# -- asking the kernel --------------------------------------------------------

def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | (src << 4), off, imm)


def _loads(insns: bytes) -> bool:
    """Whether the verifier accepts these instructions as an LWT_OUT program."""
    try:
        fd = bpfsys.prog_load(bpfsys.PROG_TYPE_LWT_OUT, insns)
    except bpfsys.BpfError:
        return False
    os.close(fd)
    return True


def _gso_segs() -> bool:
    """r0 = skb->gso_segs; exit: refused where __sk_buff has no gso_segs."""
    return _loads(_insn(0x61, 0, 1, SKB_GSO_SEGS_OFF) + _insn(0x95))


def _bounded_loops() -> bool:
    """r0 = 0; do r0 += 1 while r0 != 4; r0 = 0; exit: a back-edge older verifiers refuse."""
    return _loads(_insn(0xB7, 0, imm=0) + _insn(0x07, 0, imm=1) + _insn(0x55, 0, off=-2, imm=4) +
                  _insn(0xB7, 0, imm=0) + _insn(0x95))


def _large_programs() -> bool:
    """BPF_MAXINSNS + 1 instructions (r0 = 0 ... exit), as libbpf's large-insn-limit
    probe: 5.2 raised the size limit and the verifier's budget together."""
    return _loads(_insn(0xB7, 0, imm=0) * BPF_MAXINSNS + _insn(0x95))


def _batch() -> bool:
    try:
        fd = bpfsys.map_create(_MAP_HASH, 4, 8, 4)
    except bpfsys.BpfError:
        return False
    try:
        return bpfsys.map_lookup_batch_works(fd, 4, 8)
    finally:
        os.close(fd)


def _run_stats() -> bool:
    try:
        os.close(bpfsys.enable_stats())
    except bpfsys.BpfError:
        return False
    return True


def _helper(fn: int) -> Callable[[], bool]:
    return lambda: bpfsys.probe_helper(bpfsys.PROG_TYPE_LWT_OUT, fn)


def _lwt() -> bool:
    return all(bpfsys.probe_prog_type(t) for t in
               (bpfsys.PROG_TYPE_LWT_IN, bpfsys.PROG_TYPE_LWT_OUT, bpfsys.PROG_TYPE_LWT_XMIT))


PROBES: dict[str, Callable[[], bool]] = {
    "coarse_clock": lambda: _helper(_FN_KTIME_GET_COARSE_NS)() and _helper(_FN_JIFFIES64)(),
    "ringbuf": lambda: bpfsys.probe_map_type(_MAP_RINGBUF) and _helper(_FN_RINGBUF_OUTPUT)(),
    "batch": _batch,
    "run_stats": _run_stats,
    "gso_segs": _gso_segs,
    "bounded_loops": _bounded_loops,
    "lwt": _lwt,
    "lru_percpu_hash": lambda: bpfsys.probe_map_type(_MAP_LRU_PERCPU_HASH),
    "lpm_trie": lambda: bpfsys.probe_map_type(_MAP_LPM_TRIE),
    "skb_load_bytes": _helper(_FN_SKB_LOAD_BYTES),
    "perf_output": _helper(_FN_PERF_EVENT_OUTPUT),
    "ktime": _helper(_FN_KTIME_GET_NS),
    "large_programs": _large_programs,
}


def probe_kernel() -> dict[str, bool]:
    """Ask the running kernel about every feature (needs root; a few ms)."""
    return {name: bool(check()) for name, check in PROBES.items()}


# -- deciding -----------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """The paths chosen for one session: compiler flags, event transport, how
    the flow map is read, whether lwtui's own cost is measured; `fallbacks`
    names each feature missing (or hidden) with what is done instead."""
    available: Mapping[str, bool]
    hidden: frozenset[str]
    cflags: tuple[str, ...]
    events: str
    batch: bool
    run_stats: bool
    fallbacks: tuple[tuple[str, str], ...] = ()
    missing: tuple[str, ...] = field(default=())     # required features the kernel lacks

    def has(self, name: str) -> bool:
        """Whether the feature may be used: the kernel has it and it is not hidden."""
        return self.available.get(name, False) and name not in self.hidden

    @property
    def fallback_names(self) -> list[str]:
        return [name for name, _ in self.fallbacks]


def decide(available: Mapping[str, bool], hidden: frozenset[str] = frozenset(), events: str = "perf") -> Plan:
    """The best path for each feature given what the kernel has (`available`),
    less what is `hidden`; `events` is the transport asked for."""
    def has(name: str) -> bool:
        return available.get(name, False) and name not in hidden

    cflags: list[str] = []
    if has("coarse_clock"):
        cflags.append("-DLWTUI_COARSE_CLOCK")
    if not has("gso_segs"):
        cflags.append("-DLWTUI_NO_GSO_SEGS")
    if not has("bounded_loops"):
        cflags += ["-DLWTUI_NO_BOUNDED_LOOPS", f"-DIPV6_EXT_MAX={IPV6_EXT_UNROLLED}"]
    transport = "ringbuf" if events == "ringbuf" and has("ringbuf") else "perf"
    fallbacks = [(f.name, f.fallback) for f in FALLBACKS if not has(f.name)
                 and (f.name != "ringbuf" or events == "ringbuf")]
    missing = tuple(f.name for f in REQUIRED if not available.get(f.name, False))
    return Plan(available=dict(available), hidden=hidden, cflags=tuple(cflags), events=transport,
                batch=has("batch"), run_stats=has("run_stats"), fallbacks=tuple(fallbacks), missing=missing)


def plan(events: str = "perf", environ: Mapping[str, str] | None = None) -> Plan:
    """Probe the running kernel and decide, honouring LWTUI_HIDE_FEATURES."""
    hidden = parse_hidden((os.environ if environ is None else environ).get(HIDE_ENV))
    return decide(probe_kernel(), hidden, events)


def notes(p: Plan) -> list[str]:
    """One line per fallback: the feature, why it is not used, what is done instead."""
    return [f"{BY_NAME[name].what}: {f'hidden by {HIDE_ENV}' if name in p.hidden else 'not in this kernel'}, "
            f"so {instead}" for name, instead in p.fallbacks]


def refusal(p: Plan) -> str | None:
    """Why lwtui cannot run on this kernel (required features missing), else None."""
    if not p.missing:
        return None
    return ("this kernel lacks " + ", ".join(BY_NAME[n].what for n in p.missing) +
            ": lwtui cannot run here (see `lwtui doctor`)")


def rows(p: Plan) -> list[dict]:
    """One row per feature for `lwtui doctor`: name, what, since, available,
    hidden, used, and the fallback taken (None when the feature is used)."""
    out = []
    for f in FALLBACKS + REQUIRED:
        used = p.events == "ringbuf" if f.name == "ringbuf" else p.has(f.name)
        if f.name == "ringbuf" and p.has(f.name) and not used:
            out.append({"feature": f.name, "what": f.what, "since": f.since, "available": True,
                        "hidden": False, "used": False, "required": False,
                        "fallback": None, "note": "used when asked: --events ringbuf"})
            continue
        out.append({"feature": f.name, "what": f.what, "since": f.since,
                    "available": bool(p.available.get(f.name, False)), "hidden": f.name in p.hidden,
                    "used": used, "required": not f.fallback,
                    "fallback": None if used else (f.fallback or "none: lwtui cannot run without it")})
    return out
