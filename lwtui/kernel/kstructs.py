"""ctypes mirrors of the structs in bpf/lwtui.h, and their decoding.

Each class names the C struct it mirrors; tests/unit/test_kstructs.py compiles
bpf/lwtui.h and checks sizes and field offsets against these classes.
Pure Python: no BCC, no netlink.
"""

from __future__ import annotations

import ctypes as ct
import ipaddress
import struct
from dataclasses import dataclass

import numpy as np

from lwtui.core.names import HOOKS

HOOK_IN, HOOK_OUT, HOOK_XMIT = 0, 1, 2
HOOK_NAMES = dict(enumerate(HOOKS))  # HOOK_IN=0 "in", HOOK_OUT=1 "out", HOOK_XMIT=2 "xmit"
HOOK_BY_NAME = {v: k for k, v in HOOK_NAMES.items()}
HOOKS_N = 3  # rows of the `stats` array (LWTUI_HOOKS)

IPV6_EXT_MAX = 1152  # IPv6 extension headers the programs walk (LWTUI_IPV6_EXT_MAX)
KEY_FRAGMENT = 0x01

ALLOW, DROP, WOULD_DROP = 0, 1, 2

RULE_NONE, RULE_FLOW, RULE_HOST, RULE_PORT, RULE_COMPOUND, RULE_COMPOUND_DRY = 0, 1, 2, 3, 4, 5
RULE_KIND_NAMES = {RULE_NONE: "", RULE_FLOW: "flow", RULE_HOST: "host", RULE_PORT: "port", RULE_COMPOUND: "rule",
                   RULE_COMPOUND_DRY: "rule"}

COMPOUND_MAX = 8      # entries of `compound` (LWTUI_COMPOUND_MAX)
COMPOUND_TERMS = 8    # terms of one entry (LWTUI_COMPOUND_TERMS)
COMPOUND_DRY_RUN = 0x01
TERM_SADDR, TERM_DADDR, TERM_ADDR, TERM_SPORT, TERM_DPORT, TERM_PORT, TERM_PROTO = 0x01, 0x02, 0x03, 0x04, 0x08, 0x0C, 0x10

EV_NEW, EV_DROP = 1, 2

ST_PACKETS = 0
ST_BYTES = 1
ST_DROPS = 2
ST_WOULD_DROPS = 3
ST_PARSE_ERRORS = 4
ST_EVENTS_FAILED = 5
ST_NEW_FLOWS = 6
ST_FLOW_UPDATE_FAILED = 7
ST_MAX = 8
STAT_NAMES = (
    "packets", "bytes", "drops", "would_drops", "parse_errors",
    "events_failed", "new_flows", "flow_update_failed",
)


_V4_MAPPED = b"\x00" * 10 + b"\xff\xff"


# Slots of the `config` array (one __u64 each, one writer each: see bpf/lwtui.h).
CFG_DRY_RUN = 0
CFG_RULES_GEN = 1
CFG_DROP_EVENT_INTERVAL_NS = 2
CFG_CAPTURE = 3          # 0: off; else the snaplen of captured dropped / would-drop packets
CFG_CAPTURE_RATE = 4     # captures per second and CPU at most (0: the programs' default)
CFG_CAPTURE_FLOW = 5     # 1: capture only the flow in `capture_flow`
CFG_MAX = 6

# Indices of the per-CPU `capture_stats` array (LWTUI_CAP_*).
CAP_SENT, CAP_LIMITED, CAP_FAILED, CAP_MAX = 0, 1, 2, 3


@dataclass(frozen=True)
class LwtuiConfig:
    """The `config` slots, as read at one moment (not a C struct: the kernel
    keeps each field in its own array slot)."""
    dry_run: int = 0
    rules_gen: int = 0
    drop_event_interval_ns: int = 0
    capture: int = 0             # the capture snaplen, 0: off
    capture_rate: int = 0
    capture_flow: int = 0        # 1: only the flow in `capture_flow`


class FlowKey(ct.Structure):
    """struct flow_key"""
    _fields_ = [
        ("saddr", ct.c_uint8 * 16),
        ("daddr", ct.c_uint8 * 16),
        ("sport", ct.c_uint16),
        ("dport", ct.c_uint16),
        ("proto", ct.c_uint8),
        ("family", ct.c_uint8),
        ("hook", ct.c_uint8),
        ("flags", ct.c_uint8),
    ]


# flow_stats.cached (LWTUI_CACHED in bpf/lwtui.h): (shift, mask) of each field of the word.
CACHED_GEN, CACHED_VERDICT, CACHED_KIND, CACHED_RULE = (0, 0xFFFFFFFF), (32, 0xFF), (40, 0xFF), (48, 0xFFFF)


def cached_field(cached, field: tuple[int, int]):
    """One field (CACHED_*) of a `cached` word, or of a numpy column of them (uint64)."""
    shift, mask = field
    if isinstance(cached, np.ndarray):
        return (cached >> np.uint64(shift)) & np.uint64(mask)
    return (cached >> shift) & mask


class FlowStats(ct.Structure):
    """struct flow_stats; verdict, rule_kind and rules_gen decode `cached`."""
    _fields_ = [
        ("packets", ct.c_uint64),
        ("bytes", ct.c_uint64),
        ("first_seen_ns", ct.c_uint64),
        ("last_seen_ns", ct.c_uint64),
        ("drops", ct.c_uint64),
        ("last_event_ns", ct.c_uint64),
        ("cached", ct.c_uint64),
        ("tcp_flags", ct.c_uint8),
        ("pad", ct.c_uint8 * 7),
    ]

    @property
    def rules_gen(self) -> int:
        """The rules generation the cached verdict was computed at (LWTUI_CACHED_GEN)."""
        return cached_field(self.cached, CACHED_GEN)

    @property
    def verdict(self) -> int:
        """ALLOW or DROP, as cached (LWTUI_CACHED_VERDICT)."""
        return cached_field(self.cached, CACHED_VERDICT)

    @property
    def rule_kind(self) -> int:
        """RULE_* that gave the cached verdict (LWTUI_CACHED_KIND)."""
        return cached_field(self.cached, CACHED_KIND)

    @property
    def rule_index(self) -> int:
        """The `compound` entry that gave it, for RULE_COMPOUND (LWTUI_CACHED_RULE)."""
        return cached_field(self.cached, CACHED_RULE)


# One CPU's struct flow_stats as struct packs it (the per-CPU values of `flows`
# come as ncpus of these, each rounded up to 8 bytes: 64 already).
_FLOW_STATS = struct.Struct("=7QB7x")


def sum_percpu(raw, ncpus: int) -> FlowStats:
    """One flow's per-CPU values (`ncpus` packed struct flow_stats) as one
    FlowStats: counters summed, the earliest non-zero first_seen, the latest
    last_seen and last_event, flags ORed, and the cached verdict of the CPU
    that saw the flow last."""
    packets = nbytes = drops = flags = first = last_event = cached = 0
    last = -1
    for p, b, f, ls, d, e, c, t in _FLOW_STATS.iter_unpack(raw[:ncpus * _FLOW_STATS.size]):
        packets += p
        nbytes += b
        drops += d
        flags |= t
        if f and (not first or f < first):
            first = f
        if ls > last:
            last, cached = ls, c
        if e > last_event:
            last_event = e
    # positional, in field order: ~1 us cheaper per flow than keywords
    return FlowStats(packets, nbytes, first, max(last, 0), drops, last_event, cached, flags)


# struct flow_key as a numpy record (the layout of FlowKey), for whole batches.
FLOW_KEY_DTYPE = np.dtype([("saddr", "u1", (16,)), ("daddr", "u1", (16,)), ("sport", "<u2"), ("dport", "<u2"),
                           ("proto", "u1"), ("family", "u1"), ("hook", "u1"), ("flags", "u1")])

# struct flow_stats as a numpy record (the layout of _FLOW_STATS), for whole batches.
FLOW_STATS_DTYPE = np.dtype([("packets", "<u8"), ("bytes", "<u8"), ("first", "<u8"), ("last", "<u8"),
                             ("drops", "<u8"), ("last_event", "<u8"), ("cached", "<u8"), ("flags", "u1"),
                             ("pad", "V7")])


def sum_percpu_many(raw, count: int, ncpus: int) -> list[FlowStats]:
    """sum_percpu for `count` consecutive values of a batch buffer at once: np.frombuffer
    over the buffer (no copy) and every sum, min and max over the CPUs in one vectorized
    step per field, with the same rules (earliest non-zero first_seen; the cached verdict
    of the CPU with the latest last_seen, the first such CPU on a tie)."""
    if count == 0:
        return []
    out = sum_percpu_array(raw, count, ncpus)
    # One copy into a ctypes array of this call's own: its items are FlowStats over it.
    return list((FlowStats * count).from_buffer_copy(out.data))


def sum_percpu_array(raw, count: int, ncpus: int) -> np.ndarray:
    """sum_percpu_many's result as one FLOW_STATS_DTYPE array (no object per flow). Each
    struct flow_stats is eight u64 words; the CPUs are folded in one at a time, so every
    step reads one contiguous word per flow instead of a record field across CPUs."""
    out = np.zeros(count, dtype=FLOW_STATS_DTYPE)
    if count == 0:
        return out
    w = np.frombuffer(raw, dtype="<u8", count=count * ncpus * 8).reshape(count, ncpus, 8)
    acc = w[:, 0, :].copy()                         # packets bytes first last drops last_event cached flags
    never = np.uint64(np.iinfo(np.uint64).max)
    first = np.where(acc[:, 2] == 0, never, acc[:, 2])
    for cpu in range(1, ncpus):
        x = w[:, cpu, :]
        acc[:, 0] += x[:, 0]
        acc[:, 1] += x[:, 1]
        acc[:, 4] += x[:, 4]
        np.minimum(first, np.where(x[:, 2] == 0, never, x[:, 2]), out=first)
        later = x[:, 3] > acc[:, 3]                 # the cached verdict of the CPU that saw it last
        acc[:, 6] = np.where(later, x[:, 6], acc[:, 6])
        np.maximum(acc[:, 3], x[:, 3], out=acc[:, 3])
        np.maximum(acc[:, 5], x[:, 5], out=acc[:, 5])
        acc[:, 7] |= x[:, 7]
    first[first == never] = 0
    for j, name in ((0, "packets"), (1, "bytes"), (3, "last"), (4, "drops"), (5, "last_event"), (6, "cached")):
        out[name] = acc[:, j]
    out["first"] = first
    out["flags"] = acc[:, 7] & np.uint64(0xFF)      # tcp_flags: the low byte (the pad is 0)
    return out


def percpu_size(ncpus: int) -> int:
    """Bytes of one `flows` value as the bpf(2) syscall reads it: one per possible CPU."""
    return ncpus * _FLOW_STATS.size


class FragKey(ct.Structure):
    """struct frag_key (key of `frags`: one fragmented datagram at one hook)"""
    _fields_ = [
        ("saddr", ct.c_uint8 * 16),
        ("daddr", ct.c_uint8 * 16),
        ("id", ct.c_uint32),
        ("proto", ct.c_uint8),
        ("family", ct.c_uint8),
        ("hook", ct.c_uint8),
        ("pad", ct.c_uint8),
    ]


class HostKey(ct.Structure):
    """struct host_key (LPM trie key)"""
    _fields_ = [
        ("prefixlen", ct.c_uint32),
        ("addr", ct.c_uint8 * 16),
    ]


class PortKey(ct.Structure):
    """struct port_key"""
    _fields_ = [
        ("port", ct.c_uint16),
        ("proto", ct.c_uint8),
        ("pad", ct.c_uint8),
    ]


class RuleVal(ct.Structure):
    """struct rule_val"""
    _fields_ = [
        ("hits", ct.c_uint64),
        ("expires_ns", ct.c_uint64),
        ("created_ns", ct.c_uint64),
    ]


class CompoundTerm(ct.Structure):
    """struct compound_term"""
    _fields_ = [
        ("addr", ct.c_uint8 * 16),
        ("mask", ct.c_uint8 * 16),
        ("port", ct.c_uint16),
        ("field", ct.c_uint8),
        ("proto", ct.c_uint8),
        ("negate", ct.c_uint8),
        ("pad", ct.c_uint8 * 3),
    ]


class CompoundEntry(ct.Structure):
    """struct compound_rule: one conjunction of a compound rule (an entry of `compound`)"""
    _fields_ = [
        ("val", RuleVal),
        ("group", ct.c_uint32),
        ("nterms", ct.c_uint8),
        ("flags", ct.c_uint8),
        ("part", ct.c_uint8),
        ("parts", ct.c_uint8),
        ("terms", CompoundTerm * COMPOUND_TERMS),
    ]


class LwtuiEvent(ct.Structure):
    """struct lwtui_event (perf event record)"""
    _fields_ = [
        ("key", FlowKey),
        ("ts_ns", ct.c_uint64),
        ("packets", ct.c_uint64),
        ("bytes", ct.c_uint64),
        ("drops", ct.c_uint64),
        ("len", ct.c_uint32),
        ("type", ct.c_uint8),
        ("verdict", ct.c_uint8),
        ("rule_kind", ct.c_uint8),
        ("tcp_flags", ct.c_uint8),
    ]


class LwtuiCapture(ct.Structure):
    """struct lwtui_capture (record of `captures`; caplen packet bytes follow it)"""
    _fields_ = [
        ("key", FlowKey),
        ("ts_ns", ct.c_uint64),
        ("len", ct.c_uint32),
        ("caplen", ct.c_uint32),
        ("verdict", ct.c_uint8),
        ("pad", ct.c_uint8 * 7),
    ]


class HookStats(ct.Structure):
    """struct hook_stats: one hook's row of `stats`, indexed by ST_*."""
    _fields_ = [("v", ct.c_uint64 * ST_MAX)]


MIRRORS = {
    "hook_stats": HookStats,
    "flow_key": FlowKey,
    "flow_stats": FlowStats,
    "frag_key": FragKey,
    "host_key": HostKey,
    "port_key": PortKey,
    "rule_val": RuleVal,
    "compound_term": CompoundTerm,
    "compound_rule": CompoundEntry,
    "lwtui_event": LwtuiEvent,
    "lwtui_capture": LwtuiCapture,
}


# Counters of what a packet does once, at one hook, whichever it is: summed over hooks.
_ONCE_ANYWHERE = ("drops", "events_failed", "new_flows", "flow_update_failed")


def count_once(by_hook: dict[str, dict[str, int]], attached) -> dict[str, int]:
    """Session totals from the per-hook rows of `stats` (Probe.read_stats_by_hook),
    each packet once; `attached` holds (netns, prefix, hook) per attached route.

    A packet on a route with both `out` and `xmit` crosses both hooks: it is
    counted where it enters the route (out), and that route's xmit row is left
    out. (One xmit program serves every route, so when xmit is also attached
    alone to another route the xmit row stays in and the shared route's
    packets count twice.) Drops, new flows and event failures happen at one
    hook per packet or flow entry and are summed over all hooks.
    """
    attached = list(attached)  # (netns, prefix, hook) of every attached route
    with_out = {(ns, prefix) for ns, prefix, hook in attached if hook == "out"}
    counted = {hook for ns, prefix, hook in attached if not (hook == "xmit" and (ns, prefix) in with_out)}
    names = next(iter(by_hook.values()), {}).keys()
    return {name: sum(row[name] for hook, row in by_hook.items()
                      if name in _ONCE_ANYWHERE or hook in counted) for name in names}


def addr_to_bytes(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """16 bytes as the kernel stores them: IPv4 is IPv4-mapped."""
    if addr.version == 4:
        return _V4_MAPPED + addr.packed
    return addr.packed


def bytes_to_addr(raw: bytes, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Inverse of addr_to_bytes; `family` is 4 or 6 (flow_key.family)."""
    raw = bytes(raw)
    if family == 4:
        return ipaddress.IPv4Address(raw[12:16])
    return ipaddress.IPv6Address(raw)


def decode_event(data: bytes) -> LwtuiEvent:
    """Copy a raw perf record into an LwtuiEvent; ValueError when it is short."""
    size = ct.sizeof(LwtuiEvent)
    if len(data) < size:
        raise ValueError(f"event record of {len(data)} bytes, expected {size}")
    return LwtuiEvent.from_buffer_copy(bytes(data[:size]))


def decode_capture(data: bytes) -> tuple[LwtuiCapture, bytes]:
    """A raw `captures` sample: the record and the packet bytes after it (caplen of them,
    fewer if the sample is short); ValueError when the record itself is short."""
    size = ct.sizeof(LwtuiCapture)
    if len(data) < size:
        raise ValueError(f"capture record of {len(data)} bytes, expected at least {size}")
    rec = LwtuiCapture.from_buffer_copy(bytes(data[:size]))
    return rec, bytes(data[size:size + rec.caplen])
