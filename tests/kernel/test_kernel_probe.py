"""lwtui.kernel.probe (with .loader and .maps) against the kernel: programs, maps, config, flow reads,
lifecycle."""

from __future__ import annotations

import ipaddress
import re

import pytest

import packets as P
from kutil import BPF_OK, key_tuple, run, want
from lwtui.core.flowcols import decode_id
from lwtui.core.model import FlowId
from lwtui.kernel import bpfsys, kstructs
from lwtui.kernel.codec import flow_columns, flow_id_from_key
from lwtui.kernel.loader import ProbeError, selftest
from lwtui.kernel.maps import MAP_NAMES
from lwtui.kernel.probe import Probe

# enum bpf_map_type
HASH, ARRAY, PERCPU_ARRAY, LRU_HASH, LPM_TRIE, LRU_PERCPU_HASH = 1, 2, 6, 9, 11, 10
MAPS = {  # name: (type, key struct or size, value struct or size, max_entries)
    "flows": (LRU_PERCPU_HASH, kstructs.FlowKey, kstructs.FlowStats, 65536),
    "verdicts": (HASH, kstructs.FlowKey, kstructs.RuleVal, 4096),
    "host_rules": (LPM_TRIE, kstructs.HostKey, kstructs.RuleVal, 4096),
    "port_rules": (HASH, kstructs.PortKey, kstructs.RuleVal, 4096),
    "config": (ARRAY, 4, 8, kstructs.CFG_MAX),
    "stats": (PERCPU_ARRAY, 4, 8 * kstructs.ST_MAX, kstructs.HOOKS_N),
    "frags": (LRU_HASH, kstructs.FragKey, 8, 4096),
    "compound": (ARRAY, 4, kstructs.CompoundEntry, kstructs.COMPOUND_MAX),
    "capture_stats": (PERCPU_ARRAY, 4, 8, kstructs.CAP_MAX),
    "capture_flow": (ARRAY, 4, kstructs.FlowKey, 1),
}


def _size(x):
    return x if isinstance(x, int) else __import__("ctypes").sizeof(x)


@pytest.mark.parametrize("name", MAP_NAMES)
def test_maps_match_kstructs(probe, name):
    typ, key, val, max_entries = MAPS[name]
    info = bpfsys.map_info(probe.map_fd(name))
    assert (info["type"], info["key_size"], info["value_size"], info["max_entries"]) == \
        (typ, _size(key), _size(val), max_entries)
    assert info["name"] == name
    assert probe.map_max_entries(name) == max_entries


def test_programs_have_their_hook_types_and_unique_names(probe):
    types = {"in": bpfsys.PROG_TYPE_LWT_IN, "out": bpfsys.PROG_TYPE_LWT_OUT, "xmit": bpfsys.PROG_TYPE_LWT_XMIT}
    names = set()
    for hook, typ in types.items():
        info = bpfsys.prog_info(probe.prog_fd(hook))
        assert info["type"] == typ
        assert probe.prog_name(hook) == f"lwtui_{hook}_{info['id']}"
        names.add(probe.prog_name(hook))
    assert len(names) == 3


def test_config_round_trip(probe):
    cfg = probe.set_config(dry_run=True, rules_gen=41, drop_event_interval_ns=123)
    assert (cfg.dry_run, cfg.rules_gen, cfg.drop_event_interval_ns) == (1, 41, 123)
    probe.set_config(rules_gen=42)  # None leaves the others alone
    got = probe.get_config()
    assert (got.dry_run, got.rules_gen, got.drop_event_interval_ns) == (1, 42, 123)
    probe.set_config(dry_run=False, rules_gen=2**32)  # wraps like the kernel's u32
    assert (probe.get_config().dry_run, probe.get_config().rules_gen) == (0, 0)


def test_read_flows_returns_copies_of_every_entry(probe):
    sent = set()
    for port in range(1, 301):
        run(probe, "out", P.packet(4, P.UDP, "10.1.0.1", "10.1.0.2", port, 53))
        sent.add(want("10.1.0.1", "10.1.0.2", P.UDP, port, 53))
    got = probe.read_flows()
    assert {key_tuple(k) for k, _ in got} == sent
    assert all(isinstance(k, kstructs.FlowKey) and isinstance(v, kstructs.FlowStats) for k, v in got)
    assert all(v.packets == 1 for _, v in got)
    before = got[0][1].packets
    probe.read_flows()  # a second read must not change what the first returned
    run(probe, "out", P.packet(4, P.UDP, "10.1.0.1", "10.1.0.2", 1, 53))
    probe.read_flows()
    assert got[0][1].packets == before
    by_iteration = {key_tuple(k): v.packets for k, v in probe.read_flows_by_iteration()}
    assert len(by_iteration) == 300 and by_iteration[key_tuple(got[0][0])] == before + (got[0][0].sport == 1)


def test_read_flow_arrays_holds_what_read_flows_holds(probe):
    """The columnar read (what a session uses) against the object read: same keys, same sums,
    and the identity columns decode to the flows the packets made."""
    for port in range(1, 201):
        run(probe, "out", P.packet(4, P.UDP, "10.1.0.1", "10.1.0.2", port, 53), repeat=1 + port % 3)
    run(probe, "xmit", P.packet(6, P.TCP, "fd00::1", "fd00::2", 40000, 80))
    keys, stats = probe.read_flow_arrays()
    rows = probe.read_flows()
    assert len(keys) == len(stats) == len(rows) == 201
    by_key = {bytes(k): v for k, v in rows}
    for k, v in zip(keys, stats):
        st = by_key[k.tobytes()]
        assert (int(v["packets"]), int(v["bytes"]), int(v["drops"]), int(v["cached"]), int(v["flags"])) == \
            (st.packets, st.bytes, st.drops, st.cached, st.tcp_flags)
    ids = {decode_id(c) for c in flow_columns(keys)}
    assert ids == {flow_id_from_key(k) for k, _ in rows}
    assert FlowId("xmit", P.TCP, ipaddress.ip_address("fd00::1"), 40000, ipaddress.ip_address("fd00::2"), 80) in ids


def test_read_flows_empty(probe):
    assert probe.read_flows() == []
    keys, stats = probe.read_flow_arrays()
    assert len(keys) == len(stats) == 0


def test_read_stats_sums_and_names(probe):
    run(probe, "in", P.packet(6, P.TCP, "2001:db8::1", "2001:db8::2", 1, 2), repeat=10)
    run(probe, "in", P.frame(b"\x50" * 20, P.ETH_P_IP))
    s = probe.read_stats()
    assert tuple(s) == kstructs.STAT_NAMES
    assert (s["packets"], s["parse_errors"], s["new_flows"]) == (11, 1, 1)


def test_stats_have_a_row_per_hook(probe):
    frame = P.packet(4, P.UDP, "10.0.0.1", "10.0.0.2", 1, 2)
    for hook, n in (("in", 3), ("out", 5), ("xmit", 7)):
        run(probe, hook, frame, repeat=n)
    by_hook = probe.read_stats_by_hook()
    assert {h: (row["packets"], row["new_flows"]) for h, row in by_hook.items()} == \
        {"in": (3, 1), "out": (5, 1), "xmit": (7, 1)}
    assert probe.read_stats()["packets"] == 15


def test_reset_maps(probe):
    run(probe, "out", P.packet(4, P.TCP, "10.0.0.1", "10.0.0.2", 1, 2))
    assert probe.read_flows() and probe.read_stats()["packets"] == 1
    probe.reset_maps()
    assert probe.read_flows() == [] and probe.read_stats()["packets"] == 0


def test_source_and_cflags_for_ebpf_flag(probe):
    assert probe.source_path.name == "lwtui.bpf.c" and probe.source_path.is_file()
    assert "-DMAX_FLOWS=65536" in probe.cflags and "-DMAX_RULES=4096" in probe.cflags
    assert any(re.fullmatch(r"-I.*/bpf", f) for f in probe.cflags)


def test_sizes_and_single_hook():
    with Probe(hooks=("xmit",), max_flows=2048, max_rules=128) as p:
        assert p.map_max_entries("flows") == 2048
        assert p.map_max_entries("host_rules") == 128
        assert run(p, "xmit", P.packet(4, P.UDP, "10.0.0.1", "10.0.0.2", 1, 2)) == BPF_OK
        with pytest.raises(ProbeError, match="no in program"):
            p.prog_fd("in")


def _compiler_resident() -> int:
    """Resident bytes of the compiler's (LLVM's, clang's) code mapped into this process."""
    total, counting = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5:      # a mapping's first line
                counting = len(head) > 5 and head[1] == "r-xp" and re.search(r"/lib(LLVM|clang)", head[5]) is not None
            elif counting and head[0] == "Rss:":
                total += int(head[1]) * 1024
    return total


def test_the_compilers_code_is_not_left_resident():
    """After a compile the Probe drops LLVM's code pages from the process (tens of MiB a
    session never runs again); compiling again faults them back in and works."""
    with Probe(hooks=("out",), max_flows=1024, max_rules=64) as p:
        assert _compiler_resident() < 2 << 20
        with Probe(hooks=("xmit",), max_flows=1024, max_rules=64) as again:
            assert run(again, "xmit", P.packet(4, P.UDP, "10.0.0.1", "10.0.0.2", 1, 2)) == BPF_OK
        assert run(p, "out", P.packet(4, P.UDP, "10.0.0.1", "10.0.0.2", 1, 2)) == BPF_OK
        assert p.read_stats()["packets"] == 1
        assert _compiler_resident() < 8 << 20      # freeing a module runs a little of LLVM again


def test_close_is_idempotent_and_final():
    p = Probe(hooks=("out",))
    fd = p.prog_fd("out")
    p.close()
    p.close()
    with pytest.raises(ProbeError):
        p.prog_fd("out")
    with pytest.raises(ProbeError):
        p.read_stats()
    p.poll_events(10)  # a reader thread racing close() just returns
    with pytest.raises(bpfsys.BpfError):
        bpfsys.prog_info(fd)  # the fd is closed


def test_compile_error_is_a_probe_error():
    with pytest.raises(ProbeError, match="compiling lwtui.bpf.c failed"):
        Probe(extra_cflags=["-DMAX_FLOWS=not_a_number"])


def test_unknown_hook_is_a_probe_error():
    with pytest.raises(ProbeError, match="unknown hook"):
        Probe(hooks=("ingress",))


def test_callback_errors_surface_from_poll():
    with Probe(hooks=("out",)) as p:
        def boom(ev):
            raise ValueError("from the callback")
        p.open_events(boom, lambda n: None)
        run(p, "out", P.packet(4, P.UDP, "10.0.0.1", "10.0.0.2", 1, 2))
        with pytest.raises(ValueError, match="from the callback"):
            p.poll_events(100)


def test_selftest_loads_every_hook():
    assert selftest() == [("in", True, ""), ("out", True, ""), ("xmit", True, "")]
