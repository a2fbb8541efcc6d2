"""The ctypes mirrors in lwtui.kernel.kstructs have the layout of bpf/lwtui.h.

A small C program compiled with gcc prints sizeof/offsetof of every field of
every struct in kstructs.MIRRORS; the ctypes classes must agree. Constants
shared by both sides are compared too. Pure user space: no root needed.
"""

from __future__ import annotations

import ctypes as ct
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from lwtui.kernel import kstructs

BPF_DIR = Path(__file__).resolve().parents[2] / "bpf"

def cached_word(gen: int, verdict: int, kind: int) -> int:
    """LWTUI_CACHED(gen, verdict, kind): flow_stats.cached as the programs store it (the
    programs alone write it; checked against the C macro in CONSTANTS)."""
    return (gen & 0xFFFFFFFF) | (verdict & 0xFF) << 32 | (kind & 0xFF) << 40


CONSTANTS = {
    "LWTUI_HOOK_IN": kstructs.HOOK_IN, "LWTUI_HOOK_OUT": kstructs.HOOK_OUT,
    "LWTUI_HOOK_XMIT": kstructs.HOOK_XMIT, "LWTUI_KEY_FRAGMENT": kstructs.KEY_FRAGMENT,
    "LWTUI_IPV6_EXT_MAX": kstructs.IPV6_EXT_MAX, "LWTUI_HOOKS": kstructs.HOOKS_N,
    "LWTUI_ALLOW": kstructs.ALLOW, "LWTUI_DROP": kstructs.DROP,
    "LWTUI_RULE_NONE": kstructs.RULE_NONE, "LWTUI_RULE_FLOW": kstructs.RULE_FLOW,
    "LWTUI_RULE_HOST": kstructs.RULE_HOST, "LWTUI_RULE_PORT": kstructs.RULE_PORT,
    "LWTUI_EV_NEW": kstructs.EV_NEW, "LWTUI_EV_DROP": kstructs.EV_DROP,
    "LWTUI_ST_PACKETS": kstructs.ST_PACKETS, "LWTUI_ST_BYTES": kstructs.ST_BYTES,
    "LWTUI_ST_DROPS": kstructs.ST_DROPS, "LWTUI_ST_WOULD_DROPS": kstructs.ST_WOULD_DROPS,
    "LWTUI_ST_PARSE_ERRORS": kstructs.ST_PARSE_ERRORS, "LWTUI_ST_EVENTS_FAILED": kstructs.ST_EVENTS_FAILED,
    "LWTUI_ST_NEW_FLOWS": kstructs.ST_NEW_FLOWS, "LWTUI_ST_FLOW_UPDATE_FAILED": kstructs.ST_FLOW_UPDATE_FAILED,
    "LWTUI_ST_MAX": kstructs.ST_MAX,
    "LWTUI_CFG_DRY_RUN": kstructs.CFG_DRY_RUN, "LWTUI_CFG_RULES_GEN": kstructs.CFG_RULES_GEN,
    "LWTUI_CFG_DROP_EVENT_INTERVAL_NS": kstructs.CFG_DROP_EVENT_INTERVAL_NS, "LWTUI_CFG_MAX": kstructs.CFG_MAX,
    "LWTUI_CFG_CAPTURE": kstructs.CFG_CAPTURE, "LWTUI_CFG_CAPTURE_RATE": kstructs.CFG_CAPTURE_RATE,
    "LWTUI_CFG_CAPTURE_FLOW": kstructs.CFG_CAPTURE_FLOW,
    "LWTUI_CAP_SENT": kstructs.CAP_SENT, "LWTUI_CAP_LIMITED": kstructs.CAP_LIMITED,
    "LWTUI_CAP_FAILED": kstructs.CAP_FAILED, "LWTUI_CAP_MAX": kstructs.CAP_MAX,
    "LWTUI_CACHED(0x89abcdef,1,3)": cached_word(0x89ABCDEF, 1, 3),
    "LWTUI_CACHED_GEN(0x0000030189abcdefULL)": 0x89ABCDEF,
    "LWTUI_CACHED_VERDICT(0x0000030189abcdefULL)": 1,
    "LWTUI_CACHED_KIND(0x0000030189abcdefULL)": 3,
    "LWTUI_RULE_COMPOUND": kstructs.RULE_COMPOUND, "LWTUI_RULE_COMPOUND_DRY": kstructs.RULE_COMPOUND_DRY,
    "LWTUI_WOULD_DROP": kstructs.WOULD_DROP,
    "LWTUI_COMPOUND_MAX": kstructs.COMPOUND_MAX, "LWTUI_COMPOUND_TERMS": kstructs.COMPOUND_TERMS,
    "LWTUI_COMPOUND_DRY_RUN": kstructs.COMPOUND_DRY_RUN,
    "LWTUI_TERM_SADDR": kstructs.TERM_SADDR, "LWTUI_TERM_DADDR": kstructs.TERM_DADDR,
    "LWTUI_TERM_ADDR": kstructs.TERM_ADDR, "LWTUI_TERM_SPORT": kstructs.TERM_SPORT,
    "LWTUI_TERM_DPORT": kstructs.TERM_DPORT, "LWTUI_TERM_PORT": kstructs.TERM_PORT,
    "LWTUI_TERM_PROTO": kstructs.TERM_PROTO,
    "LWTUI_CACHED(1,1,LWTUI_DECISION(LWTUI_RULE_COMPOUND,37))>>48": 37,
    "LWTUI_CACHED_RULE(LWTUI_CACHED(1,1,LWTUI_DECISION(4,63)))": 63,
}


def _program() -> str:
    lines = ["#include <stdio.h>", "#include <stddef.h>", '#include "lwtui.h"', "int main(void) {"]
    for name, cls in kstructs.MIRRORS.items():
        lines.append(f'printf("{name} %zu %zu\\n", sizeof(struct {name}), _Alignof(struct {name}));')
        for field, *_ in cls._fields_:
            lines.append(f'printf("{name}.{field} %zu %zu\\n", offsetof(struct {name}, {field}), '
                         f'sizeof(((struct {name} *)0)->{field}));')
    for const in CONSTANTS:
        lines.append(f'printf("{const} %lld\\n", (long long)({const}));')
    lines += ["return 0;", "}"]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory) -> dict[str, tuple[int, ...]]:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.fail("gcc is needed to check struct layouts: apt-get install -y gcc")
    d = tmp_path_factory.mktemp("kstructs")
    (d / "layout.c").write_text(_program())
    subprocess.run([gcc, "-Wall", "-Werror", f"-I{BPF_DIR}", "-o", str(d / "layout"), str(d / "layout.c")],
                   check=True, capture_output=True, text=True)
    out = subprocess.run([str(d / "layout")], check=True, capture_output=True, text=True).stdout
    return {name: tuple(int(x) for x in rest) for name, *rest in (ln.split() for ln in out.splitlines())}


@pytest.mark.parametrize("name", sorted(kstructs.MIRRORS))
def test_struct_size_and_alignment(c_layout, name):
    cls = kstructs.MIRRORS[name]
    assert c_layout[name] == (ct.sizeof(cls), ct.alignment(cls))


@pytest.mark.parametrize("name", sorted(kstructs.MIRRORS))
def test_field_offsets_and_sizes(c_layout, name):
    cls = kstructs.MIRRORS[name]
    for field, ftype in cls._fields_:
        assert c_layout[f"{name}.{field}"] == (getattr(cls, field).offset, ct.sizeof(ftype)), field


def test_every_c_struct_is_mirrored():
    header = (BPF_DIR / "lwtui.h").read_text()
    declared = set(re.findall(r"^struct (\w+) \{", header, re.M))
    assert declared == set(kstructs.MIRRORS)


@pytest.mark.parametrize("const", sorted(CONSTANTS))
def test_constants(c_layout, const):
    assert c_layout[const] == (CONSTANTS[const],)


def test_cached_word_decodes_as_the_programs_encode():
    st = kstructs.FlowStats(cached=cached_word(0x89ABCDEF, kstructs.DROP, kstructs.RULE_PORT))
    assert (st.rules_gen, st.verdict, st.rule_kind) == (0x89ABCDEF, kstructs.DROP, kstructs.RULE_PORT)


def test_a_column_of_cached_words_decodes_as_one_word_does():
    """The session decodes a whole map read's `cached` column at once (numpy): field by
    field, the same as FlowStats' properties (checked against the C macros above)."""
    import numpy as np
    words = [cached_word(7, kstructs.WOULD_DROP, kstructs.RULE_HOST),
             0x0000030189ABCDEF, (37 << 48) | cached_word(1, kstructs.DROP, kstructs.RULE_COMPOUND)]
    col = np.array(words, dtype=np.uint64)
    one = [kstructs.FlowStats(cached=w) for w in words]
    for field, prop in ((kstructs.CACHED_GEN, "rules_gen"), (kstructs.CACHED_VERDICT, "verdict"),
                        (kstructs.CACHED_KIND, "rule_kind"), (kstructs.CACHED_RULE, "rule_index")):
        assert kstructs.cached_field(col, field).tolist() == [getattr(s, prop) for s in one], prop
    assert kstructs.cached_field(col, kstructs.CACHED_RULE).tolist() == [0, 0, 37]


def test_stat_names_cover_the_stats_array():
    assert len(kstructs.STAT_NAMES) == kstructs.ST_MAX


def test_sum_percpu_combines_every_cpu():
    import struct
    cpus = [kstructs.FlowStats(packets=5, bytes=500, first_seen_ns=70, last_seen_ns=80, drops=2, last_event_ns=10,
                               cached=cached_word(9, kstructs.ALLOW, 0), tcp_flags=0x02),
            kstructs.FlowStats(),  # a CPU that never saw the flow
            kstructs.FlowStats(packets=1, bytes=40, first_seen_ns=60, last_seen_ns=90, drops=1, last_event_ns=30,
                               cached=cached_word(9, kstructs.DROP, kstructs.RULE_HOST), tcp_flags=0x10)]
    raw = b"".join(bytes(c) for c in cpus)
    assert len(raw) == kstructs.percpu_size(3) and struct.calcsize("=7QB7x") == ct.sizeof(kstructs.FlowStats)
    st = kstructs.sum_percpu(raw, 3)
    assert (st.packets, st.bytes, st.drops, st.tcp_flags) == (6, 540, 3, 0x12)
    assert (st.first_seen_ns, st.last_seen_ns, st.last_event_ns) == (60, 90, 30)
    assert (st.verdict, st.rule_kind, st.rules_gen) == (kstructs.DROP, kstructs.RULE_HOST, 9)  # the latest CPU's


def test_count_once_counts_a_shared_route_at_out():
    row = lambda p, d=0: {"packets": p, "bytes": 10 * p, "drops": d, "would_drops": 0, "parse_errors": 0,
                          "events_failed": 0, "new_flows": 1, "flow_update_failed": 0}
    by_hook = {"in": row(0), "out": row(100, 3), "xmit": row(97, 2)}
    both = [("ns", "10.0.0.3/32", "out"), ("ns", "10.0.0.3/32", "xmit")]
    t = kstructs.count_once(by_hook, both)
    assert (t["packets"], t["bytes"], t["drops"], t["new_flows"]) == (100, 1000, 5, 3)
    apart = [("ns", "10.0.0.3/32", "out"), ("ns", "10.0.0.4/32", "xmit")]  # different packets
    assert kstructs.count_once(by_hook, apart)["packets"] == 197
    assert kstructs.count_once(by_hook, [("ns", "10.0.0.3/32", "xmit")])["packets"] == 97


def test_sum_percpu_many_agrees_with_sum_percpu_flow_by_flow():
    """The vectorized batch sum against the per-flow one, on random values (ties, zeros, one CPU)."""
    import random
    rng = random.Random(7)
    for ncpus in (1, 2, 5):
        flows = []
        for _ in range(300):
            cpus = []
            for _ in range(ncpus):
                if rng.random() < 0.3:
                    cpus.append(kstructs.FlowStats())
                    continue
                cpus.append(kstructs.FlowStats(
                    packets=rng.randrange(1 << 40), bytes=rng.randrange(1 << 50),
                    first_seen_ns=rng.choice([0, rng.randrange(1, 100)]), last_seen_ns=rng.randrange(0, 8), drops=rng.randrange(1000), last_event_ns=rng.randrange(100),
                    cached=rng.randrange(1 << 40), tcp_flags=rng.randrange(256)))
            flows.append(b"".join(bytes(c) for c in cpus))
        buf = bytearray(b"".join(flows))
        many = kstructs.sum_percpu_many(buf, len(flows), ncpus)
        for raw, got in zip(flows, many):
            assert bytes(got) == bytes(kstructs.sum_percpu(raw, ncpus))
    assert kstructs.sum_percpu_many(bytearray(), 0, 2) == []
