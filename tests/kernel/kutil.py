"""Helpers shared by the kernel tests: run a frame, read flows, write rules."""

from __future__ import annotations

import ctypes as ct
import ipaddress
import time

from lwtui.kernel import bpfsys, kstructs

BPF_OK, BPF_DROP = 0, 2
HOOKS = tuple(kstructs.HOOK_NAMES.values())


def events_map_fd(probe) -> int:
    """The `events` map: a perf event array, or a ring buffer with events="ringbuf"."""
    return probe._live()[b"events"].map_fd


def run(probe, hook: str, frame: bytes, repeat: int = 1) -> int:
    """Run the hook's program on `frame` (BPF_PROG_TEST_RUN); its return value."""
    retval, _ = bpfsys.prog_test_run(probe.prog_fd(hook), frame, repeat=repeat)
    return retval


def addr16(addr: str) -> bytes:
    return kstructs.addr_to_bytes(ipaddress.ip_address(addr))


def key_tuple(k: kstructs.FlowKey) -> tuple:
    return (bytes(k.saddr), bytes(k.daddr), k.sport, k.dport, k.proto, k.family, k.hook, k.flags)


def want(src: str, dst: str, proto: int, sport: int = 0, dport: int = 0, hook: str = "out",
         flags: int = 0) -> tuple:
    """The key_tuple the programs should store for such a packet."""
    family = ipaddress.ip_address(src).version
    return (addr16(src), addr16(dst), sport, dport, proto, family, kstructs.HOOK_BY_NAME[hook], flags)


def flows(probe) -> dict:
    """key_tuple -> FlowStats of every entry in `flows`."""
    return {key_tuple(k): v for k, v in probe.read_flows()}


def flow_key(src: str, dst: str, proto: int, sport: int = 0, dport: int = 0) -> kstructs.FlowKey:
    """A `verdicts` key: hook and flags 0."""
    k = kstructs.FlowKey()
    ct.memmove(k.saddr, addr16(src), 16)
    ct.memmove(k.daddr, addr16(dst), 16)
    k.sport, k.dport, k.proto = sport, dport, proto
    k.family = ipaddress.ip_address(src).version
    return k


def host_key(net: str) -> kstructs.HostKey:
    """LPM key for a network; IPv4 prefixes become IPv4-mapped (+96)."""
    n = ipaddress.ip_network(net)
    k = kstructs.HostKey()
    k.prefixlen = n.prefixlen + (96 if n.version == 4 else 0)
    ct.memmove(k.addr, kstructs.addr_to_bytes(n.network_address), 16)
    return k


def port_key(port: int, proto: int = 0) -> kstructs.PortKey:
    k = kstructs.PortKey()
    k.port, k.proto = port, proto
    return k


def rule(expires_ns: int = 0) -> kstructs.RuleVal:
    v = kstructs.RuleVal()
    v.expires_ns = expires_ns
    v.created_ns = time.time_ns()
    return v


def map_for(key) -> str:
    return {kstructs.FlowKey: "verdicts", kstructs.HostKey: "host_rules", kstructs.PortKey: "port_rules"}[type(key)]


def add_rule(probe, key, expires_ns: int = 0, bump: bool = True) -> None:
    """Insert a rule and (by default) bump rules_gen, as user space must."""
    bpfsys.map_update(probe.map_fd(map_for(key)), key, rule(expires_ns))
    if bump:
        bump_gen(probe)


def del_rule(probe, key, bump: bool = True) -> None:
    assert bpfsys.map_delete(probe.map_fd(map_for(key)), key)
    if bump:
        bump_gen(probe)


def rule_val(probe, key) -> kstructs.RuleVal:
    v = kstructs.RuleVal()
    assert bpfsys.map_lookup(probe.map_fd(map_for(key)), key, v)
    return v


def bump_gen(probe) -> None:
    probe.set_config(rules_gen=probe.get_config().rules_gen + 1)


def mono_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)
