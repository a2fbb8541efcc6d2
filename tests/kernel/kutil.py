"""Helpers shared by the kernel tests: run a frame, read flows, write rules."""

from __future__ import annotations

import ctypes as ct
import ipaddress
import struct
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


def program_insns(probe, hook: str) -> bytes:
    """The hook's program as BCC handed it to the kernel (8 bytes an instruction)."""
    return bytes(probe._live().dump_func(f"lwtui_{hook}".encode()))


def cycles(insns: bytes) -> list[tuple[int, int]]:
    """The back-edges (from, to) of a program's control flow graph, found by a
    depth-first walk from the first instruction as the verifier's check_cfg
    does; before 5.3 it refuses a program with any ("back-edge from insn")."""
    n = len(insns) // 8
    succ: list[list[int]] = []
    for i in range(n):
        code, _, off, _ = struct.unpack_from("<BBhi", insns, i * 8)
        cls, op = code & 7, code & 0xF0
        if code == 0x18:                        # ld_imm64: two slots
            succ.append([i + 2])
        elif cls not in (5, 6) or op == 0x80:   # not a jump, or a helper call
            succ.append([i + 1])
        elif op == 0x90:                        # exit
            succ.append([])
        elif op == 0x00 and cls == 5:           # ja
            succ.append([i + 1 + off])
        else:                                   # conditional: both ways
            succ.append([i + 1, i + 1 + off])
    state, back = [0] * n, []                   # 0 unseen, 1 on the walk's path, 2 done
    path = [(0, iter(succ[0]))]
    state[0] = 1
    while path:
        v, nexts = path[-1]
        for w in nexts:
            if state[w] == 1:
                back.append((v, w))
            elif state[w] == 0:
                state[w] = 1
                path.append((w, iter(succ[w])))
                break
        else:
            state[v] = 2
            path.pop()
    return back
