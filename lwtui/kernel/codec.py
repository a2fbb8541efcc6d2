"""Rules and flows as the kernel's maps hold them (bpf/lwtui.h): the one place
that turns core objects into map keys and back.

Pure Python over lwtui.kernel.kstructs: no BCC here.
"""

from __future__ import annotations

import ctypes as ct
import ipaddress

import numpy as np

from lwtui.core import flowcols
from lwtui.core.compound import CompoundRule, Term
from lwtui.core.model import FlowId, IPAddress, IPNetwork
from lwtui.core.rules import FlowRule, HostRule, PortRule, Rule
from lwtui.kernel import kstructs

# Entries of one FlowIdCache before it starts over: the flow table keeps no FlowId per flow
# (lwtui.core.flowcols), so the cache serves events and dropped flows' rules, not every flow.
FLOW_ID_CACHE_MAX = 1 << 12


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


def key_from_flow_id(fid: FlowId) -> kstructs.FlowKey:
    """The struct flow_key the programs build for this flow (flow_id_from_key's inverse)."""
    return kstructs.FlowKey(saddr=_addr16(fid.src), daddr=_addr16(fid.dst), sport=fid.sport, dport=fid.dport,
                            proto=fid.proto, family=fid.src.version, hook=kstructs.HOOK_BY_NAME[fid.hook],
                            flags=kstructs.KEY_FRAGMENT if fid.fragment else 0)


def flow_columns(keys: np.ndarray) -> np.ndarray:
    """A batch of struct flow_key (kstructs.FLOW_KEY_DTYPE) as the flow table's identity
    columns (lwtui.core.flowcols.KEY_DTYPE): the same addresses, ports and protocol;
    the hook as its index in names.HOOKS (the kernel's order), the fragment flag apart."""
    out = np.empty(len(keys), dtype=flowcols.KEY_DTYPE)
    out["src"], out["dst"] = keys["saddr"], keys["daddr"]
    for name in ("sport", "dport", "proto", "family", "hook"):
        out[name] = keys[name]
    out["fragment"] = (keys["flags"] & kstructs.KEY_FRAGMENT) != 0
    return out


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


# -- compound rules: one `compound` entry per conjunction ------------------------

_FIELD_CODES = {"src host": kstructs.TERM_SADDR, "dst host": kstructs.TERM_DADDR, "host": kstructs.TERM_ADDR,
                "src port": kstructs.TERM_SPORT, "dst port": kstructs.TERM_DPORT, "port": kstructs.TERM_PORT,
                "proto": kstructs.TERM_PROTO}
_FIELD_NAMES = {v: k for k, v in _FIELD_CODES.items()}


def _encode_term(t: Term) -> kstructs.CompoundTerm:
    ct_term = kstructs.CompoundTerm(field=_FIELD_CODES[t.field], negate=int(t.negate))
    v = t.value
    if isinstance(v, int):
        if t.field == "proto":
            ct_term.proto = v
        else:
            ct_term.port, ct_term.proto = v, t.proto or 0
        return ct_term
    bits = v.prefixlen + (96 if v.version == 4 else 0)
    mask = ((1 << bits) - 1) << (128 - bits)
    ct.memmove(ct_term.addr, kstructs.addr_to_bytes(v.network_address), 16)
    ct.memmove(ct_term.mask, mask.to_bytes(16, "big"), 16)
    return ct_term


def encode_compound(rule: CompoundRule) -> list[kstructs.CompoundEntry]:
    """The rule's `compound` entries, one per conjunction (val and group left 0)."""
    out = []
    for part, conj in enumerate(rule.dnf):
        e = kstructs.CompoundEntry(nterms=len(conj), part=part, parts=len(rule.dnf))
        for j, t in enumerate(conj):
            e.terms[j] = _encode_term(t)
        for j in range(len(conj), kstructs.COMPOUND_TERMS):
            e.terms[j].negate = 1       # field 0, negated: an unused slot always holds
        out.append(e)
    return out


def _decode_term(t: kstructs.CompoundTerm) -> Term:
    field = _FIELD_NAMES.get(t.field)
    if field is None:
        raise ValueError(f"compound term with field {t.field}")
    negate = bool(t.negate)
    if field == "proto":
        return Term(field, t.proto, None, negate)
    if field.endswith("port"):
        return Term(field, t.port, t.proto or None, negate)
    bits = bin(int.from_bytes(bytes(t.mask), "big")).count("1")
    raw = bytes(t.addr)
    if bits >= 96 and raw[:12] == kstructs.addr_to_bytes(ipaddress.IPv4Address(0))[:12]:
        net: IPNetwork = ipaddress.IPv4Network((raw[12:], bits - 96))
    else:
        net = ipaddress.IPv6Network((raw, bits))
    return Term(field, net, None, negate)


def decode_compound(entries: list[kstructs.CompoundEntry]) -> CompoundRule:
    """Inverse of encode_compound for the entries of one group, in any order."""
    parts = sorted(entries, key=lambda e: e.part)
    return CompoundRule(tuple(tuple(_decode_term(e.terms[j]) for j in range(e.nterms)) for e in parts))
