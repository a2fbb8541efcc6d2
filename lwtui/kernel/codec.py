"""Rules and flows as the kernel's maps hold them (bpf/lwtui.h): the one place
that turns core objects into map keys and back.

Pure Python over lwtui.kernel.kstructs: no BCC here.
"""

from __future__ import annotations

import ctypes as ct
import ipaddress

from lwtui.core.model import FlowId, IPAddress, IPNetwork
from lwtui.core.rules import FlowRule, HostRule, PortRule, Rule
from lwtui.kernel import kstructs

FLOW_ID_CACHE_MAX = 1 << 18  # entries of one FlowIdCache before it starts over


class FlowIdCache(dict):
    """Raw struct flow_key bytes -> FlowId, owned by whoever decodes every tick."""


def flow_id_from_key(key: kstructs.FlowKey, cache: dict[bytes, FlowId] | None = None) -> FlowId:
    """Decode struct flow_key into a FlowId.

    With a `cache` (FlowIdCache), the same key gives the same FlowId object
    every tick: decoding costs ~2 us, a cache hit ~0.1 us, and identical objects
    make the flow table's dict lookups skip the field-by-field __eq__.
    """
    raw = bytes(key)
    fid = cache.get(raw) if cache is not None else None
    if fid is None:
        family = key.family
        fid = FlowId(hook=kstructs.HOOK_NAMES.get(key.hook, str(key.hook)), proto=key.proto,
                     src=kstructs.bytes_to_addr(bytes(key.saddr), family), sport=key.sport,
                     dst=kstructs.bytes_to_addr(bytes(key.daddr), family), dport=key.dport,
                     fragment=bool(key.flags & kstructs.KEY_FRAGMENT))
        if cache is not None:
            if len(cache) >= FLOW_ID_CACHE_MAX:
                cache.clear()
            cache[raw] = fid
    return fid


def _addr16(addr: IPAddress):
    return (ct.c_uint8 * 16)(*kstructs.addr_to_bytes(addr))


def encode(rule: Rule) -> tuple[str, ct.Structure]:
    """(map name, key) of the rule in the session's verdict maps."""
    if isinstance(rule, FlowRule):
        key = kstructs.FlowKey(saddr=_addr16(rule.src), daddr=_addr16(rule.dst), sport=rule.sport,
                               dport=rule.dport, proto=rule.proto, family=rule.src.version, hook=0, flags=0)
        return "verdicts", key
    if isinstance(rule, HostRule):
        net = rule.network
        plen = net.prefixlen + (96 if net.version == 4 else 0)
        return "host_rules", kstructs.HostKey(prefixlen=plen, addr=_addr16(net.network_address))
    if isinstance(rule, PortRule):
        return "port_rules", kstructs.PortKey(port=rule.port, proto=rule.proto or 0, pad=0)
    raise TypeError(f"not a rule: {rule!r}")


def decode(map_name: str, key) -> Rule:
    """Inverse of encode(); ValueError for a key no rule encodes to."""
    if map_name == "verdicts":
        if key.family not in (4, 6):
            raise ValueError(f"verdict key with family {key.family}")
        src = kstructs.bytes_to_addr(bytes(key.saddr), key.family)
        dst = kstructs.bytes_to_addr(bytes(key.daddr), key.family)
        return FlowRule(key.proto, src, key.sport, dst, key.dport)
    if map_name == "host_rules":
        raw = bytes(key.addr)
        if key.prefixlen > 128:
            raise ValueError(f"host key with prefix length {key.prefixlen}")
        if key.prefixlen >= 96 and raw[:12] == kstructs.addr_to_bytes(ipaddress.IPv4Address(0))[:12]:
            net: IPNetwork = ipaddress.IPv4Network((raw[12:], key.prefixlen - 96), strict=False)
        else:
            net = ipaddress.IPv6Network((raw, key.prefixlen), strict=False)
        return HostRule(net)
    if map_name == "port_rules":
        return PortRule(key.port, key.proto or None)
    raise ValueError(f"no rules in map {map_name!r}")
